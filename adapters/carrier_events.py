"""Carrier tracking events off NATS (``carrier.events.<carrier>``) → lane outcomes.

A carrier integration publishes one JSON object per tracking event::

    {"event_id": "sf-SF1400023-delivered", "waybill": "SF1400023", "status": "DELIVERED",
     "warehouse_id": "WH-SOUTH", "destination_province": "广东省",
     "occurred_at": "2026-11-25T09:30:00+08:00", "promised_at": "2026-11-25T18:00:00+08:00",
     "shipped_at": "2026-11-24T16:05:00+08:00"}

Only events that settle a parcel are outcomes: ``DELIVERED`` is late when ``late`` says
so, or else when it happened after ``promised_at``; ``LOST`` and ``RETURNED`` are always
late. Every other status (picked up, in transit, out for delivery …) is not an outcome
and is skipped. ``shipped_at`` (optional) is when the carrier took the parcel; it tells a
half-open lane's probes from parcels that left before it tripped. The carrier comes from
the subject; a ``carrier`` field, when present,
must agree with it.

Anything that cannot be read raises :class:`BadTrackingEvent` with a code and a reason;
the consumer keeps such messages as dead letters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.domain.geo import province_of
from hub.domain.quotes import CARRIERS

SUBJECT_PREFIX = "carrier.events."
SETTLED_LATE = frozenset({"LOST", "RETURNED"})


class BadTrackingEvent(Exception):
    """A tracking event that can never be read as it is."""

    def __init__(self, code: str, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class TrackedOutcome:
    """A parcel's settled delivery on a lane: late or on time, when it happened."""

    event_id: str
    warehouse_id: str
    carrier: str
    #: Canonical short province name (广东).
    destination_province: str
    late: bool
    occurred_at: datetime
    #: When the carrier took the parcel (``shipped_at``), when the event says.
    shipped_at: datetime | None = None


def decode(subject: str, data: bytes) -> TrackedOutcome | None:
    """The outcome a tracking event settles, or None when it settles nothing."""
    if not subject.startswith(SUBJECT_PREFIX) or subject.count(".") != 2:
        raise BadTrackingEvent("BAD_SUBJECT", f"subject {subject!r} is not carrier.events.<id>")
    carrier = subject[len(SUBJECT_PREFIX) :]
    if carrier not in CARRIERS:
        raise BadTrackingEvent("UNKNOWN_CARRIER", f"unknown carrier {carrier!r} in the subject")
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadTrackingEvent("UNDECODABLE", f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise BadTrackingEvent("UNDECODABLE", "a tracking event is a JSON object")
    event_id = _text(body, "event_id", "")
    named = body.get("carrier")
    if named not in (None, "", carrier):
        raise BadTrackingEvent(
            "CARRIER_MISMATCH", f"carrier {named!r} in a {carrier} subject", event_id
        )
    status = _text(body, "status", event_id).upper()
    if status != "DELIVERED" and status not in SETTLED_LATE:
        return None
    occurred_at = _time(body, "occurred_at", event_id)
    if status in SETTLED_LATE:
        late = True
    elif isinstance(body.get("late"), bool):
        late = body["late"]
    elif body.get("promised_at") not in (None, ""):
        late = occurred_at > _time(body, "promised_at", event_id)
    else:
        raise BadTrackingEvent(
            "MISSING_FIELD", "a DELIVERED event needs late or promised_at", event_id
        )
    raw_province = _text(body, "destination_province", event_id)
    province = province_of(raw_province)
    if province is None or not province.domestic:
        raise BadTrackingEvent(
            "UNKNOWN_PROVINCE", f"destination_province {raw_province!r} is not known", event_id
        )
    shipped_at = None
    if body.get("shipped_at") not in (None, ""):
        shipped_at = _time(body, "shipped_at", event_id)
        if shipped_at > occurred_at:
            raise BadTrackingEvent(
                "BAD_TIME", "shipped_at is after the delivery's occurred_at", event_id
            )
    return TrackedOutcome(
        event_id=event_id,
        warehouse_id=_text(body, "warehouse_id", event_id),
        carrier=carrier,
        destination_province=province.short,
        late=late,
        occurred_at=occurred_at,
        shipped_at=shipped_at,
    )


def _text(body: dict[str, Any], name: str, event_id: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadTrackingEvent("MISSING_FIELD", f"{name} is required", event_id)
    return value.strip()


def _time(body: dict[str, Any], name: str, event_id: str) -> datetime:
    text = _text(body, name, event_id)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadTrackingEvent("BAD_TIME", f"{name} {text!r} is not RFC 3339", event_id) from None
    if moment.tzinfo is None:
        raise BadTrackingEvent("BAD_TIME", f"{name} {text!r} has no time zone", event_id)
    return moment.astimezone(UTC)
