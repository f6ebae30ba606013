"""Warehouse movements, re-dispatch, alerts and hub events: pure rules, no I/O."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from hub.domain.inventory import (
    InvalidRequest,
    InventoryShard,
    LedgerKind,
    LineRequest,
    Reservation,
    ReservedLine,
    UnknownSku,
    UnknownWarehouse,
)
from hub.domain.movements import AlertKind, HoldEventKind, MovementType, StockMovement
from hub.events import ALERTS, ATP, HOLDS, MAX_ITEMS, messages_for, token

NOW = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)


def make_shard(*stock: tuple[str, str, int], threshold: int = 0) -> InventoryShard:
    shard = InventoryShard()
    for sku, warehouse_id, on_hand in stock:
        shard.upsert_sku(sku, 0, threshold)
        shard.upsert_warehouse(warehouse_id)
        shard.set_stock(sku, warehouse_id, on_hand, NOW)
    shard.drain_changes(NOW)
    return shard


def move(event_id: str, kind: MovementType, qty: int, sku: str = "TEE", wh: str = "WH-A"):  # type: ignore[no-untyped-def]
    return StockMovement(event_id, wh, sku, kind, qty, NOW)


def reserve(shard: InventoryShard, order_id: str, qty: int, wh: str, at: datetime) -> Reservation:
    return shard.reserve(
        order_id=order_id,
        reservation_id=f"rsv-{order_id}",
        lines=[LineRequest(1, "TEE", qty, wh)],
        expires_at=at + timedelta(minutes=15),
        now=at,
    )


# --------------------------------------------------------------------------- movements


@pytest.mark.parametrize(
    ("kind", "qty", "on_hand"),
    [
        (MovementType.INBOUND, 5, 15),
        (MovementType.TRANSFER_IN, 2, 12),
        (MovementType.OUTBOUND, 3, 7),
        (MovementType.TRANSFER_OUT, 4, 6),
        (MovementType.DAMAGE, 1, 9),
        (MovementType.COUNT, 8, 8),
    ],
)
def test_each_movement_changes_on_hand_and_is_ledgered(
    kind: MovementType, qty: int, on_hand: int
) -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    result = shard.apply_movement(move("e1", kind, qty), NOW)
    assert (result.on_hand_before, result.on_hand_after) == (10, on_hand)
    assert shard.levels[("TEE", "WH-A")].on_hand == on_hand
    ledger = shard.drain_changes(NOW).ledger
    assert [(e.kind, e.on_hand_delta, e.event_id) for e in ledger] == [
        (LedgerKind(kind.value), on_hand - 10, "e1")
    ]


def test_a_repeated_event_id_is_applied_once() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    assert not shard.apply_movement(move("e1", MovementType.INBOUND, 5), NOW).duplicate
    again = shard.apply_movement(move("e1", MovementType.INBOUND, 5), NOW)
    assert again.duplicate
    assert shard.levels[("TEE", "WH-A")].on_hand == 15
    assert len(shard.drain_changes(NOW).ledger) == 1


def test_ids_the_database_knows_are_duplicates_after_a_restart() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    shard.remember_events(["e1"])
    assert shard.apply_movement(move("e1", MovementType.INBOUND, 5), NOW).duplicate
    assert shard.levels[("TEE", "WH-A")].on_hand == 10


def test_a_count_records_its_drift_and_alerts() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    result = shard.apply_movement(move("c1", MovementType.COUNT, 7), NOW)
    assert result.drift == -3
    changes = shard.drain_changes(NOW)
    assert changes.ledger[0].reason == "drift -3"
    [alert] = changes.alerts
    assert (alert.kind, alert.drift, alert.event_id) == (AlertKind.COUNT_DRIFT, -3, "c1")


def test_a_count_that_agrees_is_ledgered_without_an_alert() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    assert shard.apply_movement(move("c1", MovementType.COUNT, 10), NOW).drift == 0
    changes = shard.drain_changes(NOW)
    assert [e.on_hand_delta for e in changes.ledger] == [0]
    assert changes.alerts == []


def test_shipping_more_than_the_books_hold_stops_at_zero_and_reports_drift() -> None:
    shard = make_shard(("TEE", "WH-A", 3))
    result = shard.apply_movement(move("o1", MovementType.OUTBOUND, 5), NOW)
    assert (result.on_hand_after, result.drift) == (0, 2)
    assert [a.kind for a in shard.drain_changes(NOW).alerts] == [AlertKind.COUNT_DRIFT]


@pytest.mark.parametrize(
    ("event", "error", "field"),
    [
        (move("", MovementType.INBOUND, 1), InvalidRequest, "event_id"),
        (move("e", MovementType.COUNT, -1), InvalidRequest, "quantity"),
        (move("e", MovementType.INBOUND, 0), InvalidRequest, "quantity"),
        (move("e", MovementType.DAMAGE, -2), InvalidRequest, "quantity"),
        (move("e", MovementType.INBOUND, 1, sku="NOPE"), UnknownSku, "sku"),
        (move("e", MovementType.INBOUND, 1, wh="WH-X"), UnknownWarehouse, "warehouse_id"),
    ],
)
def test_bad_movements_are_refused_and_change_nothing(
    event: StockMovement, error: type[Exception], field: str
) -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    with pytest.raises(error) as refused:
        shard.apply_movement(event, NOW)
    assert getattr(refused.value, "field", None) == field
    assert shard.levels[("TEE", "WH-A")].on_hand == 10
    assert not shard.drain_changes(NOW)
    assert not shard.knows_event("e")


# --------------------------------------------------------------------------- re-dispatch


def test_a_shortfall_moves_the_newest_holds_to_a_warehouse_with_stock() -> None:
    shard = make_shard(("TEE", "WH-A", 5), ("TEE", "WH-B", 10), ("TEE", "WH-C", 2))
    for n in range(5):
        reserve(shard, f"o{n}", 1, "WH-A", NOW + timedelta(seconds=n))
    shard.drain_changes(NOW)
    result = shard.apply_movement(move("d1", MovementType.DAMAGE, 2), NOW)
    # Two units gone: the two newest holds move, to the warehouse with the most stock.
    assert [(m.order_id, m.from_warehouse, m.to_warehouse) for m in result.moved] == [
        ("o4", "WH-A", "WH-B"),
        ("o3", "WH-A", "WH-B"),
    ]
    assert result.review == ()
    assert shard.levels[("TEE", "WH-A")].reserved == 3
    assert shard.levels[("TEE", "WH-B")].reserved == 2
    moved = shard.reservation("o4")
    assert moved is not None
    assert moved.lines == (ReservedLine(1, "TEE", "WH-B", 1),)
    changes = shard.drain_changes(NOW)
    assert len(changes.moves) == 2
    assert changes.lines[("o4", 1)].warehouse_id == "WH-B"
    kinds = {(e.kind, e.warehouse_id, e.other_warehouse) for e in changes.holds}
    assert kinds == {
        (HoldEventKind.MOVED_OUT, "WH-A", "WH-B"),
        (HoldEventKind.MOVED_IN, "WH-B", "WH-A"),
    }


def test_holds_no_warehouse_can_take_go_to_review_with_an_alert() -> None:
    shard = make_shard(("TEE", "WH-A", 4), ("TEE", "WH-B", 1))
    reserve(shard, "big", 3, "WH-A", NOW)
    reserve(shard, "small", 1, "WH-A", NOW + timedelta(seconds=1))
    shard.drain_changes(NOW)
    # A count finds only 1: three units short. "small" moves to WH-B; "big" cannot.
    result = shard.apply_movement(move("c1", MovementType.COUNT, 1), NOW)
    assert [m.order_id for m in result.moved] == ["small"]
    assert [(r.order_id, r.reason) for r in result.review] == [("big", "STOCK_SHORTFALL")]
    changes = shard.drain_changes(NOW)
    assert [r.order_id for r in changes.reviews] == ["big"]
    shortfalls = [a for a in changes.alerts if a.kind is AlertKind.SHORTFALL]
    assert [a.order_id for a in shortfalls] == ["big"]
    # The hold stays: nothing else can be promised from WH-A.
    assert shard.available("TEE", "WH-A") == 0


def test_stock_that_still_covers_the_holds_moves_nothing() -> None:
    shard = make_shard(("TEE", "WH-A", 10), ("TEE", "WH-B", 10))
    reserve(shard, "o1", 4, "WH-A", NOW)
    result = shard.apply_movement(move("d1", MovementType.DAMAGE, 6), NOW)
    assert result.moved == () and result.review == ()


# --------------------------------------------------------------------------- low stock


def test_low_stock_alert_fires_once_and_clears_on_recovery() -> None:
    shard = make_shard(("TEE", "WH-A", 10), threshold=5)
    alerts = []
    for n, kind, qty in [
        (1, MovementType.OUTBOUND, 4),  # 6 left: fine
        (2, MovementType.OUTBOUND, 2),  # 4: low
        (3, MovementType.OUTBOUND, 1),  # 3: still low, no second alert
        (4, MovementType.INBOUND, 10),  # 13: recovered
    ]:
        shard.apply_movement(move(f"e{n}", kind, qty), NOW)
        alerts += shard.drain_changes(NOW).alerts
    assert [(a.kind, a.available) for a in alerts] == [
        (AlertKind.LOW_STOCK, 4),
        (AlertKind.LOW_STOCK_CLEARED, 13),
    ]


def test_reservations_count_towards_low_stock() -> None:
    shard = make_shard(("TEE", "WH-A", 6), threshold=5)
    reserve(shard, "o1", 2, "WH-A", NOW)
    [alert] = shard.drain_changes(NOW).alerts
    assert (alert.kind, alert.available, alert.threshold) == (AlertKind.LOW_STOCK, 4, 5)


def test_a_restarted_shard_does_not_raise_a_raised_alert_again() -> None:
    shard = make_shard(("TEE", "WH-A", 10), threshold=5)
    shard.apply_movement(move("e1", MovementType.OUTBOUND, 7), NOW)
    assert [a.kind for a in shard.drain_changes(NOW).alerts] == [AlertKind.LOW_STOCK]
    restarted = InventoryShard()
    restarted.restore(
        skus=[("TEE", 0, 5)],
        warehouses=["WH-A"],
        levels=[shard.levels[("TEE", "WH-A")]],
        lines=[],
        reservations=[],
    )
    restarted.apply_movement(move("e2", MovementType.OUTBOUND, 1), NOW)
    assert restarted.drain_changes(NOW).alerts == []
    restarted.apply_movement(move("e3", MovementType.INBOUND, 10), NOW)
    assert [a.kind for a in restarted.drain_changes(NOW).alerts] == [AlertKind.LOW_STOCK_CLEARED]


def test_raising_the_threshold_alerts_at_once() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    shard.upsert_sku("TEE", 0, 20)
    assert [a.kind for a in shard.drain_changes(NOW).alerts] == [AlertKind.LOW_STOCK]


# --------------------------------------------------------------------------- hub events


def test_one_commit_becomes_a_message_per_warehouse_and_per_alert() -> None:
    shard = make_shard(("TEE", "WH-A", 100), ("TEE", "WH-B", 100), threshold=150)
    shard.drain_changes(NOW)
    reserve(shard, "o1", 1, "WH-A", NOW)
    reserve(shard, "o2", 1, "WH-A", NOW)
    reserve(shard, "o3", 1, "WH-B", NOW)
    shard.release("o3", NOW)
    messages = messages_for(shard.drain_changes(NOW), NOW)
    subjects = [m.subject for m in messages]
    assert subjects == [f"{HOLDS}.WH-A", f"{HOLDS}.WH-B", f"{ATP}.WH-A", f"{ATP}.WH-B"]
    a_holds = json.loads(messages[0].payload)
    assert [(e["kind"], e["order_id"]) for e in a_holds["events"]] == [
        ("HELD", "o1"),
        ("HELD", "o2"),
    ]
    b_holds = json.loads(messages[1].payload)
    assert [e["kind"] for e in b_holds["events"]] == ["HELD", "RELEASED"]
    atp = json.loads(messages[2].payload)
    assert atp["levels"] == [
        {"sku": "TEE", "on_hand": 100, "reserved": 2, "safety_stock": 0, "available": 98}
    ]
    assert len({m.msg_id for m in messages}) == 4
    assert all(json.loads(m.payload)["msg_id"] == m.msg_id for m in messages)


def test_alerts_get_their_own_subjects() -> None:
    shard = make_shard(("TEE", "WH-A", 10), threshold=5)
    shard.apply_movement(move("c1", MovementType.COUNT, 2), NOW)
    subjects = sorted(m.subject for m in messages_for(shard.drain_changes(NOW), NOW))
    assert f"{ALERTS}.count_drift" in subjects and f"{ALERTS}.low_stock" in subjects


def test_a_busy_tick_is_split_into_several_messages() -> None:
    shard = make_shard(("TEE", "WH-A", MAX_ITEMS + 10))
    for n in range(MAX_ITEMS + 5):
        reserve(shard, f"o{n}", 1, "WH-A", NOW)
    holds = [m for m in messages_for(shard.drain_changes(NOW), NOW) if m.subject.startswith(HOLDS)]
    assert [len(json.loads(m.payload)["events"]) for m in holds] == [MAX_ITEMS, 5]


def test_ids_are_made_safe_as_subject_tokens() -> None:
    assert token("WH.A *>x") == "WH_A___x"
    assert token("WH-EAST") == "WH-EAST"
