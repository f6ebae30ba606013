"""Bearer tokens: issued signed and with an expiry, checked on every RPC, revocable.

A token is a JWT (HS256) naming its row in ``api_tokens`` (``jti``), its role and its
subject. The signature proves the hub issued it; the row says whether it still counts, so
revoking is a database write that every hub process sees within ``refresh_s`` seconds. The
signing key is ``ORDERHUB_TOKEN_SECRET`` (give every replica the same one) or, on one
machine, a random key kept in ``<data-dir>/token.key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from hub.domain.access import ROLES
from hub.domain.inventory import InvalidRequest
from hub.settings import Settings
from hub.store.access import AccessStore, AuditEntry, TokenNotFound, TokenRecord

log = logging.getLogger("orderhub.auth")

ISSUER = "orderhub"
ALGORITHM = "HS256"
DEFAULT_TTL = timedelta(days=30)
MAX_TTL = timedelta(days=366)
MIN_SECRET_BYTES = 32
KEY_FILE = "token.key"
#: Where ``orderhub up`` leaves an admin token for the person who started it.
ADMIN_TOKEN_FILE = "admin.token"


class Unauthenticated(Exception):
    """The call carries no token, or one that is not (or no longer) valid."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and role."""

    subject: str
    role: str
    token_id: str


def utcnow() -> datetime:
    return datetime.now(UTC)


def signing_key(settings: Settings) -> bytes:
    """The key tokens are signed with: the setting, else the data directory's key file.

    The key file is created (random, readable by its owner only) the first time it is
    needed; ``orderhub up`` and ``orderhub token`` on the same data directory share it.
    """
    if settings.token_secret:
        key = settings.token_secret.encode()
        if len(key) < MIN_SECRET_BYTES:
            raise ValueError(
                f"ORDERHUB_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
            )
        return key
    path = settings.data_dir / KEY_FILE
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_bytes().strip()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (replacing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class Tokens:
    """Issues, revokes and lists tokens; every issue and revocation is audited."""

    def __init__(
        self, store: AccessStore, key: bytes, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._key = key
        self._clock = clock

    def issue(
        self,
        role: str,
        subject: str,
        *,
        by: Principal,
        action: str,
        ttl: timedelta | None = None,
        note: str = "",
        request_id: str = "",
    ) -> tuple[str, TokenRecord]:
        """A new token for ``role`` held by ``subject``: (the token, its record)."""
        role = role.strip()
        subject = subject.strip()
        if role not in ROLES:
            raise InvalidRequest(f"unknown role {role!r}; one of {', '.join(ROLES)}", field="role")
        if not subject:
            raise InvalidRequest("name who holds the token", field="subject")
        if len(subject) > 128:
            raise InvalidRequest("at most 128 characters", field="subject")
        ttl = ttl or DEFAULT_TTL
        if ttl <= timedelta(0) or ttl > MAX_TTL:
            raise InvalidRequest(
                f"a lifetime above zero and at most {MAX_TTL.days} days", field="ttl_seconds"
            )
        now = self._clock().replace(microsecond=0)
        record = TokenRecord(
            token_id=secrets.token_hex(8),
            subject=subject,
            role=role,
            note=note.strip(),
            issued_by=by.subject,
            issued_at=now,
            expires_at=now + ttl,
        )
        token = jwt.encode(
            {
                "iss": ISSUER,
                "sub": subject,
                "role": role,
                "jti": record.token_id,
                "iat": int(now.timestamp()),
                "exp": int(record.expires_at.timestamp()),
            },
            self._key,
            algorithm=ALGORITHM,
        )
        self._store.add_token(
            record,
            AuditEntry(
                at=now,
                actor=by.subject,
                role=by.role,
                token_id=by.token_id,
                action=action,
                target=f"token:{record.token_id}",
                request=_json({"role": role, "subject": subject, "ttl_s": ttl.total_seconds()}),
                after=_json(record.as_dict()),
                outcome="OK",
                request_id=request_id,
            ),
        )
        log.info(
            "token issued",
            extra={"token_id": record.token_id, "role": role, "subject": subject},
        )
        return token, record

    def revoke(
        self, token_id: str, *, by: Principal, action: str, reason: str = "", request_id: str = ""
    ) -> TokenRecord:
        """Revoke a token; revoking one twice changes nothing. TokenNotFound if unknown."""
        token_id = token_id.strip()
        if not token_id:
            raise InvalidRequest("name the token to revoke", field="token_id")
        now = self._clock()
        _, after = self._store.revoke_token(
            token_id,
            at=now,
            by=by.subject,
            reason=reason.strip(),
            audit=AuditEntry(
                at=now,
                actor=by.subject,
                role=by.role,
                token_id=by.token_id,
                action=action,
                target=f"token:{token_id}",
                request=_json({"token_id": token_id, "reason": reason}),
                outcome="OK",
                request_id=request_id,
            ),
        )
        log.info("token revoked", extra={"token_id": token_id, "by": by.subject})
        return after

    def list(self, *, role: str = "", include_inactive: bool = False) -> list[TokenRecord]:
        if role and role not in ROLES:
            raise InvalidRequest(f"unknown role {role!r}", field="role")
        return self._store.tokens(role=role, active_at=None if include_inactive else self._clock())


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(slots=True)
class _State:
    """What a token's row says now (its claims say who holds it and with which role)."""

    expires_at: float
    revoked: bool


class Verifier:
    """Checks a call's ``authorization`` metadata; caches what it has verified.

    A token's signature and claims are verified once and remembered; its row's state
    (revoked or not) is reloaded for every token every ``refresh_s`` seconds, and looked up
    at once the first time a token id is seen (a token another replica just issued).
    """

    def __init__(
        self,
        store: AccessStore,
        key: bytes,
        *,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._key = key
        self._refresh_s = refresh_s
        self._clock = clock
        self._claims: dict[str, Principal] = {}
        self._states: dict[str, _State] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Reload every token's state (revocations made anywhere take effect)."""
        records = await asyncio.to_thread(self._store.tokens)
        self._states = {r.token_id: self._state(r) for r in records}

    def revoked(self, token_id: str) -> None:
        """A token this process just revoked: refused from the next call on."""
        state = self._states.get(token_id)
        if state is not None:
            state.revoked = True

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("could not reload the token list; keeping the last one")

    @staticmethod
    def _state(r: TokenRecord) -> _State:
        return _State(r.expires_at.timestamp(), r.revoked_at is not None)

    async def check(self, authorization: str | None) -> Principal:
        """The caller named by an ``authorization: Bearer <token>`` value; Unauthenticated."""
        if not authorization:
            raise Unauthenticated("no bearer token: send metadata 'authorization: Bearer <token>'")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata must read 'Bearer <token>'")
        token = token.strip()
        principal = self._claims.get(token)
        if principal is None:
            principal = self._decode(token)
        state = self._states.get(principal.token_id)
        if state is None:
            state = await self._look_up(principal.token_id)
        if state is None:
            raise Unauthenticated("this token was not issued by this hub's database")
        if state.revoked:
            raise Unauthenticated("this token has been revoked")
        if state.expires_at <= self._clock():
            raise Unauthenticated("this token has expired")
        return principal

    def _decode(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "jti", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise Unauthenticated("this token has expired") from err
        except jwt.InvalidTokenError as err:
            raise Unauthenticated(f"not a valid token of this hub: {err}") from err
        role = claims.get("role")
        if role not in ROLES:
            raise Unauthenticated("the token names no known role")
        principal = Principal(subject=str(claims["sub"]), role=role, token_id=str(claims["jti"]))
        if len(self._claims) > 10_000:
            self._claims.clear()
        self._claims[token] = principal
        return principal

    async def _look_up(self, token_id: str) -> _State | None:
        record = await asyncio.to_thread(self._store.token, token_id)
        if record is None:
            return None
        state = self._state(record)
        self._states[token_id] = state
        return state


__all__ = [
    "ADMIN_TOKEN_FILE",
    "Principal",
    "TokenNotFound",
    "Tokens",
    "Unauthenticated",
    "Verifier",
    "signing_key",
]
