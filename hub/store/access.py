"""Access tokens' records and the append-only audit log."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, or_, select, update

from hub.store import schema


class TokenNotFound(Exception):
    """No token has this id."""


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An issued token's row."""

    token_id: str
    subject: str
    role: str
    note: str
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str = ""
    revoke_reason: str = ""

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def as_dict(self) -> dict[str, str]:
        """The record as JSON-ready fields (for the audit log)."""
        out = {
            "token_id": self.token_id,
            "subject": self.subject,
            "role": self.role,
            "note": self.note,
            "issued_by": self.issued_by,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }
        if self.revoked_at is not None:
            out |= {
                "revoked_at": self.revoked_at.isoformat(),
                "revoked_by": self.revoked_by,
                "revoke_reason": self.revoke_reason,
            }
        return out


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited write, to be appended or as read back (``audit_id`` 0 until stored)."""

    at: datetime
    actor: str
    role: str
    action: str
    outcome: str
    target: str = ""
    token_id: str = ""
    request: str = ""
    before: str = ""
    after: str = ""
    error: str = ""
    request_id: str = ""
    audit_id: int = 0


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """A filter over the audit log, newest first, paged by ``before_id``."""

    actor: str = ""
    action: str = ""
    target_prefix: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before_id: int = 0
    limit: int = 100


def _token(row: object) -> TokenRecord:
    m = row._mapping  # type: ignore[attr-defined]
    return TokenRecord(
        token_id=m["token_id"],
        subject=m["subject"],
        role=m["role"],
        note=m["note"],
        issued_by=m["issued_by"],
        issued_at=m["issued_at"],
        expires_at=m["expires_at"],
        revoked_at=m["revoked_at"],
        revoked_by=m["revoked_by"],
        revoke_reason=m["revoke_reason"],
    )


def _audit_values(e: AuditEntry) -> dict[str, object]:
    return {
        "at": e.at,
        "actor": e.actor[:128],
        "role": e.role[:32],
        "token_id": e.token_id,
        "action": e.action[:128],
        "target": e.target[:256],
        "request": e.request,
        "before": e.before,
        "after": e.after,
        "outcome": e.outcome,
        "error": e.error,
        "request_id": e.request_id[:64],
    }


def append_audit(conn: Connection, entries: Sequence[AuditEntry]) -> None:
    """Append audit entries inside the caller's transaction."""
    if entries:
        conn.execute(schema.audit_events.insert(), [_audit_values(e) for e in entries])


class AccessStore:
    """Token records and the audit log in the hub's database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -------------------------------------------------------------------------- tokens

    def add_token(self, record: TokenRecord, audit: AuditEntry) -> None:
        """Store a newly issued token and its audit entry in one transaction."""
        with self._engine.begin() as conn:
            conn.execute(
                schema.api_tokens.insert().values(
                    token_id=record.token_id,
                    subject=record.subject,
                    role=record.role,
                    note=record.note,
                    issued_by=record.issued_by,
                    issued_at=record.issued_at,
                    expires_at=record.expires_at,
                    revoked_at=None,
                    revoked_by="",
                    revoke_reason="",
                )
            )
            append_audit(conn, [audit])

    def revoke_token(
        self, token_id: str, *, at: datetime, by: str, reason: str, audit: AuditEntry
    ) -> tuple[TokenRecord, TokenRecord]:
        """Revoke a token (a second revocation changes nothing); (before, after).

        The audit entry is stored with the before and after filled in, in the same
        transaction as the change.
        """
        t = schema.api_tokens
        with self._engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.token_id == token_id).with_for_update()).first()
            if row is None:
                raise TokenNotFound(token_id)
            before = _token(row)
            if before.revoked_at is None:
                conn.execute(
                    update(t)
                    .where(t.c.token_id == token_id)
                    .values(revoked_at=at, revoked_by=by, revoke_reason=reason)
                )
            after = _token(conn.execute(select(t).where(t.c.token_id == token_id)).one())
            append_audit(
                conn,
                [
                    replace(
                        audit,
                        before=json.dumps(before.as_dict(), ensure_ascii=False),
                        after=json.dumps(after.as_dict(), ensure_ascii=False),
                    )
                ],
            )
        return before, after

    def token(self, token_id: str) -> TokenRecord | None:
        t = schema.api_tokens
        with self._engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.token_id == token_id)).first()
        return None if row is None else _token(row)

    def tokens(self, *, role: str = "", active_at: datetime | None = None) -> list[TokenRecord]:
        """Tokens, oldest first; only those of ``role`` and active at ``active_at`` if given."""
        t = schema.api_tokens
        query = select(t).order_by(t.c.issued_at, t.c.token_id)
        if role:
            query = query.where(t.c.role == role)
        if active_at is not None:
            query = query.where(t.c.revoked_at.is_(None), t.c.expires_at > active_at)
        with self._engine.connect() as conn:
            return [_token(r) for r in conn.execute(query)]

    # --------------------------------------------------------------------------- audit

    def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append audit entries in one transaction."""
        with self._engine.begin() as conn:
            append_audit(conn, entries)

    def audit(self, q: AuditQuery) -> list[AuditEntry]:
        """Audit entries matching ``q``, newest first."""
        a = schema.audit_events
        query = select(a).order_by(a.c.audit_id.desc()).limit(q.limit)
        conditions = []
        if q.actor:
            conditions.append(a.c.actor == q.actor)
        if q.action:
            # The full RPC name, or its last part (SetStock), or a command.
            conditions.append(or_(a.c.action == q.action, a.c.action.endswith(f"/{q.action}")))
        if q.target_prefix:
            conditions.append(a.c.target.startswith(q.target_prefix, autoescape=True))
        if q.since is not None:
            conditions.append(a.c.at >= q.since)
        if q.until is not None:
            conditions.append(a.c.at < q.until)
        if q.before_id:
            conditions.append(a.c.audit_id < q.before_id)
        if conditions:
            query = query.where(and_(*conditions))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(
                audit_id=r.audit_id,
                at=r.at,
                actor=r.actor,
                role=r.role,
                token_id=r.token_id,
                action=r.action,
                target=r.target,
                request=r.request,
                before=r.before,
                after=r.after,
                outcome=r.outcome,
                error=r.error,
                request_id=r.request_id,
            )
            for r in rows
        ]


def page_token(before_id: int) -> str:
    """An opaque page token for the page after ``before_id``."""
    return base64.urlsafe_b64encode(f"a{before_id}".encode()).decode()


def parse_page_token(token: str) -> int:
    """The audit id a page token continues before; ValueError when it is not one of ours."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError("not a page token of ListAuditEvents") from err
    if not raw.startswith("a") or not raw[1:].isdigit():
        raise ValueError("not a page token of ListAuditEvents")
    return int(raw[1:])
