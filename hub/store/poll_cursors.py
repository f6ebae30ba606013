"""Poll cursors: how far each shop's order pull has got, and how its last attempts went.

A cursor moves only when a whole window has been pulled, so a crash re-pulls that window
(intake is idempotent). Failures are counted and the last error kept until a window
succeeds again; an error that stopped the shop stays visible here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select, text

from hub.store import schema
from hub.store.db import upsert

_ERROR_LIMIT = 2000  # characters of an error kept; platform messages can be long
_KEYS = ("platform", "shop_id")


@dataclass(frozen=True, slots=True)
class PollCursor:
    """One shop's pull position and health, as stored."""

    platform: str
    shop_id: str
    #: Orders modified up to here have been pulled; the next window starts here.
    window_end: datetime
    last_run_at: datetime | None
    last_error: str
    #: Failed calls since the last window that succeeded.
    failures: int
    #: Orders pulled in all windows so far.
    orders_seen: int
    updated_at: datetime


#: Any fixed number identifies the pollers' advisory locks on PostgreSQL (one per shop).
POLL_LOCK = 0x0DE7_0B0E


class Lease:
    """This process's right to pull one shop now; :meth:`release` it when the run is over."""

    def __init__(self, conn: Connection | None, key: str) -> None:
        self._conn = conn
        self._key = key

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:cls, hashtext(:key))"),
                {"cls": POLL_LOCK, "key": self._key},
            )
            self._conn.commit()
        finally:
            self._conn.close()
            self._conn = None


class PollCursors:
    """Reads and moves poll cursors."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def try_lease(self, platform: str, shop_id: str) -> Lease | None:
        """The right to pull a shop now, or None while another hub process pulls it.

        Hub replicas all run the pollers of the shops file; on PostgreSQL a session advisory
        lock per shop makes one of them pull a window while the others skip that round (the
        lock goes with the connection if the process dies). SQLite serves one process.
        """
        key = f"{platform}/{shop_id}"
        if self._engine.dialect.name != "postgresql":
            return Lease(None, key)
        conn = self._engine.connect()
        try:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:cls, hashtext(:key))"),
                {"cls": POLL_LOCK, "key": key},
            ).scalar_one()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return Lease(conn, key)

    def get(self, platform: str, shop_id: str) -> PollCursor | None:
        """The shop's cursor, or None before its first pull."""
        t = schema.poll_cursors
        with self._engine.connect() as conn:
            row = conn.execute(
                select(t).where(t.c.platform == platform, t.c.shop_id == shop_id)
            ).first()
        return None if row is None else _cursor(row)

    def all(self) -> list[PollCursor]:
        """Every shop's cursor, by platform and shop."""
        t = schema.poll_cursors
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.platform, t.c.shop_id)).all()
        return [_cursor(r) for r in rows]

    def advance(
        self, platform: str, shop_id: str, window_end: datetime, *, orders: int, at: datetime
    ) -> PollCursor:
        """Record a window pulled in full: move to its end, clear the failures."""
        with self._engine.begin() as conn:
            current = _locked(conn, platform, shop_id)
            cursor = PollCursor(
                platform=platform,
                shop_id=shop_id,
                window_end=window_end if current is None else max(window_end, current.window_end),
                last_run_at=at,
                last_error="",
                failures=0,
                orders_seen=(0 if current is None else current.orders_seen) + orders,
                updated_at=at,
            )
            upsert(conn, schema.poll_cursors, [asdict(cursor)], _KEYS)
        return cursor

    def record_failure(
        self, platform: str, shop_id: str, error: str, *, start: datetime, at: datetime
    ) -> PollCursor:
        """Count a failed attempt and keep its error; the cursor stays where it was.

        A shop failing before its first window is stored at ``start`` (where that window
        begins), so the next attempt starts there and not at a later "now".
        """
        with self._engine.begin() as conn:
            current = _locked(conn, platform, shop_id)
            cursor = PollCursor(
                platform=platform,
                shop_id=shop_id,
                window_end=start if current is None else current.window_end,
                last_run_at=at,
                last_error=error[:_ERROR_LIMIT],
                failures=(0 if current is None else current.failures) + 1,
                orders_seen=0 if current is None else current.orders_seen,
                updated_at=at,
            )
            upsert(conn, schema.poll_cursors, [asdict(cursor)], _KEYS)
        return cursor


def _locked(conn: Connection, platform: str, shop_id: str) -> PollCursor | None:
    """The shop's row, locked on PostgreSQL for the rest of the transaction."""
    t = schema.poll_cursors
    stmt = select(t).where(t.c.platform == platform, t.c.shop_id == shop_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return None if row is None else _cursor(row)


def _cursor(row: Row[Any]) -> PollCursor:
    return PollCursor(
        platform=row.platform,
        shop_id=row.shop_id,
        window_end=row.window_end,
        last_run_at=row.last_run_at,
        last_error=row.last_error,
        failures=row.failures,
        orders_seen=row.orders_seen,
        updated_at=row.updated_at,
    )
