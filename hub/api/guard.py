"""The one gate every RPC passes: authentication, the role's permission, masking, audit.

For each call, in this order: the bearer token is checked (``UNAUTHENTICATED``), then the
role's right to the RPC (``PERMISSION_DENIED``), both before the handler sees the request,
so a refused caller learns nothing about its validity. The handler then runs with the
caller known (:func:`principal`); its answer, and every message of a stream, is masked for
the caller's role in one place (:class:`hub.api.masking.Masker`); an audited write is
recorded, with the target's state before and after, before the answer leaves. Every call is
also counted and timed here, refusals included (``orderhub_rpc_*``, :mod:`hub.metrics`).

Health checks need no token (load balancers probe them); reflection needs a valid token
of any role.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import grpc

from hub import logs
from hub.api.masking import Masker
from hub.audit import Auditor, request_json
from hub.auth import Principal, Unauthenticated, Verifier
from hub.domain.access import allowed, audited, visibility
from hub.metrics import RpcMetrics
from hub.store.access import AuditEntry

log = logging.getLogger("orderhub.access")

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)
ANY_ROLE_PREFIXES = ("/grpc.reflection.",)
REQUEST_ID_KEY = "x-request-id"
#: Request ids made up here: this process's random prefix and a call counter (unique
#: across replicas, and far cheaper per call than a random UUID).
_PROCESS = uuid.uuid4().hex[:8]
_CALLS = itertools.count(1)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "orderhub_principal", default=None
)
_request_id = logs.request_id

Context = grpc.aio.ServicerContext[Any, Any]


def principal() -> Principal | None:
    """The caller of the RPC being handled (None outside an RPC)."""
    return _principal.get()


def request_id() -> str:
    """The id of the RPC being handled: the caller's ``x-request-id``, or one made up."""
    return _request_id.get()


def _metadata(context: Context) -> tuple[str | None, str]:
    authorization: str | None = None
    rid = ""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            authorization = value if isinstance(value, str) else value.decode()
        elif key == REQUEST_ID_KEY and isinstance(value, str) and _REQUEST_ID_OK.match(value):
            rid = value
    return authorization, rid or f"{_PROCESS}-{next(_CALLS):x}"


def _outcome(context: Context, err: BaseException | None) -> tuple[str, str]:
    code = context.code()
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name, str(context.details() or "")
    if isinstance(err, asyncio.CancelledError):
        return "CANCELLED", "the caller went away"
    if err is not None:
        return "INTERNAL", type(err).__name__
    return "OK", ""


class Guard:
    """Wraps every method handler of the server in the checks above."""

    def __init__(
        self,
        verifier: Verifier,
        auditor: Auditor,
        masker: Masker | None = None,
        *,
        metrics: RpcMetrics | None = None,
    ) -> None:
        self._verifier = verifier
        self._auditor = auditor
        self._masker = masker or Masker()
        #: Counts and times every call here, refusals included (``orderhub_rpc_*``).
        self._metrics = metrics

    def wrap(self, full_method: str, handler: Any) -> Any:
        """``handler`` (an RpcMethodHandler) behind the checks; health passes untouched.

        Handlers are wrapped once, when the server is built (:class:`GuardedServer`), not
        per call as an interceptor would: a call pays for the checks and nothing else.
        """
        if handler is None or full_method.startswith(PUBLIC_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(full_method, cast(Any, handler.unary_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(full_method, cast(Any, handler.unary_stream)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(full_method, cast(Any, handler.stream_unary)),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._streaming(full_method, cast(Any, handler.stream_stream)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _admit(self, full_method: str, context: Context) -> Principal:
        """The caller, when the token is valid and the role may call; aborts otherwise."""
        authorization, rid = _metadata(context)
        _request_id.set(rid)
        try:
            who = await self._verifier.check(authorization)
        except Unauthenticated as err:
            log.info("unauthenticated call", extra={"method": full_method, "why": str(err)})
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
            raise AssertionError("unreachable") from err  # abort always raises
        if not (full_method.startswith(ANY_ROLE_PREFIXES) or allowed(who.role, full_method)):
            log.warning(
                "permission denied",
                extra={"method": full_method, "subject": who.subject, "role": who.role},
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"role {who.role} may not call {full_method.rsplit('/', 1)[-1]}",
            )
        _principal.set(who)
        return who

    def _unary(
        self, full_method: str, inner: Callable[[Any, Context], Awaitable[Any]]
    ) -> Callable[[Any, Context], Awaitable[Any]]:
        masker = self._masker

        async def behavior(request: Any, context: Context) -> Any:
            who = await self._admit(full_method, context)
            seen = visibility(who.role)
            if not audited(who.role, full_method):
                return masker.apply(await inner(request, context), seen)
            before = await self._auditor.state(full_method, request)
            try:
                response = await inner(request, context)
            except BaseException as err:
                await asyncio.shield(self._record(full_method, who, request, context, before, err))
                raise
            await self._record(full_method, who, request, context, before, None)
            return masker.apply(response, seen)

        if self._metrics is None:
            return behavior
        probe = self._metrics.probe(full_method)
        clock = time.perf_counter

        async def timed(request: Any, context: Context) -> Any:
            started = clock()
            try:
                response = await behavior(request, context)
            except BaseException as err:
                probe.done(context, err, clock() - started)
                raise
            probe.done(context, None, clock() - started)
            return response

        return timed

    def _streaming(
        self, full_method: str, inner: Callable[[Any, Context], Any]
    ) -> Callable[[Any, Context], AsyncIterator[Any]]:
        masker = self._masker

        async def behavior(request: Any, context: Context) -> AsyncIterator[Any]:
            who = await self._admit(full_method, context)
            seen = visibility(who.role)
            produced = inner(request, context)
            if inspect.isawaitable(produced):  # a handler that writes with context.write
                await produced
                return
            async for message in produced:
                yield masker.apply(message, seen)

        if self._metrics is None:
            return behavior
        probe = self._metrics.probe(full_method, streaming=True)

        async def counted(request: Any, context: Context) -> AsyncIterator[Any]:
            probe.stream_opened()
            failure: BaseException | None = None
            try:
                async for message in behavior(request, context):
                    yield message
                    probe.stream_sent()
            except BaseException as err:
                failure = err
                raise
            finally:
                probe.stream_closed(context, failure)

        return counted

    async def _record(
        self,
        full_method: str,
        who: Principal,
        request: Any,
        context: Context,
        before: str,
        err: BaseException | None,
    ) -> None:
        outcome, error = _outcome(context, err)
        after = await self._auditor.state(full_method, request)
        try:
            body = request_json(request)
        except Exception:  # a streamed request has no single message to show
            body = ""
        await self._auditor.record(
            AuditEntry(
                at=datetime.now(UTC),
                actor=who.subject,
                role=who.role,
                token_id=who.token_id,
                action=full_method,
                target=self._auditor.target(full_method, request),
                request=body,
                before=before,
                after=after,
                outcome=outcome,
                error=error[:1000],
                request_id=request_id(),
            )
        )


class GuardedServer:
    """What the generated ``add_*Servicer_to_server`` functions register with: it puts every
    method handler behind the guard, then registers it with the real server.

    So no service can be added to the server unguarded by forgetting a step: the server is
    only reachable through this object while the services are added.
    """

    def __init__(self, server: grpc.aio.Server, guard: Guard) -> None:
        self._server = server
        self._guard = guard

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """Ignored: every generated service also registers its handlers by name (below),
        which is where they are wrapped. A service that came only as a generic handler is
        not served at all, rather than served unguarded."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        wrapped = {
            name: self._guard.wrap(f"/{service}/{name}", handler)
            for name, handler in handlers.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, wrapped),)
        )
        self._server.add_registered_method_handlers(service, wrapped)  # type: ignore[attr-defined]
