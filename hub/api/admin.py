"""AdminService: tokens and the audit log, proto in, store call, proto out."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any

import grpc

from hub.api import convert
from hub.api.errors import abort, invalid
from hub.api.guard import principal, request_id
from hub.auth import Principal, TokenNotFound, Tokens, Verifier
from hub.domain.inventory import InvalidRequest
from hub.store.access import (
    AccessStore,
    AuditEntry,
    AuditQuery,
    TokenRecord,
    page_token,
    parse_page_token,
)
from orderhub.v1 import admin_pb2, admin_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def token_info(r: TokenRecord) -> admin_pb2.TokenInfo:
    msg = admin_pb2.TokenInfo(
        token_id=r.token_id,
        subject=r.subject,
        role=r.role,
        note=r.note,
        issued_by=r.issued_by,
        issued_at=convert.timestamp(r.issued_at),
        expires_at=convert.timestamp(r.expires_at),
        revoked_by=r.revoked_by,
        revoke_reason=r.revoke_reason,
    )
    if r.revoked_at is not None:
        msg.revoked_at.CopyFrom(convert.timestamp(r.revoked_at))
    return msg


def audit_event(e: AuditEntry) -> admin_pb2.AuditEvent:
    return admin_pb2.AuditEvent(
        audit_id=e.audit_id,
        at=convert.timestamp(e.at),
        actor=e.actor,
        role=e.role,
        token_id=e.token_id,
        action=e.action,
        target=e.target,
        request_json=e.request,
        before_json=e.before,
        after_json=e.after,
        outcome=e.outcome,
        error=e.error,
        request_id=e.request_id,
    )


def _caller() -> Principal:
    who = principal()
    assert who is not None, "AdminService runs behind the guard"
    return who


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, tokens: Tokens, store: AccessStore, verifier: Verifier) -> None:
        self._tokens = tokens
        self._store = store
        self._verifier = verifier

    async def CreateToken(
        self, request: admin_pb2.CreateTokenRequest, context: Context
    ) -> admin_pb2.CreateTokenResponse:
        if request.ttl_seconds < 0:
            await abort(context, invalid("ttl_seconds", "must not be negative"))
        ttl = timedelta(seconds=request.ttl_seconds) if request.ttl_seconds else None
        try:
            token, record = await asyncio.to_thread(
                self._tokens.issue,
                request.role,
                request.subject,
                by=_caller(),
                action="/orderhub.v1.AdminService/CreateToken",
                ttl=ttl,
                note=request.note,
                request_id=request_id(),
            )
        except InvalidRequest as err:
            await abort(context, err)
        return admin_pb2.CreateTokenResponse(token=token, info=token_info(record))

    async def RevokeToken(
        self, request: admin_pb2.RevokeTokenRequest, context: Context
    ) -> admin_pb2.RevokeTokenResponse:
        try:
            record = await asyncio.to_thread(
                self._tokens.revoke,
                request.token_id,
                by=_caller(),
                action="/orderhub.v1.AdminService/RevokeToken",
                reason=request.reason,
                request_id=request_id(),
            )
        except InvalidRequest as err:
            await abort(context, err)
        except TokenNotFound:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"token_id: no token {request.token_id!r}"
            )
        self._verifier.revoked(record.token_id)
        return admin_pb2.RevokeTokenResponse(info=token_info(record))

    async def ListTokens(
        self, request: admin_pb2.ListTokensRequest, context: Context
    ) -> admin_pb2.ListTokensResponse:
        try:
            records = await asyncio.to_thread(
                self._tokens.list, role=request.role, include_inactive=request.include_inactive
            )
        except InvalidRequest as err:
            await abort(context, err)
        return admin_pb2.ListTokensResponse(tokens=[token_info(r) for r in records])

    async def ListAuditEvents(
        self, request: admin_pb2.ListAuditEventsRequest, context: Context
    ) -> admin_pb2.ListAuditEventsResponse:
        if request.page_size < 0 or request.page_size > MAX_PAGE:
            await abort(context, invalid("page_size", f"between 0 and {MAX_PAGE}"))
        try:
            before_id = parse_page_token(request.page_token)
        except ValueError as err:
            await abort(context, invalid("page_token", str(err)))
        since = request.since.ToDatetime(UTC) if request.HasField("since") else None
        until = request.until.ToDatetime(UTC) if request.HasField("until") else None
        if since is not None and until is not None and until <= since:
            await abort(context, invalid("until", "must be after since"))
        size = request.page_size or DEFAULT_PAGE
        entries = await asyncio.to_thread(
            self._store.audit,
            AuditQuery(
                actor=request.actor.strip(),
                action=request.action.strip(),
                target_prefix=request.target_prefix.strip(),
                since=since,
                until=until,
                before_id=before_id,
                limit=size + 1,
            ),
        )
        more = len(entries) > size
        entries = entries[:size]
        return admin_pb2.ListAuditEventsResponse(
            events=[audit_event(e) for e in entries],
            next_page_token=page_token(entries[-1].audit_id) if more and entries else "",
        )
