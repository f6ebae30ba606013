"""Reading carrier tracking events as lane outcomes: settled, late, skipped, or poison."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.carrier_events import BadTrackingEvent, decode


def event(**fields: Any) -> bytes:
    body: dict[str, Any] = {
        "event_id": "sf-1-delivered",
        "waybill": "SF1",
        "status": "DELIVERED",
        "warehouse_id": "WH-SOUTH",
        "destination_province": "广东省",
        "occurred_at": "2026-11-25T09:30:00+08:00",
        "promised_at": "2026-11-25T18:00:00+08:00",
    }
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def test_delivery_before_the_promise_is_on_time() -> None:
    outcome = decode("carrier.events.sf", event())
    assert outcome is not None
    assert (outcome.carrier, outcome.warehouse_id, outcome.destination_province) == (
        "sf",
        "WH-SOUTH",
        "广东",
    )
    assert outcome.late is False
    assert outcome.occurred_at == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_delivery_after_the_promise_is_late() -> None:
    outcome = decode("carrier.events.zto", event(occurred_at="2026-11-26T08:00:00+08:00"))
    assert outcome is not None and outcome.late is True


def test_explicit_late_flag_wins_over_times() -> None:
    outcome = decode("carrier.events.sf", event(late=True))
    assert outcome is not None and outcome.late is True


def test_lost_parcel_is_late_without_a_promise() -> None:
    outcome = decode("carrier.events.ems", event(status="LOST", promised_at=None))
    assert outcome is not None and outcome.late is True


def test_in_transit_event_settles_nothing() -> None:
    assert decode("carrier.events.sf", event(status="IN_TRANSIT")) is None


@pytest.mark.parametrize(
    ("subject", "data", "code"),
    [
        ("carrier.events.dhl", event(), "UNKNOWN_CARRIER"),
        ("carrier.events.sf.extra", event(), "BAD_SUBJECT"),
        ("carrier.events.sf", b"{not json", "UNDECODABLE"),
        ("carrier.events.sf", b"[1, 2]", "UNDECODABLE"),
        ("carrier.events.sf", event(carrier="jd"), "CARRIER_MISMATCH"),
        ("carrier.events.sf", event(destination_province="Atlantis"), "UNKNOWN_PROVINCE"),
        ("carrier.events.sf", event(destination_province="香港"), "UNKNOWN_PROVINCE"),
        ("carrier.events.sf", event(warehouse_id=""), "MISSING_FIELD"),
        ("carrier.events.sf", event(promised_at=None), "MISSING_FIELD"),
        ("carrier.events.sf", event(occurred_at="yesterday"), "BAD_TIME"),
        ("carrier.events.sf", event(occurred_at="2026-11-25T09:30:00"), "BAD_TIME"),
    ],
)
def test_unreadable_event_is_poison_with_a_code(subject: str, data: bytes, code: str) -> None:
    with pytest.raises(BadTrackingEvent) as refused:
        decode(subject, data)
    assert refused.value.code == code


@given(st.binary(max_size=200))
def test_no_bytes_crash_the_decoder(data: bytes) -> None:
    try:
        decode("carrier.events.sf", data)
    except BadTrackingEvent as err:
        assert err.code and err.reason


def test_handover_time_is_kept_when_given() -> None:
    outcome = decode("carrier.events.sf", event(shipped_at="2026-11-24T16:05:00+08:00"))
    assert outcome is not None
    assert outcome.shipped_at == datetime(2026, 11, 24, 8, 5, tzinfo=UTC)


def test_handover_after_delivery_is_poison() -> None:
    with pytest.raises(BadTrackingEvent) as refused:
        decode("carrier.events.sf", event(shipped_at="2026-11-26T00:00:00+08:00"))
    assert refused.value.code == "BAD_TIME"
