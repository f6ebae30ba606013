"""Lane breakers: trips, cool-downs, probes and rebuilds, on a clock the tests hand in."""

from __future__ import annotations

import random
from collections import deque
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.domain.lanes import (
    BreakerPolicy,
    BreakerState,
    Lane,
    LaneBook,
    LaneBreaker,
    LaneHealth,
    Transition,
)

LANE = Lane("WH-SH", "zto", "广东")
OTHER = Lane("WH-BJ", "sf", "北京")
#: On a ten-minute boundary, as the default buckets are.
T0 = datetime(2026, 11, 11, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def feed(
    book: LaneBook,
    start: int,
    end: int,
    *,
    late_every: int = 0,
    lane: Lane = LANE,
    on_time_only: bool = False,
) -> list[Transition]:
    """One outcome a minute from ``start`` up to ``end``, each reported as it happens;
    minutes divisible by ``late_every`` are late."""
    changes: list[Transition] = []
    for m in range(start, end):
        late = late_every > 0 and m % late_every == 0
        if late and on_time_only:
            continue
        changes += book.record(lane, late, minute(m), minute(m))
    return changes


def tripped_book() -> LaneBook:
    """A lane a third late from 00:00: the first window with 20 outcomes ends at 00:20, so
    it trips at 02:20."""
    book = LaneBook()
    assert feed(book, 0, 140, late_every=3) == []
    [trip] = book.evaluate(minute(140))
    assert trip.to_state is BreakerState.OPEN
    return book


def half_open_book() -> LaneBook:
    book = tripped_book()
    [change] = book.evaluate(minute(170))
    assert change.to_state is BreakerState.HALF_OPEN
    return book


# --------------------------------------------------------------------------- tripping


def test_lane_trips_after_two_hours_above_threshold() -> None:
    book = LaneBook()
    assert feed(book, 0, 140, late_every=3) == []
    assert book.evaluate(minute(139)) == []

    [trip] = book.evaluate(minute(140))

    assert (trip.lane, trip.from_state, trip.to_state) == (LANE, "CLOSED", "OPEN")
    assert trip.at == minute(140)
    assert trip.outcomes == 60
    assert trip.delay_rate == pytest.approx(20 / 60)
    assert "from 2026-11-11 00:20 to 02:20 UTC" in trip.reason
    assert book.states() == {LANE: BreakerState.OPEN}


def test_trip_is_judged_on_the_next_outcome_when_no_one_evaluates() -> None:
    book = LaneBook()
    feed(book, 0, 140, late_every=3)

    [trip] = book.record(LANE, False, minute(145), minute(145))

    assert trip.at == minute(140)


def test_lane_stays_closed_when_late_rate_dips_below_threshold() -> None:
    book = LaneBook()
    feed(book, 0, 90, late_every=3)
    feed(book, 90, 150)  # an hour on time: the window ending 02:30 is clean
    assert feed(book, 150, 300, late_every=3) == []
    assert book.states() == {LANE: BreakerState.CLOSED}

    # The last cool window ends at 02:50 (7 of 60 late); two hours on, it trips.
    [trip] = feed(book, 300, 301, late_every=3)
    assert trip.at == minute(300)


def test_sparse_lane_is_not_judged() -> None:
    book = LaneBook()
    changes = [book.record(LANE, True, minute(m), minute(m)) for m in range(0, 240, 6)]
    changes.append(book.evaluate(minute(300)))

    assert changes == [[]] * len(changes)
    [health] = book.health(minute(239))
    assert (health.state, health.judged, health.outcomes) == ("CLOSED", False, 10)
    assert health.delay_rate == 1.0


def test_sparse_windows_inside_a_bad_stretch_neither_trip_nor_heal() -> None:
    book = LaneBook()
    feed(book, 0, 60, late_every=2)
    # Quiet from 01:00 to 02:10, so the windows ending 01:50 to 02:10 are too thin to judge;
    # then a burst, half of it late.
    for m in range(130, 140):
        book.record(LANE, True, minute(m), minute(m))
        book.record(LANE, False, minute(m + 0.5), minute(m + 0.5))

    [trip] = book.evaluate(minute(140))

    assert trip.at == minute(140)


def test_lane_does_not_trip_while_its_last_window_is_too_thin() -> None:
    book = LaneBook()
    feed(book, 0, 80, late_every=2)
    for m in range(100, 105):  # only five outcomes after 01:20
        book.record(LANE, True, minute(m), minute(m))

    assert book.evaluate(minute(300)) == []


def test_late_rate_exactly_at_threshold_is_healthy() -> None:
    book = LaneBook()
    for m in range(300):
        book.record(LANE, m % 20 in (0, 7, 14), minute(m), minute(m))  # 15.0% in every hour

    assert book.evaluate(minute(300)) == []
    assert book.health(minute(300))[0].delay_rate == pytest.approx(0.15)


def test_backfilled_outcomes_count_in_their_own_window() -> None:
    book = LaneBook()
    # Only the on-time deliveries are reported as they happen.
    assert feed(book, 0, 152, late_every=3, on_time_only=True) == []
    assert book.health(minute(151))[0].delay_rate == 0.0

    # The late ones turn up five minutes later, each with its own delivery time.
    backfill = [book.record(LANE, True, minute(m), minute(155)) for m in range(0, 151, 3)]

    assert backfill == [[]] * len(backfill)  # the 02:30 boundary was judged before they came
    [health] = book.health(minute(155))
    assert (health.late, health.outcomes) == (20, 60)
    [trip] = book.evaluate(minute(160))
    assert trip.at == minute(160)


def test_outcomes_arriving_in_any_order_trip_at_the_same_boundary() -> None:
    outcomes = [(m % 3 == 0, minute(m)) for m in range(140)]
    random.Random(7).shuffle(outcomes)
    book = LaneBook()
    for late, at in outcomes:
        book.record(LANE, late, at, minute(139))

    [trip] = book.evaluate(minute(145))

    assert trip.at == minute(140)


# --------------------------------------------------------------------------- open and half-open


def test_open_lane_half_opens_after_cooldown() -> None:
    book = tripped_book()
    assert not book.admits(LANE, "order-1", minute(169))
    assert book.evaluate(minute(169)) == []

    [change] = book.evaluate(minute(175))

    assert (change.from_state, change.to_state) == ("OPEN", "HALF_OPEN")
    assert change.at == minute(170)  # when the cool-down ran out, not when it was noticed
    [health] = book.health(minute(175))
    assert (health.state, health.since, health.reopens_at) == ("HALF_OPEN", minute(170), None)


def test_open_lane_shows_when_it_reopens() -> None:
    [health] = tripped_book().health(minute(150))

    assert (health.state, health.since, health.reopens_at) == ("OPEN", minute(140), minute(170))


def test_half_open_admits_about_probe_share() -> None:
    book = half_open_book()
    keys = [f"order-{n}" for n in range(10_000)]

    admitted = [key for key in keys if book.admits(LANE, key, minute(171))]

    assert 900 <= len(admitted) <= 1100
    assert admitted == [key for key in keys if book.admits(LANE, key, minute(200))]
    assert all(book.admits(OTHER, key, minute(171)) for key in keys[:100])


def test_lane_whose_cooldown_ran_out_admits_probes_before_evaluate() -> None:
    book = tripped_book()
    keys = [f"order-{n}" for n in range(1000)]

    assert not any(book.admits(LANE, key, minute(169)) for key in keys)
    assert any(book.admits(LANE, key, minute(170)) for key in keys)


def test_probes_close_healthy_lane() -> None:
    book = half_open_book()
    assert feed(book, 171, 180) == []
    assert book.health(minute(180))[0].probes == 9

    [change] = feed(book, 180, 181)

    assert (change.from_state, change.to_state, change.at) == ("HALF_OPEN", "CLOSED", minute(180))
    assert (change.outcomes, change.delay_rate) == (10, 0.0)
    assert all(book.admits(LANE, f"order-{n}", minute(181)) for n in range(100))


def test_probes_reopen_bad_lane() -> None:
    book = half_open_book()

    [change] = feed(book, 171, 181, late_every=2)

    assert (change.from_state, change.to_state, change.at) == ("HALF_OPEN", "OPEN", minute(180))
    assert change.delay_rate == 0.5
    [health] = book.health(minute(181))
    assert health.reopens_at == minute(210)
    assert book.evaluate(minute(209)) == []
    assert [c.to_state for c in book.evaluate(minute(210))] == ["HALF_OPEN"]


def test_outcomes_from_before_half_open_are_not_probes() -> None:
    book = half_open_book()

    book.record(LANE, True, minute(165), minute(171))

    [health] = book.health(minute(171))
    assert (health.probes, health.outcomes, health.late) == (0, 31, 11)
    book.record(LANE, True, minute(170), minute(171))  # the half-open moment itself counts
    assert book.health(minute(171))[0].probes == 1


def test_probes_exactly_at_threshold_close_the_lane() -> None:
    book = LaneBook(BreakerPolicy(probe_outcomes=20))
    feed(book, 0, 140, late_every=3)
    book.evaluate(minute(170))

    changes = [book.record(LANE, m < 3, minute(171 + m), minute(171 + m)) for m in range(20)]

    assert [(c.to_state, c.delay_rate) for c in changes[-1]] == [("CLOSED", 0.15)]


def test_stragglers_from_before_a_close_do_not_reopen_the_lane() -> None:
    book = half_open_book()
    feed(book, 171, 181)  # probes close it at 03:00
    stragglers = [book.record(LANE, True, minute(100 + m % 80), minute(181)) for m in range(200)]

    assert stragglers == [[]] * 200
    assert book.health(minute(181))[0].late > 100  # counted, for everyone to see
    assert feed(book, 181, 400) == []
    assert book.evaluate(minute(600)) == []


def test_closed_lane_trips_again_on_fresh_evidence_after_window_and_sustain() -> None:
    book = half_open_book()
    feed(book, 171, 181)  # closed at 03:00

    changes = feed(book, 181, 361, late_every=3)

    # Only windows starting at 03:00 or later: the first ends 04:00, two hours on is 06:00.
    assert [(c.to_state, c.at) for c in changes] == [("OPEN", minute(360))]


# --------------------------------------------------------------------------- the book


def test_a_lane_asks_for_time_only_while_time_can_change_it() -> None:
    quiet = LaneBreaker(LANE, BreakerPolicy())
    quiet.record(False, minute(0), minute(0))
    assert quiet.next_check() == minute(10)
    quiet.evaluate(minute(65))
    assert quiet.next_check() is None  # its one outcome has left every window ahead

    tripped = LaneBreaker(LANE, BreakerPolicy())
    for m in range(141):
        tripped.record(m % 3 == 0, minute(m), minute(m))
    assert (tripped.state, tripped.next_check()) == ("OPEN", minute(170))


def test_old_buckets_are_dropped() -> None:
    breaker = LaneBreaker(LANE, BreakerPolicy())
    for m in range(24 * 60):
        breaker.record(False, minute(m), minute(m))

    # Three hours of ten-minute buckets, and the one filling now.
    assert len(breaker._totals) == 19
    assert breaker.health(minute(24 * 60)).outcomes == 60


def test_health_filters_lanes() -> None:
    book = LaneBook()
    feed(book, 0, 10)
    feed(book, 0, 10, lane=OTHER)

    assert [h.lane for h in book.health(minute(10))] == [OTHER, LANE]
    assert [h.lane for h in book.health(minute(10), carrier="zto")] == [LANE]
    assert [h.lane for h in book.health(minute(10), destination_province="北京")] == [OTHER]
    assert book.health(minute(10), state=BreakerState.OPEN) == []


def test_lanes_time_alone_cannot_change_are_not_scheduled() -> None:
    book = LaneBook()
    for n in range(2000):
        book.record(Lane(f"WH-{n}", "jd", "浙江"), False, minute(0), minute(0))
    assert book.evaluate(minute(70)) == []  # their one outcome has left every window ahead
    feed(book, 0, 140, late_every=3)

    assert list(book._scheduled) == [LANE]
    assert [c.lane for c in book.evaluate(minute(140))] == [LANE]


def test_times_in_any_zone_are_the_same_instants() -> None:
    beijing = timezone(timedelta(hours=8))
    book = LaneBook()
    for m in range(140):
        at = minute(m).astimezone(beijing)
        book.record(LANE, m % 3 == 0, at, at)

    [trip] = book.evaluate(minute(140).astimezone(beijing))

    assert trip.at == minute(140)
    assert trip.at.tzinfo is UTC


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="occurred_at"):
        LaneBook().record(LANE, True, datetime(2026, 11, 11), minute(0))
    with pytest.raises(ValueError, match="now"):
        LaneBook().evaluate(datetime(2026, 11, 11))


def test_lane_rejects_unknown_carrier() -> None:
    with pytest.raises(ValueError, match="carrier"):
        Lane("WH-SH", "dhl", "广东")
    with pytest.raises(ValueError, match="destination_province"):
        Lane("WH-SH", "sf", "")


def test_policy_rejects_bad_threshold() -> None:
    with pytest.raises(ValueError, match="late_threshold"):
        BreakerPolicy(late_threshold=1.5)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"late_threshold": 0.0}, "late_threshold"),
        ({"bucket_seconds": 0}, "bucket_seconds"),
        ({"window_seconds": 700}, "window_seconds"),
        ({"sustain_seconds": 1000}, "sustain_seconds"),
        ({"min_outcomes": 0}, "min_outcomes"),
        ({"cooldown_seconds": 0}, "cooldown_seconds"),
        ({"probe_share": 0.0}, "probe_share"),
        ({"probe_outcomes": 0}, "probe_outcomes"),
        ({"retention_seconds": 3600}, "retention_seconds"),
        ({"window_seconds": 3600.0}, "window_seconds"),
    ],
)
def test_policy_names_the_field_it_rejects(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerPolicy(**changes)  # type: ignore[arg-type]


def test_policy_keeps_just_enough_history_by_default() -> None:
    assert BreakerPolicy().retention_seconds == 7200 + 3600
    assert BreakerPolicy(retention_seconds=86_400).retention_seconds == 86_400


# --------------------------------------------------------------------------- restarts


def test_rebuild_restores_state() -> None:
    live = half_open_book()
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(140)]
    for m in (171, 172, 173):
        live.record(LANE, m == 172, minute(m), minute(m))
        stored.append((LANE, m == 172, minute(m)))
    random.Random(3).shuffle(stored)

    rebuilt = LaneBook.rebuild(stored, minute(175))

    assert rebuilt.health(minute(175)) == live.health(minute(175))
    assert [(c.to_state, c.at) for c in rebuilt.replayed] == [
        ("OPEN", minute(140)),
        ("HALF_OPEN", minute(170)),
    ]
    assert rebuilt.evaluate(minute(175)) == []  # nothing raised twice


def test_rebuild_finds_what_fell_due_while_the_hub_was_down() -> None:
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(140)]
    before = LaneBook()
    feed(before, 0, 140, late_every=3)
    alerted = before.evaluate(minute(145))  # then the hub stopped, before the cool-down ran out

    rebuilt = LaneBook.rebuild(stored, minute(200))

    keys = {c.key for c in alerted}
    assert [(c.to_state, c.at) for c in rebuilt.replayed if c.key not in keys] == [
        ("HALF_OPEN", minute(170)),
    ]


def test_rebuild_does_not_judge_windows_reaching_before_the_history_kept() -> None:
    live = LaneBook()
    feed(live, 0, 60)
    assert feed(live, 60, 200, late_every=3) == []  # the on-time hour keeps it closed
    recent = [(LANE, m % 3 == 0, minute(m)) for m in range(60, 200)]

    rebuilt = LaneBook.rebuild(recent, minute(200), history_from=minute(60))

    assert (rebuilt.states(), rebuilt.replayed) == ({LANE: BreakerState.CLOSED}, [])
    # Without the hint, the on-time hour missing from the kept history would trip it.
    [trip] = LaneBook.rebuild(recent, minute(200)).replayed
    assert trip.at == minute(200)


def test_rebuild_resumes_from_the_last_transition_without_older_outcomes() -> None:
    live = LaneBook()
    feed(live, 0, 140, late_every=3)
    alerted = live.evaluate(minute(140)) + live.evaluate(minute(170))
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(60, 140)]  # kept since 01:00 only

    rebuilt = LaneBook.rebuild(stored, minute(175), resume_from=alerted, history_from=minute(60))

    assert rebuilt.health(minute(175)) == live.health(minute(175))
    assert rebuilt.states() == {LANE: BreakerState.HALF_OPEN}
    assert rebuilt.replayed == []


# --------------------------------------------------------------------------- properties

SMALL = BreakerPolicy(
    late_threshold=0.3,
    sustain_seconds=1200,
    bucket_seconds=600,
    window_seconds=1200,
    min_outcomes=3,
    cooldown_seconds=1200,
    probe_share=0.5,
    probe_outcomes=3,
)
LANES = (LANE, OTHER)
HORIZON = 6 * 3600

moments = st.one_of(
    st.integers(0, HORIZON),
    st.integers(0, HORIZON // 600).map(lambda n: n * 600),  # exactly on boundaries too
)


def expand(
    runs: list[tuple[int, int, int, int, int]], singles: list[tuple[int, bool, int]]
) -> list[tuple[int, bool, int]]:
    """Runs of outcomes (lane, late in every 4, start, count, spacing) and single ones."""
    outcomes = list(singles)
    for lane, late_in_4, start, count, spacing in runs:
        outcomes += [(lane, n % 4 < late_in_4, start + n * spacing) for n in range(count)]
    return outcomes


# Runs make windows dense enough to trip, probe and close; about two thirds of the
# examples change state at least once.
outcome_lists = st.builds(
    expand,
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.integers(0, 4),
            moments,
            st.integers(1, 40),
            st.integers(1, 400),
        ),
        max_size=10,
    ),
    st.lists(st.tuples(st.integers(0, 1), st.booleans(), moments), max_size=20),
)
tick_lists = st.lists(moments, max_size=20)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run_live(
    outcomes: list[tuple[int, bool, int]], ticks: list[int], until: int | None = None
) -> tuple[LaneBook, list[Transition]]:
    """A book that saw each outcome as it happened, evaluated at the ticks besides."""
    book = LaneBook(SMALL)
    changes: list[Transition] = []
    events = sorted(
        [(s, 1, lane, late) for lane, late, s in outcomes] + [(s, 0, 0, False) for s in ticks],
        key=lambda event: (event[0], event[1]),
    )
    for seconds, kind, lane, late in events:
        if until is not None and seconds > until:
            break
        if kind:
            changes += book.record(LANES[lane], late, at(seconds), at(seconds))
        else:
            changes += book.evaluate(at(seconds))
    return book, changes


def blank(health: LaneHealth) -> bool:
    """A lane whose outcomes all aged out and that never changed: nothing to rebuild."""
    return health.outcomes == 0 and health.since is None


def in_order(changes: list[Transition]) -> list[Transition]:
    return sorted(changes, key=lambda c: (c.at, c.lane, c.to_state))


@settings(max_examples=300, deadline=None)
@given(outcome_lists, tick_lists, st.integers(0, 7200), st.randoms(use_true_random=False))
def test_rebuild_equals_a_book_that_saw_everything_live(
    outcomes: list[tuple[int, bool, int]], ticks: list[int], extra: int, shuffle: random.Random
) -> None:
    now = at(max([s for _, _, s in outcomes] + ticks + [0]) + extra)
    live, changes = run_live(outcomes, ticks)
    changes += live.evaluate(now)
    # Stored in any order, except that a lane's outcomes with one event time keep the order
    # they arrived in: which of them completes the probes decides the verdict.
    ties: dict[tuple[int, int], deque[tuple[Lane, bool, datetime]]] = {}
    for lane, late, s in outcomes:
        ties.setdefault((lane, s), deque()).append((LANES[lane], late, at(s)))
    arrival = [(lane, s) for lane, _, s in outcomes]
    shuffle.shuffle(arrival)
    stored = [ties[tie].popleft() for tie in arrival]

    rebuilt = LaneBook.rebuild(stored, now, policy=SMALL)

    assert rebuilt.health(now) == live.health(now)
    assert in_order(rebuilt.replayed) == in_order(changes)


@settings(max_examples=300, deadline=None)
@given(
    outcome_lists,
    tick_lists,
    st.integers(2400, HORIZON),
    st.integers(0, 3600),
    st.integers(0, 7200),
)
def test_rebuild_from_the_last_alerts_and_recent_outcomes_equals_the_live_book(
    outcomes: list[tuple[int, bool, int]], ticks: list[int], down: int, margin: int, extra: int
) -> None:
    now = at(max([s for _, _, s in outcomes] + ticks + [down]) + extra)
    ideal, ideal_changes = run_live(outcomes, ticks)
    ideal_changes += ideal.evaluate(now)
    before, alerted = run_live(outcomes, ticks, until=down)
    alerted += before.evaluate(at(down))
    # Outcomes are kept from sustain + window before the outage, and for a lane last seen
    # half-opening, since then.
    history_from = at(down - SMALL.sustain_seconds - SMALL.window_seconds - margin)
    kept_from = {lane: history_from for lane in LANES}
    for change in alerted:  # a half-open lane counts its probes from when it half-opened
        if change.to_state is BreakerState.HALF_OPEN:
            kept_from[change.lane] = min(history_from, change.at)
        else:
            kept_from[change.lane] = history_from
    stored = [
        (LANES[lane], late, at(s)) for lane, late, s in outcomes if at(s) >= kept_from[LANES[lane]]
    ]

    rebuilt = LaneBook.rebuild(
        stored, now, policy=SMALL, resume_from=alerted, history_from=history_from
    )

    assert [h for h in rebuilt.health(now) if not blank(h)] == [
        h for h in ideal.health(now) if not blank(h)
    ]
    raised = {c.key for c in alerted}
    assert {c.key for c in rebuilt.replayed} - raised == {c.key for c in ideal_changes} - raised


ALLOWED = {
    (BreakerState.CLOSED, BreakerState.OPEN),
    (BreakerState.OPEN, BreakerState.HALF_OPEN),
    (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    (BreakerState.HALF_OPEN, BreakerState.OPEN),
}


@settings(max_examples=300, deadline=None)
@given(outcome_lists, st.lists(st.integers(0, 10_800), min_size=1, max_size=30), tick_lists)
def test_breaker_never_skips_a_state_whatever_the_arrival_order(
    outcomes: list[tuple[int, bool, int]], delays: list[int], ticks: list[int]
) -> None:
    book = LaneBook(SMALL)
    changes: list[Transition] = []
    arrivals = [
        (s + delays[n % len(delays)], 1, lane, late, s)
        for n, (lane, late, s) in enumerate(outcomes)
    ]
    for arrival, kind, lane, late, occurred in sorted(
        arrivals + [(s, 0, 0, False, s) for s in ticks]
    ):
        if kind:
            changes += book.record(LANES[lane], late, at(occurred), at(arrival))
        else:
            changes += book.evaluate(at(arrival))

    for each in LANES:
        state, last = BreakerState.CLOSED, T0
        for change in (c for c in changes if c.lane == each):
            assert (change.from_state, change.to_state) in ALLOWED
            assert change.from_state is state
            assert change.at >= last
            state, last = change.to_state, change.at
        assert book.states().get(each, BreakerState.CLOSED) is state
