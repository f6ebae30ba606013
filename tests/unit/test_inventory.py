"""The pure inventory rules: no Ray, no database, milliseconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.inventory import (
    InsufficientStock,
    InvalidRequest,
    InventoryShard,
    LedgerKind,
    LineRequest,
    LineStatus,
    ReservationClosed,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    ReservedLine,
    StockUndecided,
    UnknownSku,
    UnknownWarehouse,
)
from hub.domain.sharding import shard_of

NOW = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=15)


def make_shard(*stock: tuple[str, str, int], safety: int = 0) -> InventoryShard:
    shard = InventoryShard()
    for sku, warehouse_id, on_hand in stock:
        shard.upsert_sku(sku, safety)
        shard.upsert_warehouse(warehouse_id)
        shard.set_stock(sku, warehouse_id, on_hand, NOW)
    shard.drain_changes(NOW)
    return shard


def reserve(shard: InventoryShard, order_id: str, *lines: tuple[str, int, str], at=NOW):  # type: ignore[no-untyped-def]
    return shard.reserve(
        order_id=order_id,
        reservation_id=f"rsv-{order_id}",
        lines=[LineRequest(n, sku, qty, wh) for n, (sku, qty, wh) in enumerate(lines, 1)],
        expires_at=at + timedelta(minutes=15),
        now=at,
    )


def test_reserve_holds_stock_and_lowers_available() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    assert shard.available("TEE", "WH-A") == 7
    assert shard.levels[("TEE", "WH-A")].reserved == 3


def test_reservation_is_all_or_nothing() -> None:
    shard = make_shard(("TEE", "WH-A", 10), ("CAP", "WH-A", 1))
    with pytest.raises(InsufficientStock) as refused:
        reserve(shard, "o1", ("TEE", 3, "WH-A"), ("CAP", 2, "WH-A"))
    assert refused.value.field == "CAP"
    assert shard.available("TEE", "WH-A") == 10
    assert shard.reservation("o1") is None
    assert not shard.drain_changes(NOW)


def test_two_lines_of_one_sku_count_together() -> None:
    shard = make_shard(("TEE", "WH-A", 4))
    with pytest.raises(InsufficientStock):
        reserve(shard, "o1", ("TEE", 3, "WH-A"), ("TEE", 2, "WH-A"))
    assert shard.available("TEE", "WH-A") == 4


def test_same_order_gets_the_same_reservation_back() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    first = reserve(shard, "o1", ("TEE", 3, "WH-A"))
    again = shard.reserve(
        order_id="o1",
        reservation_id="another-attempt",
        lines=[LineRequest(1, "TEE", 3, "WH-A")],
        expires_at=LATER,
        now=NOW,
    )
    assert again.reservation_id == first.reservation_id
    assert shard.available("TEE", "WH-A") == 7


def test_safety_stock_is_kept_out_of_available() -> None:
    shard = make_shard(("TEE", "WH-A", 10), safety=4)
    assert shard.available("TEE", "WH-A") == 6
    with pytest.raises(InsufficientStock):
        reserve(shard, "o1", ("TEE", 7, "WH-A"))
    shard.set_stock("TEE", "WH-A", 10, NOW, safety_stock=1)
    assert shard.available("TEE", "WH-A") == 9


def test_line_without_warehouse_goes_where_most_stock_is() -> None:
    shard = make_shard(("TEE", "WH-A", 5), ("TEE", "WH-B", 8))
    r = reserve(shard, "o1", ("TEE", 2, ""))
    assert r.lines[0].warehouse_id == "WH-B"


def test_line_without_warehouse_fails_when_no_single_warehouse_has_enough() -> None:
    shard = make_shard(("TEE", "WH-A", 5), ("TEE", "WH-B", 5))
    with pytest.raises(InsufficientStock, match="total available 10"):
        reserve(shard, "o1", ("TEE", 6, ""))


def test_unknown_sku_and_warehouse_are_named() -> None:
    shard = make_shard(("TEE", "WH-A", 5))
    with pytest.raises(UnknownSku) as sku_err:
        reserve(shard, "o1", ("NOPE", 1, "WH-A"))
    assert sku_err.value.field == "sku"
    with pytest.raises(UnknownWarehouse) as wh_err:
        reserve(shard, "o1", ("TEE", 1, "WH-Z"))
    assert wh_err.value.field == "warehouse_id"


def test_non_positive_quantity_is_refused() -> None:
    shard = make_shard(("TEE", "WH-A", 5))
    with pytest.raises(InvalidRequest) as err:
        reserve(shard, "o1", ("TEE", 0, "WH-A"))
    assert err.value.field == "lines.quantity"


def test_negative_count_is_refused() -> None:
    shard = make_shard(("TEE", "WH-A", 5))
    with pytest.raises(InvalidRequest) as err:
        shard.set_stock("TEE", "WH-A", -1, NOW)
    assert err.value.field == "on_hand"


def test_moving_held_lines_keeps_the_stock_held_throughout() -> None:
    shard = make_shard(
        ("TEE", "WH-A", 5), ("TEE", "WH-B", 5), ("CAP", "WH-A", 2), ("CAP", "WH-B", 2)
    )
    reserve(shard, "o1", ("TEE", 3, "WH-A"), ("CAP", 1, "WH-A"))
    lines = shard.move_holds("o1", [(1, "WH-B"), (2, "WH-B")], "routing", NOW)
    assert [(ln.line_no, ln.warehouse_id) for ln in lines] == [(1, "WH-B"), (2, "WH-B")]
    assert shard.available("TEE", "WH-A") == 5
    assert shard.available("TEE", "WH-B") == 2
    assert shard.reservation("o1").lines[0].warehouse_id == "WH-B"  # type: ignore[union-attr]
    changes = shard.drain_changes(NOW)
    assert {(m.line_no, m.from_warehouse, m.to_warehouse) for m in changes.moves} == {
        (1, "WH-A", "WH-B"),
        (2, "WH-A", "WH-B"),
    }


def test_moving_held_lines_is_all_or_nothing() -> None:
    shard = make_shard(
        ("TEE", "WH-A", 5), ("TEE", "WH-B", 5), ("CAP", "WH-A", 2), ("CAP", "WH-B", 0)
    )
    reserve(shard, "o1", ("TEE", 3, "WH-A"), ("CAP", 1, "WH-A"))
    with pytest.raises(InsufficientStock):
        shard.move_holds("o1", [(1, "WH-B"), (2, "WH-B")], "routing", NOW)
    assert shard.available("TEE", "WH-A") == 2
    assert shard.available("TEE", "WH-B") == 5
    assert shard.reservation("o1").lines[0].warehouse_id == "WH-A"  # type: ignore[union-attr]


def test_release_returns_stock_at_once() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    released = shard.release("o1", NOW)
    assert released.status is ReservationStatus.RELEASED
    assert shard.available("TEE", "WH-A") == 10
    assert shard.release("o1", NOW).status is ReservationStatus.RELEASED


def test_commit_lowers_on_hand_and_reserved_and_is_ledgered() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    shard.commit("o1", NOW)
    level = shard.levels[("TEE", "WH-A")]
    assert (level.on_hand, level.reserved) == (7, 0)
    ledger = shard.drain_changes(NOW).ledger
    assert [(e.kind, e.on_hand_delta, e.order_id) for e in ledger] == [
        (LedgerKind.COMMIT, -3, "o1")
    ]


def test_committed_reservation_cannot_be_released() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    shard.commit("o1", NOW)
    with pytest.raises(ReservationClosed):
        shard.release("o1", NOW)


def test_expired_hold_returns_stock() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    assert shard.expire_due(NOW + timedelta(minutes=14)) == []
    expired = shard.expire_due(NOW + timedelta(minutes=15))
    assert [r.order_id for r in expired] == ["o1"]
    assert shard.available("TEE", "WH-A") == 10
    assert shard.lines_of("o1")[0].status is LineStatus.EXPIRED
    assert shard.next_expiry() is None


def test_commit_after_expiry_is_refused() -> None:
    shard = make_shard(("TEE", "WH-A", 10))
    reserve(shard, "o1", ("TEE", 3, "WH-A"))
    shard.expire_due(LATER)
    with pytest.raises(ReservationClosed, match="expired"):
        shard.commit("o1", LATER)


def test_prepared_lines_hold_stock_and_follow_the_decision() -> None:
    shard = make_shard(("CAP", "WH-A", 5))
    shard.prepare(
        order_id="o1",
        reservation_id="r1",
        lines=[LineRequest(2, "CAP", 2, "WH-A")],
        primary_sku="AAA",
        expires_at=LATER,
        now=NOW,
    )
    assert shard.available("CAP", "WH-A") == 3
    shard.follow("o1", "r1", ReservationStatus.HELD, NOW)
    assert shard.lines_of("o1")[0].status is LineStatus.HELD
    shard.follow("o1", "r1", ReservationStatus.COMMITTED, NOW)
    assert shard.levels[("CAP", "WH-A")].on_hand == 3
    assert shard.available("CAP", "WH-A") == 3


def test_another_attempt_while_one_is_prepared_conflicts() -> None:
    shard = make_shard(("CAP", "WH-A", 5))
    kwargs = {"lines": [LineRequest(2, "CAP", 1, "WH-A")], "primary_sku": "AAA"}
    shard.prepare(order_id="o1", reservation_id="r1", expires_at=LATER, now=NOW, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ReservationConflict):
        shard.prepare(order_id="o1", reservation_id="r2", expires_at=LATER, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_undecided_attempt_is_presumed_aborted_and_a_late_decision_refused() -> None:
    primary = make_shard(("AAA", "WH-A", 5))
    assert primary.resolve("o1", "r1", NOW) is ReservationStatus.ABORTED
    with pytest.raises(ReservationClosed, match="aborted"):
        primary.reserve(
            order_id="o1",
            reservation_id="r1",
            lines=[LineRequest(1, "AAA", 1, "WH-A")],
            expires_at=LATER,
            now=NOW,
            remote_lines=[ReservedLine(2, "CAP", "WH-A", 1)],
        )
    # A fresh attempt for the same order may still succeed.
    fresh = primary.reserve(
        order_id="o1",
        reservation_id="r2",
        lines=[LineRequest(1, "AAA", 1, "WH-A")],
        expires_at=LATER,
        now=NOW,
    )
    assert fresh.status is ReservationStatus.HELD


def test_primary_records_all_lines_and_expires_them_together() -> None:
    primary = make_shard(("AAA", "WH-A", 5))
    r = primary.reserve(
        order_id="o1",
        reservation_id="r1",
        lines=[LineRequest(1, "AAA", 1, "WH-A")],
        expires_at=LATER,
        now=NOW,
        remote_lines=[ReservedLine(2, "ZZZ", "WH-A", 4)],
    )
    assert [ln.sku for ln in r.lines] == ["AAA", "ZZZ"]
    assert r.primary_sku == "AAA"
    assert [x.order_id for x in primary.expire_due(LATER)] == ["o1"]


def test_stale_prepared_lines_are_reported_for_resolution() -> None:
    shard = make_shard(("CAP", "WH-A", 5))
    shard.prepare(
        order_id="o1",
        reservation_id="r1",
        lines=[LineRequest(2, "CAP", 1, "WH-A")],
        primary_sku="AAA",
        expires_at=LATER,
        now=NOW,
    )
    assert shard.stale_prepared(NOW) == []
    assert shard.stale_prepared(NOW + timedelta(seconds=11)) == [("o1", "r1", "AAA")]


def test_drained_changes_merge_repeated_writes_to_a_level() -> None:
    shard = make_shard(("TEE", "WH-A", 100))
    for n in range(10):
        reserve(shard, f"o{n}", ("TEE", 1, "WH-A"))
    changes = shard.drain_changes(NOW)
    assert list(changes.levels) == [("TEE", "WH-A")]
    assert changes.levels[("TEE", "WH-A")].reserved == 10
    assert len(changes.reservations) == 10
    assert not shard.drain_changes(NOW)


def _prepare(shard: InventoryShard, order_id: str, quantity: int, warehouse_id: str) -> None:
    shard.prepare(
        order_id=order_id,
        reservation_id=f"rsv-{order_id}",
        lines=[LineRequest(2, "CAP", quantity, warehouse_id)],
        primary_sku="AAA",
        expires_at=LATER,
        now=NOW,
    )


@pytest.mark.parametrize("warehouse_id", ["WH-A", ""], ids=["named", "chosen"])
def test_a_refusal_that_undecided_holds_could_turn_is_told_apart(warehouse_id: str) -> None:
    shard = make_shard(("CAP", "WH-A", 3))
    _prepare(shard, "o1", 2, "WH-A")
    assert shard.undecided("CAP", "WH-A") == 2
    with pytest.raises(StockUndecided, match=r"2 more held by undecided|total available 1"):
        reserve(shard, "o2", ("CAP", 2, warehouse_id))
    # More than the undecided units could free is a plain refusal.
    with pytest.raises(InsufficientStock) as refused:
        reserve(shard, "o3", ("CAP", 4, warehouse_id))
    assert type(refused.value) is InsufficientStock
    # Once the attempt is aborted, the same request succeeds.
    shard.follow("o1", "rsv-o1", ReservationStatus.ABORTED, NOW)
    assert shard.undecided("CAP", "WH-A") == 0
    assert reserve(shard, "o2", ("CAP", 2, warehouse_id)).status is ReservationStatus.HELD


def test_a_decided_hold_makes_the_refusal_plain() -> None:
    shard = make_shard(("CAP", "WH-A", 2))
    _prepare(shard, "o1", 2, "WH-A")
    shard.follow("o1", "rsv-o1", ReservationStatus.HELD, NOW)
    assert shard.undecided("CAP", "WH-A") == 0
    with pytest.raises(InsufficientStock) as refused:
        reserve(shard, "o2", ("CAP", 1, "WH-A"))
    assert type(refused.value) is InsufficientStock


def test_undecided_units_follow_a_moved_line_and_a_restart() -> None:
    shard = make_shard(("CAP", "WH-A", 2), ("CAP", "WH-B", 2))
    _prepare(shard, "o1", 2, "WH-A")
    shard.move_holds("o1", [(2, "WH-B")], "test", NOW)
    assert (shard.undecided("CAP", "WH-A"), shard.undecided("CAP", "WH-B")) == (0, 2)
    restored = InventoryShard()
    restored.restore(
        skus=[("CAP", 0, 0)],
        warehouses=["WH-A", "WH-B"],
        levels=[replace(lv) for lv in shard.levels.values()],
        lines=[replace(h) for hs in shard.lines.values() for h in hs],
        reservations=[],
    )
    assert restored.undecided("CAP", "WH-B") == 2
    with pytest.raises(StockUndecided):
        reserve(restored, "o2", ("CAP", 1, "WH-B"))


def test_shard_of_is_stable_and_in_range() -> None:
    owners = {sku: shard_of(sku, 7) for sku in (f"SKU-{n}" for n in range(500))}
    assert all(0 <= o < 7 for o in owners.values())
    assert len(set(owners.values())) == 7
    assert shard_of("TEE-01-BLK-L", 4) == shard_of("TEE-01-BLK-L", 4)


ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(1, 6), st.sampled_from(["WH-A", "WH-B", ""])),
        st.tuples(st.just("release"), st.integers(0, 30), st.just("")),
        st.tuples(st.just("commit"), st.integers(0, 30), st.just("")),
        st.tuples(st.just("count"), st.integers(0, 20), st.sampled_from(["WH-A", "WH-B"])),
        st.tuples(st.just("expire"), st.integers(0, 30), st.just("")),
        st.tuples(st.just("prepare"), st.integers(1, 6), st.sampled_from(["WH-A", "WH-B"])),
        st.tuples(st.just("decide"), st.integers(0, 30), st.sampled_from(["HELD", "ABORTED"])),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_any_sequence_keeps_the_books_straight(script: list[tuple[str, int, str]]) -> None:
    """Reserved equals the live holds, on hand equals the ledger, no hold beyond ATP."""
    shard = make_shard(("TEE", "WH-A", 10), ("TEE", "WH-B", 5), safety=1)
    on_hand_start = {"WH-A": 10, "WH-B": 5}
    ledger = []
    orders = 0
    for n, (kind, value, warehouse_id) in enumerate(script):
        at = NOW + timedelta(seconds=n)
        try:
            if kind == "reserve":
                orders += 1
                r = reserve(shard, f"o{orders}", ("TEE", value, warehouse_id), at=at)
                # A hold never takes more than was available to promise.
                assert shard.available("TEE", r.lines[0].warehouse_id) >= 0
            elif kind == "release":
                shard.release(f"o{value}", at)
            elif kind == "commit":
                shard.commit(f"o{value}", at)
            elif kind == "count":
                shard.set_stock("TEE", warehouse_id, value, at)
            elif kind == "prepare":
                orders += 1
                shard.prepare(
                    order_id=f"o{orders}",
                    reservation_id=f"rsv-o{orders}",
                    lines=[LineRequest(1, "TEE", value, warehouse_id)],
                    primary_sku="AAA",
                    expires_at=at + timedelta(minutes=15),
                    now=at,
                )
            elif kind == "decide":
                shard.follow(f"o{value}", f"rsv-o{value}", ReservationStatus(warehouse_id), at)
            else:
                shard.expire_due(at + timedelta(minutes=value))
        except (InsufficientStock, ReservationClosed, ReservationNotFound):
            pass
        ledger += shard.drain_changes(NOW).ledger
        for wh in ("WH-A", "WH-B"):
            level = shard.levels[("TEE", wh)]
            live = sum(
                h.quantity
                for hs in shard.lines.values()
                for h in hs
                if h.warehouse_id == wh and h.status in (LineStatus.HELD, LineStatus.PREPARED)
            )
            assert level.reserved == live
            assert shard.undecided("TEE", wh) == sum(
                h.quantity
                for hs in shard.lines.values()
                for h in hs
                if h.warehouse_id == wh and h.status is LineStatus.PREPARED
            )
            assert level.on_hand == on_hand_start[wh] + sum(
                e.on_hand_delta for e in ledger if e.warehouse_id == wh
            )
            assert shard.availability("TEE", [wh])[0].available >= 0
