"""Dead letters: messages that could not be applied, kept with the reason until resolved."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, func, select, update

from hub.store import schema
from hub.store.db import upsert_insert


class LetterStatus(StrEnum):
    """What became of a dead letter."""

    OPEN = "OPEN"
    REPLAYED = "REPLAYED"
    DISCARDED = "DISCARDED"


@dataclass(frozen=True, slots=True)
class NewLetter:
    """A message to keep: where it came from, what it held, why it failed."""

    source: str
    subject: str
    stream: str
    stream_seq: int
    event_id: str
    headers: dict[str, str]
    payload: bytes
    error: str
    reason: str


@dataclass(frozen=True, slots=True)
class Letter:
    """A kept message as stored."""

    letter_id: int
    source: str
    subject: str
    stream: str
    stream_seq: int
    event_id: str
    headers: dict[str, str]
    payload: bytes
    error: str
    reason: str
    status: LetterStatus
    attempts: int
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What a replay did to one dead letter."""

    letter_id: int
    status: LetterStatus
    duplicate: bool = False
    error: str = ""
    reason: str = ""


#: Why a replay left a letter alone: it was not open (replayed or discarded already).
NOT_OPEN = "not open"


def not_open(letter: Letter) -> ReplayOutcome:
    """The outcome of replaying a letter that is not open: nothing is done to it."""
    return ReplayOutcome(letter.letter_id, letter.status, reason=NOT_OPEN)


class DeadLetters:
    """Keeps, lists and resolves dead letters."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def keep(self, letters: Sequence[NewLetter]) -> None:
        """Store letters; one redelivered from the same stream position is kept once."""
        if not letters:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "source": n.source,
                "subject": n.subject,
                "stream": n.stream,
                "stream_seq": n.stream_seq,
                "event_id": n.event_id,
                "headers": json.dumps(n.headers, ensure_ascii=False),
                "payload": n.payload,
                "error": n.error,
                "reason": n.reason,
                "status": LetterStatus.OPEN.value,
                "attempts": 1,
                "received_at": now,
                "updated_at": now,
            }
            for n in letters
        ]
        with self._engine.begin() as conn:
            conn.execute(
                upsert_insert(conn, schema.dead_letters).on_conflict_do_nothing(
                    index_elements=["source", "stream", "stream_seq"]
                ),
                rows,
            )

    def listing(
        self,
        status: LetterStatus = LetterStatus.OPEN,
        *,
        after: int = 0,
        limit: int = 100,
        source: str = "",
    ) -> list[Letter]:
        """Letters with a status (and from one source, if given), oldest first, after an id."""
        t = schema.dead_letters
        query = (
            select(t)
            .where(t.c.status == status.value, t.c.letter_id > after)
            .order_by(t.c.letter_id)
            .limit(limit)
        )
        if source:
            query = query.where(t.c.source == source)
        with self._engine.connect() as conn:
            return [_letter(r) for r in conn.execute(query)]

    def get(self, letter_ids: Sequence[int]) -> list[Letter]:
        """These letters, by id."""
        t = schema.dead_letters
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.letter_id.in_(list(letter_ids))).order_by(t.c.letter_id)
            )
            return [_letter(r) for r in rows]

    def count_open(self) -> int:
        """How many letters wait for a decision."""
        t = schema.dead_letters
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.count()).where(t.c.status == LetterStatus.OPEN.value)
            ).scalar()
        return int(value or 0)

    def resolve(
        self, letter_id: int, status: LetterStatus, *, error: str = "", reason: str = ""
    ) -> None:
        """Record a replay or discard: the new status, and the reason it is still open."""
        t = schema.dead_letters
        values: dict[str, Any] = {
            "status": status.value,
            "updated_at": datetime.now(UTC),
            "attempts": t.c.attempts + 1,
        }
        if error:
            values["error"] = error
        if reason:
            values["reason"] = reason
        with self._engine.begin() as conn:
            conn.execute(update(t).where(t.c.letter_id == letter_id).values(**values))

    def record_replays(self, outcomes: Sequence[ReplayOutcome]) -> None:
        """Record what replays did to their letters (those that were open)."""
        for outcome in outcomes:
            if outcome.reason != NOT_OPEN:
                self.resolve(
                    outcome.letter_id, outcome.status, error=outcome.error, reason=outcome.reason
                )

    def discard(self, letter_ids: Sequence[int], reason: str) -> int:
        """Mark open letters discarded; returns how many were."""
        t = schema.dead_letters
        with self._engine.begin() as conn:
            result = conn.execute(
                update(t)
                .where(
                    t.c.letter_id.in_(list(letter_ids)),
                    t.c.status == LetterStatus.OPEN.value,
                )
                .values(
                    status=LetterStatus.DISCARDED.value,
                    reason=t.c.reason + (f" | discarded: {reason}" if reason else " | discarded"),
                    updated_at=datetime.now(UTC),
                )
            )
        return int(result.rowcount)


def _letter(r: Any) -> Letter:
    return Letter(
        letter_id=int(r.letter_id),
        source=r.source,
        subject=r.subject,
        stream=r.stream,
        stream_seq=int(r.stream_seq),
        event_id=r.event_id,
        headers=json.loads(r.headers or "{}"),
        payload=bytes(r.payload),
        error=r.error,
        reason=r.reason,
        status=LetterStatus(r.status),
        attempts=int(r.attempts),
        received_at=r.received_at,
        updated_at=r.updated_at,
    )
