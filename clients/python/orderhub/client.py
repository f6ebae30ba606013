"""A thin typed client for OrderHub: deadlines, a bearer token, retries and typed errors.

``OrderHubClient`` (blocking) and ``AsyncOrderHubClient`` (``grpc.aio``) have the same
surface: convenience methods for StockService, the raw generated stubs (``.stock``,
``.orders``, ``.routing``) and ``call()`` to run any unary RPC of those stubs with the
client's deadline, token, retry policy and error translation.

Retry policy, shared by both clients (see ``RetryPolicy``):

* ``UNAVAILABLE`` is retried for every call: the hub could not take the request, e.g.
  while an inventory shard restarts, and trying again shortly is what gRPC expects.
* ``DEADLINE_EXCEEDED`` is retried only for idempotent calls, because the first attempt
  may have taken effect. Every StockService call is idempotent: reads trivially, upserts
  and ``SetStock`` write absolute values, ``Reserve``/``ReserveBatch`` are idempotent on
  ``order_id``, and releasing or committing twice returns the same reservation.
  ``call()`` treats an RPC as non-idempotent unless told otherwise.
* Nothing else is retried: other codes are answers, not accidents.

Waits between attempts grow exponentially with jitter (``Backoff``); the deadline
(``timeout``) applies to each attempt.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple, Self, TypeAlias, TypeVar, cast

import grpc
import grpc.aio
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from orderhub.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    order_pb2,
    order_pb2_grpc,
    reconcile_pb2,
    reconcile_pb2_grpc,
    routing_pb2,
    routing_pb2_grpc,
    stock_pb2,
    stock_pb2_grpc,
    wms_pb2,
    wms_pb2_grpc,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "Aborted",
    "AsyncOrderHubClient",
    "Backoff",
    "BearerAuth",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InsufficientStock",
    "InvalidArgument",
    "Line",
    "LineLike",
    "NotFound",
    "OrderHubClient",
    "OrderHubError",
    "PermissionDenied",
    "ReservationClosed",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "aio_bearer_auth",
    "auth_metadata",
    "authorized_aio_channel",
    "authorized_channel",
    "read_token",
]

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"

T = TypeVar("T")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

Metadata: TypeAlias = tuple[tuple[str, str], ...]
TokenSource: TypeAlias = str | Callable[[], str] | None

# The health poll interval while the hub reports NOT_SERVING (e.g. during start-up).
_HEALTH_POLL_S: Final = 0.1


# --------------------------------------------------------------------------- errors


class OrderHubError(Exception):
    """An RPC that failed, with the machine-readable parts of the hub's rich status."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field: str = "",
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.violations: tuple[tuple[str, str], ...] = tuple(violations)

    def __str__(self) -> str:
        suffix = ""
        if self.reason:
            suffix = f" [{self.reason}]"
        elif self.field:
            suffix = f" [field {self.field}]"
        return f"{self.code.name}: {self.message}{suffix}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the error picklable (multiprocessing, Ray) despite the custom signature.
        return (
            self.__class__,
            (self.code, self.message, self.field, self.reason, self.metadata, self.violations),
        )

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> OrderHubError:
        """The typed error for a failed RPC, parsed from its status details."""
        code = _status_code(err) or grpc.StatusCode.UNKNOWN
        message = _details(err)
        reason = ""
        metadata: dict[str, str] = {}
        violations: list[tuple[str, str]] = []
        for detail in _status_details(err):
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    (str(v.field), str(v.description)) for v in bad_request.field_violations
                )
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = str(info.reason)
                metadata = {str(k): str(v) for k, v in info.metadata.items()}
        # Bad input names its field in BadRequest; other refusals may carry it in ErrorInfo.
        field_name = violations[0][0] if violations else metadata.get("field", "")
        kind = _BY_REASON.get((code, reason)) or _BY_CODE.get(code, OrderHubError)
        return kind(code, message, field_name, reason, metadata, violations)


class InvalidArgument(OrderHubError):
    """The request is malformed; ``field`` names the offending field."""


class NotFound(OrderHubError):
    """A SKU, warehouse or reservation does not exist; ``reason`` says which."""


class FailedPrecondition(OrderHubError):
    """The request is valid but the hub's state refuses it."""


class InsufficientStock(FailedPrecondition):
    """Not enough available stock for a line; nothing was held."""

    @property
    def sku(self) -> str:
        """The SKU that ran short."""
        return self.metadata.get("sku", "")


class ReservationClosed(FailedPrecondition):
    """The reservation can no longer change that way (e.g. commit after release)."""


class Aborted(OrderHubError):
    """A concurrent attempt on the same order got in the way; try again later."""


class Unavailable(OrderHubError):
    """The hub or one of its shards was unavailable, even after retrying."""


class DeadlineExceeded(OrderHubError):
    """The call did not finish within its deadline, even after retrying."""


class Unauthenticated(OrderHubError):
    """The bearer token is missing or invalid."""


class PermissionDenied(OrderHubError):
    """The bearer token does not allow this call."""


class Unimplemented(OrderHubError):
    """The hub does not offer this RPC (yet)."""


_BY_CODE: Final[dict[grpc.StatusCode, type[OrderHubError]]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
}

_BY_REASON: Final[dict[tuple[grpc.StatusCode, str], type[OrderHubError]]] = {
    (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK"): InsufficientStock,
    (grpc.StatusCode.FAILED_PRECONDITION, "RESERVATION_CLOSED"): ReservationClosed,
}


def _status_code(err: grpc.RpcError) -> grpc.StatusCode | None:
    """The status code of a failed RPC, or None for an error not tied to a call."""
    # grpc.RpcError itself has no code(); the errors raised by calls (sync and aio) do.
    code = getattr(err, "code", None)
    if not callable(code):
        return None
    value = code()
    return value if isinstance(value, grpc.StatusCode) else None


def _details(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    text = details() if callable(details) else None
    return str(text) if text else str(err)


def _status_details(err: grpc.RpcError) -> list[Any]:
    """The packed details of the rich status, or none when the status has no such part."""
    try:
        # Errors raised by calls (sync and aio) carry code(), details() and trailing_metadata().
        status = rpc_status.from_call(cast(grpc.Call, err))
    except (AttributeError, TypeError, ValueError):
        # Not a call, or a status proto that disagrees with the call: use what we have.
        return []
    return list(status.details) if status is not None else []


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: the wait before each retry."""

    initial: float = 0.1
    maximum: float = 2.0
    multiplier: float = 2.0
    # The random share of each wait: 0 waits exactly, 1 waits anywhere up to the cap.
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 <= initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait in seconds before retry number ``retry`` (0 for the first retry)."""
        cap = min(self.maximum, self.initial * self.multiplier**retry)
        return cap * (1 - self.jitter) + cap * self.jitter * rand()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures to try again, how often, and how long to wait in between."""

    retries: int = 3
    backoff: Backoff = field(default_factory=Backoff)

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError("retries must not be negative")

    def should_retry(self, code: grpc.StatusCode | None, *, idempotent: bool) -> bool:
        """Whether a failure with ``code`` is worth another attempt."""
        if code is grpc.StatusCode.UNAVAILABLE:
            return True
        return idempotent and code is grpc.StatusCode.DEADLINE_EXCEEDED

    def next_delay(self, err: grpc.RpcError, retry: int, *, idempotent: bool) -> float | None:
        """The wait before retry number ``retry`` after ``err``, or None to give up."""
        if retry >= self.retries or not self.should_retry(_status_code(err), idempotent=idempotent):
            return None
        return self.backoff.delay(retry)

    def run(
        self,
        attempt: Callable[[], T],
        *,
        idempotent: bool,
        sleep: Callable[[float], object] = time.sleep,
    ) -> T:
        """Call ``attempt`` until it succeeds or fails for good; re-raises the last error."""
        retry = 0
        while True:
            try:
                return attempt()
            except grpc.RpcError as err:
                delay = self.next_delay(err, retry, idempotent=idempotent)
                if delay is None:
                    raise
            sleep(delay)
            retry += 1

    async def run_async(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> T:
        """Await ``attempt`` until it succeeds or fails for good; re-raises the last error."""
        retry = 0
        while True:
            try:
                return await attempt()
            except grpc.RpcError as err:
                delay = self.next_delay(err, retry, idempotent=idempotent)
                if delay is None:
                    raise
            await sleep(delay)
            retry += 1


# --------------------------------------------------------------------------- requests


class Line(NamedTuple):
    """One reservation line; an empty ``warehouse_id`` lets the hub choose."""

    sku: str
    quantity: int
    warehouse_id: str = ""


LineLike: TypeAlias = Line | tuple[str, int] | tuple[str, int, str] | stock_pb2.ReserveLine


def auth_metadata(token: str | None) -> Metadata:
    """The metadata that authenticates a call: ``authorization: Bearer <token>``, if any."""
    if not token:
        return ()
    return (("authorization", f"Bearer {token}"),)


def read_token(data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """A bearer token from where OrderHub's tools keep one, or None.

    In order: ``ORDERHUB_TOKEN``; the file named by ``ORDERHUB_TOKEN_FILE``; the admin token
    ``orderhub up`` leaves in its data directory (``data_dir``, else ``ORDERHUB_DATA_DIR``,
    else ``.orderhub``) as ``admin.token``.
    """
    token = os.environ.get("ORDERHUB_TOKEN", "").strip()
    if token:
        return token
    named = os.environ.get("ORDERHUB_TOKEN_FILE", "").strip()
    path = (
        Path(named)
        if named
        else Path(data_dir or os.environ.get("ORDERHUB_DATA_DIR") or ".orderhub") / "admin.token"
    )
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _with_token(metadata: Any, token: str | Callable[[], str]) -> list[tuple[str, str]]:
    """The call's metadata with the token added; a call that names its own token keeps it."""
    kept = [(k, v) for k, v in (metadata or ())]
    if any(k == "authorization" for k, _ in kept):
        return kept
    value = token() if callable(token) else token
    return [*kept, ("authorization", f"Bearer {value}")] if value else kept


class _SyncDetails(
    NamedTuple(
        "_SyncDetails",
        [
            ("method", str),
            ("timeout", float | None),
            ("metadata", Any),
            ("credentials", Any),
            ("wait_for_ready", bool | None),
            ("compression", Any),
        ],
    ),
    grpc.ClientCallDetails,
):
    pass


class BearerAuth(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds ``authorization: Bearer <token>`` to every call of a blocking channel.

    ``grpc.intercept_channel(grpc.insecure_channel(addr), BearerAuth(token))``, or use
    :func:`authorized_channel`.
    """

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def _details(self, details: Any) -> _SyncDetails:
        return _SyncDetails(
            details.method,
            details.timeout,
            _with_token(details.metadata, self._token),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def _aio_details(details: Any, token: str | Callable[[], str]) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        details.timeout,
        grpc.aio.Metadata(*_with_token(details.metadata, token)),
        details.credentials,
        details.wait_for_ready,
    )


class _AioBearer:
    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token


class _AioUnaryUnary(_AioBearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._token), request)


class _AioUnaryStream(_AioBearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_aio_details(details, self._token), request)


class _AioStreamUnary(_AioBearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._token), requests)


class _AioStreamStream(_AioBearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(_aio_details(details, self._token), requests)


def aio_bearer_auth(token: str | Callable[[], str]) -> list[Any]:
    """Interceptors that add the bearer token to every call of a ``grpc.aio`` channel."""
    return [
        _AioUnaryUnary(token),
        _AioUnaryStream(token),
        _AioStreamUnary(token),
        _AioStreamStream(token),
    ]


def authorized_channel(
    address: str,
    token: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A blocking channel whose every call carries ``token`` (TLS with ``credentials``)."""
    raw = (
        grpc.secure_channel(address, credentials, options=list(options))
        if credentials is not None
        else grpc.insecure_channel(address, options=list(options))
    )
    return grpc.intercept_channel(raw, BearerAuth(token))


def authorized_aio_channel(
    address: str,
    token: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel whose every call carries ``token``."""
    interceptors = aio_bearer_auth(token)
    if credentials is not None:
        return grpc.aio.secure_channel(
            address, credentials, options=list(options), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(address, options=list(options), interceptors=interceptors)


def _ingest_orders_request(
    orders: Iterable[tuple[str, str, str]],
) -> order_pb2.IngestPlatformOrdersRequest:
    return order_pb2.IngestPlatformOrdersRequest(
        orders=[
            order_pb2.IngestPlatformOrderRequest(platform=p, shop_id=shop, payload=payload)
            for p, shop, payload in orders
        ]
    )


def _reserve_line(line: LineLike) -> stock_pb2.ReserveLine:
    if isinstance(line, stock_pb2.ReserveLine):
        return line
    sku, quantity, warehouse_id = Line(*line)
    return stock_pb2.ReserveLine(sku=sku, quantity=quantity, warehouse_id=warehouse_id)


def _reserve_request(
    order_id: str, lines: Iterable[LineLike], ttl_seconds: int
) -> stock_pb2.ReserveRequest:
    return stock_pb2.ReserveRequest(
        order_id=order_id, lines=[_reserve_line(ln) for ln in lines], ttl_seconds=ttl_seconds
    )


def _reservation(
    response: stock_pb2.ReserveResponse | stock_pb2.ReleaseResponse | stock_pb2.CommitResponse,
) -> stock_pb2.Reservation:
    # These responses mirror Reservation field for field, so the wire bytes carry over
    # exactly (presence of timestamps included) with no hand-kept field list.
    return stock_pb2.Reservation.FromString(response.SerializeToString())


class _Requests:
    """Request builders both clients share, so their behaviour cannot drift apart."""

    @staticmethod
    def quote_route(
        destination_province: str,
        lines: Iterable[Line | tuple[str, int]],
        destination_city: str,
        tags: Iterable[str],
        channel: str,
        amount_fen: int,
        sla_hours: int,
        draft_rules_json: str,
    ) -> routing_pb2.QuoteRouteRequest:
        return routing_pb2.QuoteRouteRequest(
            destination_province=destination_province,
            destination_city=destination_city,
            lines=[routing_pb2.QuoteLine(sku=ln[0], quantity=ln[1]) for ln in lines],
            tags=list(tags),
            channel=channel,
            amount_fen=amount_fen,
            sla_hours=sla_hours,
            draft_rules_json=draft_rules_json,
        )

    @staticmethod
    def lane_outcome(
        warehouse_id: str,
        carrier: str,
        destination_province: str,
        late: bool,
        occurred_at: datetime,
        outcome_id: str,
    ) -> routing_pb2.RecordLaneOutcomeRequest:
        request = routing_pb2.RecordLaneOutcomeRequest(
            warehouse_id=warehouse_id,
            carrier=carrier,
            destination_province=destination_province,
            late=late,
            outcome_id=outcome_id,
        )
        request.occurred_at.FromDatetime(occurred_at)
        return request

    @staticmethod
    def upsert_warehouse(
        warehouse_id: str,
        name: str,
        province: str,
        city: str,
        district: str,
        daily_capacity: int,
    ) -> stock_pb2.UpsertWarehouseRequest:
        return stock_pb2.UpsertWarehouseRequest(
            warehouse_id=warehouse_id,
            name=name,
            province=province,
            city=city,
            district=district,
            daily_capacity=daily_capacity,
        )

    @staticmethod
    def upsert_sku(
        sku: str,
        name: str,
        category: str,
        weight_grams: int,
        safety_stock: int,
        low_stock_threshold: int,
        size_mm: tuple[int, int, int],
    ) -> stock_pb2.UpsertSkuRequest:
        length, width, height = size_mm
        return stock_pb2.UpsertSkuRequest(
            sku=sku,
            name=name,
            category=category,
            weight_grams=weight_grams,
            safety_stock=safety_stock,
            low_stock_threshold=low_stock_threshold,
            length_mm=length,
            width_mm=width,
            height_mm=height,
        )

    @staticmethod
    def upsert_carrier(
        carrier_id: str, name: str, service_level: str, active: bool
    ) -> stock_pb2.UpsertCarrierRequest:
        return stock_pb2.UpsertCarrierRequest(
            carrier=stock_pb2.Carrier(
                carrier_id=carrier_id, name=name, service_level=service_level, active=active
            )
        )

    @staticmethod
    def inventory_map(
        group_by: Iterable[str], filters: Mapping[str, Any]
    ) -> stock_pb2.GetInventoryMapRequest:
        dims = [
            stock_pb2.InventoryMapDimension.Value(f"INVENTORY_MAP_DIMENSION_{g.upper()}")
            for g in group_by
        ]
        return stock_pb2.GetInventoryMapRequest(group_by=dims, **filters)

    @staticmethod
    def map_platform_sku(
        platform: str, shop_id: str, platform_sku: str, sku: str
    ) -> stock_pb2.MapPlatformSkuRequest:
        return stock_pb2.MapPlatformSkuRequest(
            platform=platform, shop_id=shop_id, platform_sku=platform_sku, sku=sku
        )

    @staticmethod
    def set_stock(
        warehouse_id: str, sku: str, on_hand: int, safety_stock: int | None, reason: str
    ) -> stock_pb2.SetStockRequest:
        request = stock_pb2.SetStockRequest(
            warehouse_id=warehouse_id, sku=sku, on_hand=on_hand, reason=reason
        )
        # Unset, not 0: the hub keeps the SKU's own safety stock when the field is absent.
        if safety_stock is not None:
            request.safety_stock = safety_stock
        return request

    @staticmethod
    def get_availability(
        sku: str, warehouse_ids: Iterable[str]
    ) -> stock_pb2.GetAvailabilityRequest:
        return stock_pb2.GetAvailabilityRequest(sku=sku, warehouse_ids=list(warehouse_ids))

    @staticmethod
    def reserve_batch(
        orders: Mapping[str, Iterable[LineLike]], ttl_seconds: int
    ) -> stock_pb2.ReserveBatchRequest:
        return stock_pb2.ReserveBatchRequest(
            requests=[
                _reserve_request(order_id, lines, ttl_seconds) for order_id, lines in orders.items()
            ]
        )

    @staticmethod
    def watch(skus: Iterable[str]) -> stock_pb2.WatchAvailabilityRequest:
        return stock_pb2.WatchAvailabilityRequest(skus=list(skus))

    @staticmethod
    def health(service: str) -> Any:
        return health_pb2.HealthCheckRequest(service=service)


def _is_serving(response: Any) -> bool:
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def _health_failure(err: grpc.RpcError) -> OrderHubError | None:
    """The error to raise for a failed health check, or None to keep waiting."""
    if _status_code(err) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return None
    return OrderHubError.from_rpc_error(err)


def _reconcile_request(
    platform: str,
    shop_id: str,
    period_start: datetime,
    period_end: datetime,
    statement: bytes | os.PathLike[str],
    statement_format: str,
    default_currency: str,
    columns: Mapping[str, str] | None,
) -> reconcile_pb2.ReconcileRequest:
    """The Reconcile request; naive times are refused rather than guessed."""
    for name, moment in (("period_start", period_start), ("period_end", period_end)):
        if moment.utcoffset() is None:
            raise ValueError(f"{name} must be zone-aware")
    data = statement if isinstance(statement, bytes) else Path(statement).read_bytes()
    kind = f"STATEMENT_FORMAT_{statement_format.upper() or 'UNSPECIFIED'}"
    if kind not in reconcile_pb2.StatementFormat.keys():  # noqa: SIM118 - not a dict
        raise ValueError(f"statement_format must be csv, jsonl or empty, not {statement_format!r}")
    request = reconcile_pb2.ReconcileRequest(
        platform=platform,
        shop_id=shop_id,
        statement=data,
        statement_format=reconcile_pb2.StatementFormat.Value(kind),
        default_currency=default_currency,
        columns=dict(columns or {}),
    )
    request.period_start.FromDatetime(period_start)
    request.period_end.FromDatetime(period_end)
    return request


# --------------------------------------------------------------------------- clients


def _audit_request(
    actor: str,
    action: str,
    target_prefix: str,
    since: datetime | None,
    until: datetime | None,
    page_size: int,
    page_token: str,
) -> admin_pb2.ListAuditEventsRequest:
    request = admin_pb2.ListAuditEventsRequest(
        actor=actor,
        action=action,
        target_prefix=target_prefix,
        page_size=page_size,
        page_token=page_token,
    )
    if since is not None:
        request.since.FromDatetime(since)
    if until is not None:
        request.until.FromDatetime(until)
    return request


class _ClientBase:
    """Settings and per-call metadata shared by the blocking and asyncio clients."""

    def __init__(
        self,
        address: str,
        token: TokenSource,
        timeout: float,
        retries: int,
        backoff: Backoff | None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.address = address
        self.timeout = timeout
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff or Backoff())
        self._token = token

    def metadata(self) -> Metadata:
        """The metadata each call sends; a token callable is asked again every attempt."""
        token = self._token() if callable(self._token) else self._token
        return auth_metadata(token)


def _credentials(
    secure: bool, credentials: grpc.ChannelCredentials | None
) -> grpc.ChannelCredentials | None:
    if credentials is not None:
        return credentials
    return grpc.ssl_channel_credentials() if secure else None


class _TokenCall:
    """One RPC of a stub, adding the client's token to calls that do not name their own."""

    __slots__ = ("_metadata", "_method")

    def __init__(self, method: Any, metadata: Callable[[], Metadata]) -> None:
        self._method = method
        self._metadata = metadata

    def _with(self, metadata: Any) -> Any:
        given = tuple(metadata or ())
        if any(key == "authorization" for key, _ in given):
            return given
        return given + self._metadata()

    def __call__(self, request: Any, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._method(request, *args, metadata=self._with(metadata), **kwargs)

    def with_call(self, request: Any, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._method.with_call(request, *args, metadata=self._with(metadata), **kwargs)

    def future(self, request: Any, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        return self._method.future(request, *args, metadata=self._with(metadata), **kwargs)


class _TokenStub:
    """A generated stub whose calls carry the client's token as call metadata.

    Cheaper than a channel interceptor (a ``grpc.aio`` one cost the client about 40 µs per
    call here): the token is added to the call's own metadata, nothing else changes.
    """

    def __init__(self, stub: Any, metadata: Callable[[], Metadata]) -> None:
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> _TokenCall:
        call = _TokenCall(getattr(self._stub, name), self._metadata)
        setattr(self, name, call)  # built once per RPC
        return call


S = TypeVar("S")


def _with_token_stub(stub: S, client: _ClientBase) -> S:
    """``stub`` with the client's token on every call (typed as the stub itself)."""
    return cast(S, _TokenStub(stub, client.metadata))


class OrderHubClient(_ClientBase):
    """A blocking OrderHub client over one gRPC channel; close it or use it as a context."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: TokenSource = None,
        timeout: float = 10.0,
        retries: int = 3,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        backoff: Backoff | None = None,
        options: Sequence[tuple[str, Any]] = (),
        channel: grpc.Channel | None = None,
    ) -> None:
        """``channel``, when given, is used as is (one with interceptors, or a test channel)."""
        super().__init__(address, token, timeout, retries, backoff)
        creds = _credentials(secure, credentials)
        if channel is not None:
            self._channel = channel
        elif creds is not None:
            self._channel = grpc.secure_channel(address, creds, options=list(options))
        else:
            self._channel = grpc.insecure_channel(address, options=list(options))
        # Raw stubs and streams carry the token too, not only call() (see _TokenStub).
        self.stock = _with_token_stub(stock_pb2_grpc.StockServiceStub(self._channel), self)
        self.orders = _with_token_stub(order_pb2_grpc.OrderServiceStub(self._channel), self)
        self.routing = _with_token_stub(routing_pb2_grpc.RoutingServiceStub(self._channel), self)
        self.wms = _with_token_stub(wms_pb2_grpc.WmsServiceStub(self._channel), self)
        self.admin = _with_token_stub(admin_pb2_grpc.AdminServiceStub(self._channel), self)
        self._health: Any = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        self._channel.close()

    def call(
        self,
        method: grpc.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool = False,
        timeout: float | None = None,
    ) -> Resp:
        """Run a unary RPC of a raw stub with the deadline, token, retries and typed errors."""

        def attempt() -> Resp:
            return method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self.metadata(),
            )

        try:
            return self.retry_policy.run(attempt, idempotent=idempotent)
        except grpc.RpcError as err:
            raise OrderHubError.from_rpc_error(err) from err

    def wait_until_serving(self, timeout: float = 30.0, *, service: str = "") -> None:
        """Block until the hub's health check says SERVING; TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                response = self._health.Check(
                    _Requests.health(service),
                    timeout=remaining,
                    metadata=self.metadata(),
                    wait_for_ready=True,
                )
            except grpc.RpcError as err:
                if (failure := _health_failure(err)) is not None:
                    raise failure from err
            else:
                if _is_serving(response):
                    return
            time.sleep(min(_HEALTH_POLL_S, max(0.0, deadline - time.monotonic())))
        raise TimeoutError(f"OrderHub at {self.address} not serving after {timeout}s")

    def upsert_warehouse(
        self,
        warehouse_id: str,
        name: str,
        province: str,
        city: str,
        *,
        district: str = "",
        daily_capacity: int = 0,
    ) -> stock_pb2.Warehouse:
        """Create or update a warehouse."""
        request = _Requests.upsert_warehouse(
            warehouse_id, name, province, city, district, daily_capacity
        )
        return self.call(self.stock.UpsertWarehouse, request, idempotent=True).warehouse

    def list_warehouses(self) -> list[stock_pb2.Warehouse]:
        """List every warehouse."""
        request = stock_pb2.ListWarehousesRequest()
        return list(self.call(self.stock.ListWarehouses, request, idempotent=True).warehouses)

    def upsert_sku(
        self,
        sku: str,
        name: str,
        *,
        category: str = "",
        weight_grams: int = 0,
        safety_stock: int = 0,
        low_stock_threshold: int = 0,
        size_mm: tuple[int, int, int] = (0, 0, 0),
    ) -> stock_pb2.Sku:
        """Create or update a SKU; ``low_stock_threshold`` > 0 turns on its low-stock alert;
        ``size_mm`` (length, width, height of one packed unit) lets routing price bulky
        parcels on their volumetric weight."""
        request = _Requests.upsert_sku(
            sku, name, category, weight_grams, safety_stock, low_stock_threshold, size_mm
        )
        return self.call(self.stock.UpsertSku, request, idempotent=True).sku

    def map_platform_sku(
        self, platform: str, shop_id: str, platform_sku: str, sku: str
    ) -> stock_pb2.PlatformSkuMapping:
        """Map a platform's SKU code in one shop to an internal SKU."""
        request = _Requests.map_platform_sku(platform, shop_id, platform_sku, sku)
        return self.call(self.stock.MapPlatformSku, request, idempotent=True).mapping

    def set_stock(
        self,
        warehouse_id: str,
        sku: str,
        on_hand: int,
        *,
        safety_stock: int | None = None,
        reason: str = "",
    ) -> stock_pb2.StockLevel:
        """Set the absolute on-hand count of a SKU in a warehouse, as from a stock take."""
        request = _Requests.set_stock(warehouse_id, sku, on_hand, safety_stock, reason)
        return self.call(self.stock.SetStock, request, idempotent=True).level

    def get_availability(
        self, sku: str, warehouse_ids: Iterable[str] = ()
    ) -> stock_pb2.GetAvailabilityResponse:
        """On hand, reserved and available per warehouse for a SKU, and the total."""
        request = _Requests.get_availability(sku, warehouse_ids)
        return self.call(self.stock.GetAvailability, request, idempotent=True)

    def reserve(
        self, order_id: str, lines: Iterable[LineLike], ttl_seconds: int = 0
    ) -> stock_pb2.Reservation:
        """Hold stock for an order, all lines or none; the same order_id gets the same hold."""
        request = _reserve_request(order_id, lines, ttl_seconds)
        return _reservation(self.call(self.stock.Reserve, request, idempotent=True))

    def reserve_batch(
        self, orders: Mapping[str, Iterable[LineLike]], ttl_seconds: int = 0
    ) -> list[stock_pb2.ReserveBatchResult]:
        """Reserve many orders (order_id to lines) at once; each result has its own code."""
        request = _Requests.reserve_batch(orders, ttl_seconds)
        return list(self.call(self.stock.ReserveBatch, request, idempotent=True).results)

    def get_reservation(self, order_id: str) -> stock_pb2.Reservation:
        """An order's reservation."""
        request = stock_pb2.GetReservationRequest(order_id=order_id)
        return self.call(self.stock.GetReservation, request, idempotent=True).reservation

    def release(self, order_id: str) -> stock_pb2.Reservation:
        """Release an order's hold; its stock is available again at once."""
        request = stock_pb2.ReleaseRequest(order_id=order_id)
        return _reservation(self.call(self.stock.Release, request, idempotent=True))

    def commit(self, order_id: str) -> stock_pb2.Reservation:
        """Commit an order's hold: the goods left, so on hand and reserved both drop."""
        request = stock_pb2.CommitRequest(order_id=order_id)
        return _reservation(self.call(self.stock.Commit, request, idempotent=True))

    def upsert_carrier(
        self, carrier_id: str, name: str, service_level: str, *, active: bool = True
    ) -> stock_pb2.Carrier:
        """Create or update a carrier (express, standard, economy, postal or same_day)."""
        request = _Requests.upsert_carrier(carrier_id, name, service_level, active)
        return self.call(self.stock.UpsertCarrier, request, idempotent=True).carrier

    def list_carriers(self) -> list[stock_pb2.Carrier]:
        """List every carrier."""
        request = stock_pb2.ListCarriersRequest()
        return list(self.call(self.stock.ListCarriers, request, idempotent=True).carriers)

    def request_shipment(self, order_id: str, carrier: str) -> stock_pb2.RequestShipmentResponse:
        """Ask the warehouses holding an order's stock to send it with ``carrier``."""
        request = stock_pb2.RequestShipmentRequest(order_id=order_id, carrier=carrier)
        return self.call(self.stock.RequestShipment, request, idempotent=True)

    def inventory_map(
        self, group_by: Iterable[str] = ("province", "city"), **filters: Any
    ) -> stock_pb2.GetInventoryMapResponse:
        """Stock and ATP summed by province, city, warehouse, category and/or sku."""
        request = _Requests.inventory_map(group_by, filters)
        return self.call(self.stock.GetInventoryMap, request, idempotent=True)

    def list_dead_letters(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> wms_pb2.ListDeadLettersResponse:
        """Open WMS dead letters, oldest first, a page at a time."""
        request = wms_pb2.ListDeadLettersRequest(page_size=page_size, page_token=page_token)
        return self.call(self.wms.ListDeadLetters, request, idempotent=True)

    def replay_dead_letters(
        self, letter_ids: Iterable[int] = (), *, all_open: bool = False
    ) -> list[wms_pb2.ReplayResult]:
        """Apply dead letters again after fixing their cause; each applies at most once."""
        request = wms_pb2.ReplayDeadLettersRequest(letter_ids=list(letter_ids), all_open=all_open)
        return list(self.call(self.wms.ReplayDeadLetters, request, idempotent=True).results)

    def ingest_order(
        self, platform: str, shop_id: str, payload: str
    ) -> order_pb2.IngestPlatformOrderResponse:
        """Take in a platform's raw order JSON; a repeat answers ``duplicate``."""
        request = order_pb2.IngestPlatformOrderRequest(
            platform=platform, shop_id=shop_id, payload=payload
        )
        return self.call(self.orders.IngestPlatformOrder, request, idempotent=True)

    def ingest_orders(
        self, orders: Iterable[tuple[str, str, str]]
    ) -> list[order_pb2.IngestPlatformOrderResult]:
        """Take in many (platform, shop_id, payload) at once; each has its own result code."""
        request = _ingest_orders_request(orders)
        return list(self.call(self.orders.IngestPlatformOrders, request, idempotent=True).results)

    def list_shops(self) -> list[order_pb2.Shop]:
        """The hub's configured shops and where pulling each one's orders stands."""
        request = order_pb2.ListShopsRequest()
        return list(self.call(self.orders.ListShops, request, idempotent=True).shops)

    def get_order(self, order_id: str) -> order_pb2.Order:
        """One order by the hub's id."""
        request = order_pb2.GetOrderRequest(order_id=order_id)
        return self.call(self.orders.GetOrder, request, idempotent=True).order

    def list_orders(
        self, *, page_size: int = 100, page_token: str = "", **filters: Any
    ) -> order_pb2.ListOrdersResponse:
        """Orders by status, platform, shop_id, tag or queue, a page at a time."""
        request = order_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token, **filters)
        return self.call(self.orders.ListOrders, request, idempotent=True)

    def cancel_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Cancel an order that has not shipped; its stock goes back."""
        request = order_pb2.CancelOrderRequest(order_id=order_id, reason=reason)
        return self.call(self.orders.CancelOrder, request).order

    def hold_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Stop an order from shipping until resumed; its stock stays held."""
        request = order_pb2.HoldOrderRequest(order_id=order_id, reason=reason)
        return self.call(self.orders.HoldOrder, request).order

    def resume_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Let a held order ship again."""
        request = order_pb2.ResumeOrderRequest(order_id=order_id, reason=reason)
        return self.call(self.orders.ResumeOrder, request).order

    def ship_order(
        self, order_id: str, carrier: str, tracking_number: str, *, warehouse_id: str = ""
    ) -> order_pb2.Order:
        """Record that an order left the warehouse; its held stock is committed."""
        request = order_pb2.ShipOrderRequest(
            order_id=order_id,
            carrier=carrier,
            tracking_number=tracking_number,
            warehouse_id=warehouse_id,
        )
        return self.call(self.orders.ShipOrder, request).order

    def deliver_order(self, order_id: str) -> order_pb2.Order:
        """Record that a shipped order reached the buyer."""
        request = order_pb2.DeliverOrderRequest(order_id=order_id)
        return self.call(self.orders.DeliverOrder, request).order

    def approve_order(self, order_id: str, note: str = "") -> order_pb2.Order:
        """Let an order out of review (map its unknown SKUs first)."""
        request = order_pb2.ApproveOrderRequest(order_id=order_id, note=note)
        return self.call(self.orders.ApproveOrder, request).order

    def reject_order(self, order_id: str, reason: str) -> order_pb2.Order:
        """Refuse an order in review: it is cancelled and its stock goes back."""
        request = order_pb2.RejectOrderRequest(order_id=order_id, reason=reason)
        return self.call(self.orders.RejectOrder, request).order

    def order_events(self, order_id: str) -> list[order_pb2.OrderEvent]:
        """What happened to an order (who, when, why), oldest first."""
        request = order_pb2.ListOrderEventsRequest(order_id=order_id)
        return list(self.call(self.orders.ListOrderEvents, request, idempotent=True).events)

    def route_order(self, order_id: str, *, sla_hours: int = 0) -> routing_pb2.RouteOrderResponse:
        """Choose an order's warehouses and carriers now; its hold moves there. With the why."""
        request = routing_pb2.RouteOrderRequest(order_id=order_id, sla_hours=sla_hours)
        return self.call(self.routing.RouteOrder, request, idempotent=True)

    def quote_route(
        self,
        destination_province: str,
        lines: Iterable[Line | tuple[str, int]],
        *,
        destination_city: str = "",
        tags: Iterable[str] = (),
        channel: str = "",
        amount_fen: int = 0,
        sla_hours: int = 0,
        draft_rules_json: str = "",
    ) -> routing_pb2.QuoteRouteResponse:
        """What routing would decide for a destination and (sku, quantity) lines; no change."""
        request = _Requests.quote_route(
            destination_province,
            lines,
            destination_city,
            tags,
            channel,
            amount_fen,
            sla_hours,
            draft_rules_json,
        )
        return self.call(self.routing.QuoteRoute, request, idempotent=True)

    def record_lane_outcome(
        self,
        warehouse_id: str,
        carrier: str,
        destination_province: str,
        *,
        late: bool,
        occurred_at: datetime,
        outcome_id: str = "",
    ) -> routing_pb2.LaneHealth:
        """Count one delivery on a lane (once per ``outcome_id``); the lane's health after it."""
        request = _Requests.lane_outcome(
            warehouse_id, carrier, destination_province, late, occurred_at, outcome_id
        )
        return self.call(self.routing.RecordLaneOutcome, request, idempotent=bool(outcome_id)).lane

    def lane_health(
        self, *, warehouse_id: str = "", carrier: str = "", destination_province: str = ""
    ) -> list[routing_pb2.LaneHealth]:
        """Lanes matching the filters given, with their delay rates and breaker states."""
        request = routing_pb2.GetLaneHealthRequest(
            warehouse_id=warehouse_id, carrier=carrier, destination_province=destination_province
        )
        return list(self.call(self.routing.GetLaneHealth, request, idempotent=True).lanes)

    def routing_rules(self, version: int = 0) -> routing_pb2.RoutingRules:
        """The routing rules in force, or a stored version."""
        request = routing_pb2.GetRoutingRulesRequest(version=version)
        return self.call(self.routing.GetRoutingRules, request, idempotent=True).rules

    def update_routing_rules(
        self,
        rules_json: str,
        *,
        expected_version: int = 0,
        comment: str = "",
        validate_only: bool = False,
    ) -> routing_pb2.RoutingRules:
        """Store the next version of the routing rules; a bad document changes nothing."""
        request = routing_pb2.UpdateRoutingRulesRequest(
            rules_json=rules_json,
            expected_version=expected_version,
            comment=comment,
            validate_only=validate_only,
        )
        return self.call(self.routing.UpdateRoutingRules, request).rules

    def sync_status(self) -> wms_pb2.GetSyncStatusResponse:
        """Where the WMS sync stands: backlog, applied, dead letters, outbox."""
        request = wms_pb2.GetSyncStatusRequest()
        return self.call(self.wms.GetSyncStatus, request, idempotent=True)

    def watch_availability(
        self, skus: Iterable[str] = (), *, timeout: float | None = None
    ) -> Generator[stock_pb2.WatchAvailabilityResponse, None, None]:
        """Yield availability changes of ``skus`` (all when empty) until closed or ``timeout``.

        A watch is long-lived, so it has no deadline unless given one, and it is not retried:
        a new watch starts from now, so the caller decides how to catch up after an error.
        """
        stream = self.stock.WatchAvailability(
            _Requests.watch(skus), timeout=timeout, metadata=self.metadata()
        )
        try:
            yield from stream
        except grpc.RpcError as err:
            raise OrderHubError.from_rpc_error(err) from err
        finally:
            stream.cancel()  # type: ignore[no-untyped-call]

    def reconcile(
        self,
        platform: str,
        shop_id: str,
        period_start: datetime,
        period_end: datetime,
        statement: bytes | os.PathLike[str],
        *,
        statement_format: str = "",
        default_currency: str = "",
        columns: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> reconcile_pb2.ReconcileResponse:
        """Compare a platform statement (bytes or a file) with the hub's orders of a shop.

        The period is ``[period_start, period_end)`` (zone-aware); ``statement_format`` is
        ``csv``, ``jsonl`` or empty to let the hub guess. The answer has both sides' totals
        and the differences that explain the gap; a bad statement is ``InvalidArgument``
        with ``field == "statement"`` and the row and column in its message.
        """
        request = _reconcile_request(
            platform,
            shop_id,
            period_start,
            period_end,
            statement,
            statement_format,
            default_currency,
            columns,
        )
        service = reconcile_pb2_grpc.ReconciliationServiceStub(self._channel)
        return self.call(service.Reconcile, request, idempotent=True, timeout=timeout)

    # ----------------------------------------------------------------- AdminService

    def create_token(
        self, role: str, subject: str, *, ttl_seconds: int = 0, note: str = ""
    ) -> admin_pb2.CreateTokenResponse:
        """Issue a bearer token (admins only): ``.token`` is shown this once, ``.info`` kept."""
        request = admin_pb2.CreateTokenRequest(
            role=role, subject=subject, ttl_seconds=ttl_seconds, note=note
        )
        return self.call(self.admin.CreateToken, request)

    def revoke_token(self, token_id: str, *, reason: str = "") -> admin_pb2.TokenInfo:
        """Revoke a token everywhere within seconds; revoking one twice changes nothing."""
        request = admin_pb2.RevokeTokenRequest(token_id=token_id, reason=reason)
        return self.call(self.admin.RevokeToken, request, idempotent=True).info

    def list_tokens(
        self, *, role: str = "", include_inactive: bool = False
    ) -> list[admin_pb2.TokenInfo]:
        """Issued tokens (never the tokens themselves), oldest first."""
        request = admin_pb2.ListTokensRequest(role=role, include_inactive=include_inactive)
        return list(self.call(self.admin.ListTokens, request, idempotent=True).tokens)

    def audit_events(
        self,
        *,
        actor: str = "",
        action: str = "",
        target_prefix: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> Generator[admin_pb2.AuditEvent, None, None]:
        """Audited writes matching the filters, newest first, fetched a page at a time."""
        page_token = ""
        while True:
            request = _audit_request(
                actor, action, target_prefix, since, until, page_size, page_token
            )
            page = self.call(self.admin.ListAuditEvents, request, idempotent=True)
            yield from page.events
            page_token = page.next_page_token
            if not page_token:
                return


class AsyncOrderHubClient(_ClientBase):
    """An asyncio OrderHub client over one ``grpc.aio`` channel; create it inside the loop."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        token: TokenSource = None,
        timeout: float = 10.0,
        retries: int = 3,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        backoff: Backoff | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        super().__init__(address, token, timeout, retries, backoff)
        creds = _credentials(secure, credentials)
        self._channel = (
            grpc.aio.secure_channel(address, creds, options=list(options))
            if creds is not None
            else grpc.aio.insecure_channel(address, options=list(options))
        )
        # Raw stubs and streams carry the token too, not only call() (see _TokenStub).
        self.stock = _with_token_stub(stock_pb2_grpc.StockServiceStub(self._channel), self)
        self.orders = _with_token_stub(order_pb2_grpc.OrderServiceStub(self._channel), self)
        self.routing = _with_token_stub(routing_pb2_grpc.RoutingServiceStub(self._channel), self)
        self.wms = _with_token_stub(wms_pb2_grpc.WmsServiceStub(self._channel), self)
        self.admin = _with_token_stub(admin_pb2_grpc.AdminServiceStub(self._channel), self)
        self._health: Any = health_pb2_grpc.HealthStub(self._channel)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls still running are cancelled."""
        await self._channel.close(grace=None)

    async def call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        *,
        idempotent: bool = False,
        # A gRPC deadline travels to the hub, which then stops working on the call too;
        # asyncio.timeout would only stop this side waiting. Hence ASYNC109 is waived here.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Resp:
        """Run a unary RPC of a raw stub with the deadline, token, retries and typed errors."""

        async def attempt() -> Resp:
            return await method(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self.metadata(),
            )

        try:
            return await self.retry_policy.run_async(attempt, idempotent=idempotent)
        except grpc.RpcError as err:
            raise OrderHubError.from_rpc_error(err) from err

    async def wait_until_serving(
        self,
        timeout: float = 30.0,  # noqa: ASYNC109 - also the health check's gRPC deadline
        *,
        service: str = "",
    ) -> None:
        """Wait until the hub's health check says SERVING; TimeoutError after ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            try:
                response = await self._health.Check(
                    _Requests.health(service),
                    timeout=remaining,
                    metadata=self.metadata(),
                    wait_for_ready=True,
                )
            except grpc.RpcError as err:
                if (failure := _health_failure(err)) is not None:
                    raise failure from err
            else:
                if _is_serving(response):
                    return
            await asyncio.sleep(min(_HEALTH_POLL_S, max(0.0, deadline - loop.time())))
        raise TimeoutError(f"OrderHub at {self.address} not serving after {timeout}s")

    async def upsert_warehouse(
        self,
        warehouse_id: str,
        name: str,
        province: str,
        city: str,
        *,
        district: str = "",
        daily_capacity: int = 0,
    ) -> stock_pb2.Warehouse:
        """Create or update a warehouse."""
        request = _Requests.upsert_warehouse(
            warehouse_id, name, province, city, district, daily_capacity
        )
        return (await self.call(self.stock.UpsertWarehouse, request, idempotent=True)).warehouse

    async def list_warehouses(self) -> list[stock_pb2.Warehouse]:
        """List every warehouse."""
        request = stock_pb2.ListWarehousesRequest()
        response = await self.call(self.stock.ListWarehouses, request, idempotent=True)
        return list(response.warehouses)

    async def upsert_sku(
        self,
        sku: str,
        name: str,
        *,
        category: str = "",
        weight_grams: int = 0,
        safety_stock: int = 0,
        low_stock_threshold: int = 0,
        size_mm: tuple[int, int, int] = (0, 0, 0),
    ) -> stock_pb2.Sku:
        """Create or update a SKU; ``low_stock_threshold`` > 0 turns on its low-stock alert;
        ``size_mm`` (length, width, height of one packed unit) lets routing price bulky
        parcels on their volumetric weight."""
        request = _Requests.upsert_sku(
            sku, name, category, weight_grams, safety_stock, low_stock_threshold, size_mm
        )
        return (await self.call(self.stock.UpsertSku, request, idempotent=True)).sku

    async def map_platform_sku(
        self, platform: str, shop_id: str, platform_sku: str, sku: str
    ) -> stock_pb2.PlatformSkuMapping:
        """Map a platform's SKU code in one shop to an internal SKU."""
        request = _Requests.map_platform_sku(platform, shop_id, platform_sku, sku)
        return (await self.call(self.stock.MapPlatformSku, request, idempotent=True)).mapping

    async def set_stock(
        self,
        warehouse_id: str,
        sku: str,
        on_hand: int,
        *,
        safety_stock: int | None = None,
        reason: str = "",
    ) -> stock_pb2.StockLevel:
        """Set the absolute on-hand count of a SKU in a warehouse, as from a stock take."""
        request = _Requests.set_stock(warehouse_id, sku, on_hand, safety_stock, reason)
        return (await self.call(self.stock.SetStock, request, idempotent=True)).level

    async def get_availability(
        self, sku: str, warehouse_ids: Iterable[str] = ()
    ) -> stock_pb2.GetAvailabilityResponse:
        """On hand, reserved and available per warehouse for a SKU, and the total."""
        request = _Requests.get_availability(sku, warehouse_ids)
        return await self.call(self.stock.GetAvailability, request, idempotent=True)

    async def reserve(
        self, order_id: str, lines: Iterable[LineLike], ttl_seconds: int = 0
    ) -> stock_pb2.Reservation:
        """Hold stock for an order, all lines or none; the same order_id gets the same hold."""
        request = _reserve_request(order_id, lines, ttl_seconds)
        response = await self.call(self.stock.Reserve, request, idempotent=True)
        return _reservation(response)

    async def reserve_batch(
        self, orders: Mapping[str, Iterable[LineLike]], ttl_seconds: int = 0
    ) -> list[stock_pb2.ReserveBatchResult]:
        """Reserve many orders (order_id to lines) at once; each result has its own code."""
        request = _Requests.reserve_batch(orders, ttl_seconds)
        return list((await self.call(self.stock.ReserveBatch, request, idempotent=True)).results)

    async def get_reservation(self, order_id: str) -> stock_pb2.Reservation:
        """An order's reservation."""
        request = stock_pb2.GetReservationRequest(order_id=order_id)
        return (await self.call(self.stock.GetReservation, request, idempotent=True)).reservation

    async def release(self, order_id: str) -> stock_pb2.Reservation:
        """Release an order's hold; its stock is available again at once."""
        request = stock_pb2.ReleaseRequest(order_id=order_id)
        response = await self.call(self.stock.Release, request, idempotent=True)
        return _reservation(response)

    async def commit(self, order_id: str) -> stock_pb2.Reservation:
        """Commit an order's hold: the goods left, so on hand and reserved both drop."""
        request = stock_pb2.CommitRequest(order_id=order_id)
        response = await self.call(self.stock.Commit, request, idempotent=True)
        return _reservation(response)

    async def upsert_carrier(
        self, carrier_id: str, name: str, service_level: str, *, active: bool = True
    ) -> stock_pb2.Carrier:
        """Create or update a carrier (express, standard, economy, postal or same_day)."""
        request = _Requests.upsert_carrier(carrier_id, name, service_level, active)
        return (await self.call(self.stock.UpsertCarrier, request, idempotent=True)).carrier

    async def list_carriers(self) -> list[stock_pb2.Carrier]:
        """List every carrier."""
        request = stock_pb2.ListCarriersRequest()
        return list((await self.call(self.stock.ListCarriers, request, idempotent=True)).carriers)

    async def request_shipment(
        self, order_id: str, carrier: str
    ) -> stock_pb2.RequestShipmentResponse:
        """Ask the warehouses holding an order's stock to send it with ``carrier``."""
        request = stock_pb2.RequestShipmentRequest(order_id=order_id, carrier=carrier)
        return await self.call(self.stock.RequestShipment, request, idempotent=True)

    async def inventory_map(
        self, group_by: Iterable[str] = ("province", "city"), **filters: Any
    ) -> stock_pb2.GetInventoryMapResponse:
        """Stock and ATP summed by province, city, warehouse, category and/or sku."""
        request = _Requests.inventory_map(group_by, filters)
        return await self.call(self.stock.GetInventoryMap, request, idempotent=True)

    async def list_dead_letters(
        self, *, page_size: int = 100, page_token: str = ""
    ) -> wms_pb2.ListDeadLettersResponse:
        """Open WMS dead letters, oldest first, a page at a time."""
        request = wms_pb2.ListDeadLettersRequest(page_size=page_size, page_token=page_token)
        return await self.call(self.wms.ListDeadLetters, request, idempotent=True)

    async def replay_dead_letters(
        self, letter_ids: Iterable[int] = (), *, all_open: bool = False
    ) -> list[wms_pb2.ReplayResult]:
        """Apply dead letters again after fixing their cause; each applies at most once."""
        request = wms_pb2.ReplayDeadLettersRequest(letter_ids=list(letter_ids), all_open=all_open)
        return list((await self.call(self.wms.ReplayDeadLetters, request, idempotent=True)).results)

    async def ingest_order(
        self, platform: str, shop_id: str, payload: str
    ) -> order_pb2.IngestPlatformOrderResponse:
        """Take in a platform's raw order JSON; a repeat answers ``duplicate``."""
        request = order_pb2.IngestPlatformOrderRequest(
            platform=platform, shop_id=shop_id, payload=payload
        )
        return await self.call(self.orders.IngestPlatformOrder, request, idempotent=True)

    async def ingest_orders(
        self, orders: Iterable[tuple[str, str, str]]
    ) -> list[order_pb2.IngestPlatformOrderResult]:
        """Take in many (platform, shop_id, payload) at once; each has its own result code."""
        request = _ingest_orders_request(orders)
        answer = await self.call(self.orders.IngestPlatformOrders, request, idempotent=True)
        return list(answer.results)

    async def list_shops(self) -> list[order_pb2.Shop]:
        """The hub's configured shops and where pulling each one's orders stands."""
        request = order_pb2.ListShopsRequest()
        return list((await self.call(self.orders.ListShops, request, idempotent=True)).shops)

    async def get_order(self, order_id: str) -> order_pb2.Order:
        """One order by the hub's id."""
        request = order_pb2.GetOrderRequest(order_id=order_id)
        return (await self.call(self.orders.GetOrder, request, idempotent=True)).order

    async def list_orders(
        self, *, page_size: int = 100, page_token: str = "", **filters: Any
    ) -> order_pb2.ListOrdersResponse:
        """Orders by status, platform, shop_id, tag or queue, a page at a time."""
        request = order_pb2.ListOrdersRequest(page_size=page_size, page_token=page_token, **filters)
        return await self.call(self.orders.ListOrders, request, idempotent=True)

    async def cancel_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Cancel an order that has not shipped; its stock goes back."""
        request = order_pb2.CancelOrderRequest(order_id=order_id, reason=reason)
        return (await self.call(self.orders.CancelOrder, request)).order

    async def hold_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Stop an order from shipping until resumed; its stock stays held."""
        request = order_pb2.HoldOrderRequest(order_id=order_id, reason=reason)
        return (await self.call(self.orders.HoldOrder, request)).order

    async def resume_order(self, order_id: str, reason: str = "") -> order_pb2.Order:
        """Let a held order ship again."""
        request = order_pb2.ResumeOrderRequest(order_id=order_id, reason=reason)
        return (await self.call(self.orders.ResumeOrder, request)).order

    async def ship_order(
        self, order_id: str, carrier: str, tracking_number: str, *, warehouse_id: str = ""
    ) -> order_pb2.Order:
        """Record that an order left the warehouse; its held stock is committed."""
        request = order_pb2.ShipOrderRequest(
            order_id=order_id,
            carrier=carrier,
            tracking_number=tracking_number,
            warehouse_id=warehouse_id,
        )
        return (await self.call(self.orders.ShipOrder, request)).order

    async def deliver_order(self, order_id: str) -> order_pb2.Order:
        """Record that a shipped order reached the buyer."""
        request = order_pb2.DeliverOrderRequest(order_id=order_id)
        return (await self.call(self.orders.DeliverOrder, request)).order

    async def approve_order(self, order_id: str, note: str = "") -> order_pb2.Order:
        """Let an order out of review (map its unknown SKUs first)."""
        request = order_pb2.ApproveOrderRequest(order_id=order_id, note=note)
        return (await self.call(self.orders.ApproveOrder, request)).order

    async def reject_order(self, order_id: str, reason: str) -> order_pb2.Order:
        """Refuse an order in review: it is cancelled and its stock goes back."""
        request = order_pb2.RejectOrderRequest(order_id=order_id, reason=reason)
        return (await self.call(self.orders.RejectOrder, request)).order

    async def order_events(self, order_id: str) -> list[order_pb2.OrderEvent]:
        """What happened to an order (who, when, why), oldest first."""
        request = order_pb2.ListOrderEventsRequest(order_id=order_id)
        return list((await self.call(self.orders.ListOrderEvents, request, idempotent=True)).events)

    async def route_order(
        self, order_id: str, *, sla_hours: int = 0
    ) -> routing_pb2.RouteOrderResponse:
        """Choose an order's warehouses and carriers now; its hold moves there. With the why."""
        request = routing_pb2.RouteOrderRequest(order_id=order_id, sla_hours=sla_hours)
        return await self.call(self.routing.RouteOrder, request, idempotent=True)

    async def quote_route(
        self,
        destination_province: str,
        lines: Iterable[Line | tuple[str, int]],
        *,
        destination_city: str = "",
        tags: Iterable[str] = (),
        channel: str = "",
        amount_fen: int = 0,
        sla_hours: int = 0,
        draft_rules_json: str = "",
    ) -> routing_pb2.QuoteRouteResponse:
        """What routing would decide for a destination and (sku, quantity) lines; no change."""
        request = _Requests.quote_route(
            destination_province,
            lines,
            destination_city,
            tags,
            channel,
            amount_fen,
            sla_hours,
            draft_rules_json,
        )
        return await self.call(self.routing.QuoteRoute, request, idempotent=True)

    async def record_lane_outcome(
        self,
        warehouse_id: str,
        carrier: str,
        destination_province: str,
        *,
        late: bool,
        occurred_at: datetime,
        outcome_id: str = "",
    ) -> routing_pb2.LaneHealth:
        """Count one delivery on a lane (once per ``outcome_id``); the lane's health after it."""
        request = _Requests.lane_outcome(
            warehouse_id, carrier, destination_province, late, occurred_at, outcome_id
        )
        return (
            await self.call(self.routing.RecordLaneOutcome, request, idempotent=bool(outcome_id))
        ).lane

    async def lane_health(
        self, *, warehouse_id: str = "", carrier: str = "", destination_province: str = ""
    ) -> list[routing_pb2.LaneHealth]:
        """Lanes matching the filters given, with their delay rates and breaker states."""
        request = routing_pb2.GetLaneHealthRequest(
            warehouse_id=warehouse_id, carrier=carrier, destination_province=destination_province
        )
        return list((await self.call(self.routing.GetLaneHealth, request, idempotent=True)).lanes)

    async def routing_rules(self, version: int = 0) -> routing_pb2.RoutingRules:
        """The routing rules in force, or a stored version."""
        request = routing_pb2.GetRoutingRulesRequest(version=version)
        return (await self.call(self.routing.GetRoutingRules, request, idempotent=True)).rules

    async def update_routing_rules(
        self,
        rules_json: str,
        *,
        expected_version: int = 0,
        comment: str = "",
        validate_only: bool = False,
    ) -> routing_pb2.RoutingRules:
        """Store the next version of the routing rules; a bad document changes nothing."""
        request = routing_pb2.UpdateRoutingRulesRequest(
            rules_json=rules_json,
            expected_version=expected_version,
            comment=comment,
            validate_only=validate_only,
        )
        return (await self.call(self.routing.UpdateRoutingRules, request)).rules

    async def sync_status(self) -> wms_pb2.GetSyncStatusResponse:
        """Where the WMS sync stands: backlog, applied, dead letters, outbox."""
        request = wms_pb2.GetSyncStatusRequest()
        return await self.call(self.wms.GetSyncStatus, request, idempotent=True)

    async def watch_availability(
        self,
        skus: Iterable[str] = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the stream's gRPC deadline
    ) -> AsyncGenerator[stock_pb2.WatchAvailabilityResponse, None]:
        """Yield availability changes of ``skus`` (all when empty) until closed or ``timeout``.

        A watch is long-lived, so it has no deadline unless given one, and it is not retried:
        a new watch starts from now, so the caller decides how to catch up after an error.
        Close it with ``aclose()`` (e.g. ``contextlib.aclosing``) to end the stream at once.
        """
        stream = self.stock.WatchAvailability(
            _Requests.watch(skus), timeout=timeout, metadata=self.metadata()
        )
        try:
            async for item in stream:
                yield item
        except grpc.RpcError as err:
            raise OrderHubError.from_rpc_error(err) from err
        finally:
            stream.cancel()

    async def reconcile(
        self,
        platform: str,
        shop_id: str,
        period_start: datetime,
        period_end: datetime,
        statement: bytes | os.PathLike[str],
        *,
        statement_format: str = "",
        default_currency: str = "",
        columns: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the call's gRPC deadline
    ) -> reconcile_pb2.ReconcileResponse:
        """Compare a platform statement (bytes or a file) with the hub's orders of a shop.

        As :meth:`OrderHubClient.reconcile`; a file is read in a worker thread.
        """
        if not isinstance(statement, bytes):
            statement = await asyncio.to_thread(Path(statement).read_bytes)
        request = _reconcile_request(
            platform,
            shop_id,
            period_start,
            period_end,
            statement,
            statement_format,
            default_currency,
            columns,
        )
        service = reconcile_pb2_grpc.ReconciliationServiceStub(self._channel)
        return await self.call(service.Reconcile, request, idempotent=True, timeout=timeout)

    # ----------------------------------------------------------------- AdminService

    async def create_token(
        self, role: str, subject: str, *, ttl_seconds: int = 0, note: str = ""
    ) -> admin_pb2.CreateTokenResponse:
        """As :meth:`OrderHubClient.create_token`."""
        request = admin_pb2.CreateTokenRequest(
            role=role, subject=subject, ttl_seconds=ttl_seconds, note=note
        )
        return await self.call(self.admin.CreateToken, request)

    async def revoke_token(self, token_id: str, *, reason: str = "") -> admin_pb2.TokenInfo:
        """As :meth:`OrderHubClient.revoke_token`."""
        request = admin_pb2.RevokeTokenRequest(token_id=token_id, reason=reason)
        return (await self.call(self.admin.RevokeToken, request, idempotent=True)).info

    async def list_tokens(
        self, *, role: str = "", include_inactive: bool = False
    ) -> list[admin_pb2.TokenInfo]:
        """As :meth:`OrderHubClient.list_tokens`."""
        request = admin_pb2.ListTokensRequest(role=role, include_inactive=include_inactive)
        return list((await self.call(self.admin.ListTokens, request, idempotent=True)).tokens)

    async def audit_events(
        self,
        *,
        actor: str = "",
        action: str = "",
        target_prefix: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncGenerator[admin_pb2.AuditEvent, None]:
        """As :meth:`OrderHubClient.audit_events`."""
        page_token = ""
        while True:
            request = _audit_request(
                actor, action, target_prefix, since, until, page_size, page_token
            )
            page = await self.call(self.admin.ListAuditEvents, request, idempotent=True)
            for event in page.events:
                yield event
            page_token = page.next_page_token
            if not page_token:
                return
