"""Lane breakers: trips, cool-downs, probes and rebuilds, on a clock the tests hand in."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import replace
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
    StoredOutcome,
    Transition,
)

LANE = Lane("WH-SH", "zto", "广东")
OTHER = Lane("WH-BJ", "sf", "北京")
#: On a ten-minute boundary, as the default buckets are.
T0 = datetime(2026, 11, 11, tzinfo=UTC)
#: The defaults, but each boundary judged as soon as the clock passes it: the trip rule on
#: its own, for outcomes reported as they happen.
PROMPT = BreakerPolicy(settle_seconds=0)


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
    transit: int | None = None,
) -> list[Transition]:
    """One outcome a minute from ``start`` up to ``end``, each reported as it happens;
    minutes divisible by ``late_every`` are late. With ``transit``, each parcel was handed
    over that many minutes before it was delivered."""
    changes: list[Transition] = []
    for m in range(start, end):
        late = late_every > 0 and m % late_every == 0
        if late and on_time_only:
            continue
        shipped = None if transit is None else minute(m - transit)
        changes += book.record(lane, late, minute(m), minute(m), shipped_at=shipped)
    return changes


def tripped_book() -> LaneBook:
    """A lane a third late from 00:00: the first window with 20 outcomes ends at 00:20, so
    it trips at 02:20 (judged at once)."""
    book = LaneBook(PROMPT)
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
    book = LaneBook(PROMPT)
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
    book = LaneBook(PROMPT)
    feed(book, 0, 140, late_every=3)

    [trip] = book.record(LANE, False, minute(145), minute(145))

    assert trip.at == minute(140)


def test_lane_stays_closed_when_late_rate_dips_below_threshold() -> None:
    book = LaneBook(PROMPT)
    feed(book, 0, 90, late_every=3)
    feed(book, 90, 150)  # an hour on time: the window ending 02:30 is clean
    assert feed(book, 150, 300, late_every=3) == []
    assert book.states() == {LANE: BreakerState.CLOSED}

    # The last cool window ends at 02:50 (7 of 60 late); two hours on, it trips.
    [trip] = feed(book, 300, 301, late_every=3)
    assert trip.at == minute(300)


def test_sparse_lane_is_not_judged() -> None:
    book = LaneBook(PROMPT)
    changes = [book.record(LANE, True, minute(m), minute(m)) for m in range(0, 240, 6)]
    changes.append(book.evaluate(minute(300)))

    assert changes == [[]] * len(changes)
    [health] = book.health(minute(239))
    assert (health.state, health.judged, health.outcomes) == ("CLOSED", False, 10)
    assert health.delay_rate == 1.0


def test_sparse_windows_inside_a_bad_stretch_neither_trip_nor_heal() -> None:
    book = LaneBook(PROMPT)
    feed(book, 0, 60, late_every=2)
    # Quiet from 01:00 to 02:10, so the windows ending 01:50 to 02:10 are too thin to judge;
    # then a burst, half of it late.
    for m in range(130, 140):
        book.record(LANE, True, minute(m), minute(m))
        book.record(LANE, False, minute(m + 0.5), minute(m + 0.5))

    [trip] = book.evaluate(minute(140))

    assert trip.at == minute(140)


def test_lane_does_not_trip_while_its_last_window_is_too_thin() -> None:
    book = LaneBook(PROMPT)
    feed(book, 0, 80, late_every=2)
    for m in range(100, 105):  # only five outcomes after 01:20
        book.record(LANE, True, minute(m), minute(m))

    assert book.evaluate(minute(300)) == []


def test_late_rate_exactly_at_threshold_is_healthy() -> None:
    book = LaneBook(PROMPT)
    for m in range(300):
        book.record(LANE, m % 20 in (0, 7, 14), minute(m), minute(m))  # 15.0% in every hour

    assert book.evaluate(minute(300)) == []
    assert book.health(minute(300))[0].delay_rate == pytest.approx(0.15)


def test_backfilled_outcomes_count_in_their_own_window() -> None:
    book = LaneBook(PROMPT)
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
    book = LaneBook(PROMPT)
    for late, at in outcomes:
        book.record(LANE, late, at, minute(139))

    [trip] = book.evaluate(minute(145))

    assert trip.at == minute(140)


def test_a_margin_keeps_binomial_noise_from_tripping_a_lane() -> None:
    def stretch(late_in_25: int, policy: BreakerPolicy) -> list[Transition]:
        """25 outcomes in 00:50-01:00 and 25 in 02:50-03:00, quiet in between: only the two
        ends of the stretch ending 03:00 are judged."""
        book = LaneBook(policy)
        changes: list[Transition] = []
        for start in (50, 170):
            for k in range(25):
                late = k * late_in_25 // 25 != (k + 1) * late_in_25 // 25
                moment = minute(start + k * 0.4)
                changes += book.record(LANE, late, moment, moment)
        return changes + book.evaluate(minute(185))

    noisy = BreakerPolicy(settle_seconds=0, hot_margin_z=1.0)
    # 4 of 25 (16%) at both ends: what a lane 7.5% late shows one window in nine.
    assert [c.at for c in stretch(4, PROMPT)] == [minute(180)]
    assert stretch(4, noisy) == []
    # Five of 25 is within one standard error of 15% too (3.75 + 1.79); six is not.
    assert stretch(5, noisy) == []
    assert [c.at for c in stretch(6, noisy)] == [minute(180)]


# --------------------------------------------------------------------------- settling


def reported_late(
    book: LaneBook, outcomes: list[tuple[bool, float]], lag: float, until: int
) -> list[Transition]:
    """Each outcome (late, minute it happened) reported ``lag`` minutes after it happened,
    the book evaluated every minute besides, up to minute ``until``."""
    events = sorted(
        [(m + lag, 1, late, m) for late, m in outcomes] + [(t, 0, False, 0.0) for t in range(until)]
    )
    changes: list[Transition] = []
    for arrival, kind, late, m in events:
        if arrival > until:
            break
        if kind:
            changes += book.record(LANE, late, minute(m), minute(arrival))
        else:
            changes += book.evaluate(minute(arrival))
    return changes


#: Every two minutes from 00:00, a third of them late: 30 outcomes an hour.
EVERY_TWO = [(m % 6 == 0, float(m)) for m in range(0, 400, 2)]


def test_a_lane_reported_late_trips_once_its_boundary_settled() -> None:
    # Reported 45 minutes late, an hour holds 7 or 8 outcomes known when the clock passes
    # its end: judged at once, the lane never trips.
    assert reported_late(LaneBook(PROMPT), EVERY_TWO, lag=45, until=600) == []

    # The first hour with 20 outcomes ends at 00:40; two hours on, 02:40 is the boundary,
    # judged at 03:40 with every outcome by then.
    changes = reported_late(LaneBook(), EVERY_TWO, lag=45, until=600)

    assert [(c.to_state, c.at) for c in changes] == [
        ("OPEN", minute(220)),
        ("HALF_OPEN", minute(250)),
    ]
    trip = changes[0]
    assert "from 2026-11-11 00:40 to 02:40 UTC (judged 1h later)" in trip.reason
    assert trip.outcomes == 30
    assert trip.delay_rate == pytest.approx(10 / 30)
    # The same, word for word, as if every outcome had been reported when it happened.
    assert reported_late(LaneBook(), EVERY_TWO, lag=0, until=600) == changes


def test_a_trip_happens_when_its_boundary_is_judged() -> None:
    book = LaneBook()
    feed(book, 0, 140, late_every=3)
    assert book.evaluate(minute(199)) == []
    assert book.health(minute(199))[0].state == "CLOSED"
    assert book.admits(LANE, "order-1", minute(199))

    [trip] = book.evaluate(minute(200))

    assert trip.at == minute(200)  # the 02:20 boundary, an hour on
    assert "from 2026-11-11 00:20 to 02:20 UTC (judged 1h later)" in trip.reason
    [health] = book.health(minute(200))
    assert (health.since, health.reopens_at) == (minute(200), minute(230))
    assert (health.outcomes, health.late) == (trip.outcomes, 20)  # the window judged


def test_outcomes_reported_before_the_judgement_count_in_it() -> None:
    book = LaneBook()
    # The on-time deliveries are reported as they happen, the late ones 20 minutes later.
    reports = sorted((m + 20 if m % 3 == 0 else m, m) for m in range(140))
    assert [book.record(LANE, m % 3 == 0, minute(m), minute(r)) for r, m in reports] == [[]] * 140

    [trip] = book.evaluate(minute(200))

    assert trip.at == minute(200)
    assert trip.outcomes == 60
    assert trip.delay_rate == pytest.approx(20 / 60)


def test_an_outcome_reported_after_its_judgement_counts_only_in_later_ones() -> None:
    book = LaneBook()
    feed(book, 0, 140, late_every=3, on_time_only=True)
    assert book.evaluate(minute(200)) == []  # 02:20 judged on the on-time outcomes alone
    # However many late ones turn up for before 02:20 now, that judgement stands; the
    # windows still to be judged (from 02:30 on) count them.
    for m in range(0, 140, 3):
        assert book.record(LANE, True, minute(m), minute(201)) == []
    [health] = book.health(minute(201))
    assert (health.late, health.outcomes) == (20, 60)
    [trip] = book.evaluate(minute(210))
    assert trip.at == minute(210)
    assert "to 02:30 UTC" in trip.reason


def test_a_lane_first_seen_late_is_judged_on_boundaries_not_yet_due() -> None:
    book = LaneBook()
    # The hub hears of this lane at 03:30, of deliveries since 00:00, all a third late.
    for m in range(0, 210):
        book.record(LANE, m % 3 == 0, minute(m), minute(210))

    # 02:30 was due at 03:30 (before the lane was seen); 02:40 is the first judged.
    [trip] = book.evaluate(minute(220))
    assert trip.at == minute(220)
    assert "to 02:40 UTC" in trip.reason


def test_a_judgement_counts_what_was_recorded_before_it_however_late_it_is_made() -> None:
    def run(evaluate_at: int | None) -> list[Transition]:
        """20 outcomes in 00:50-01:00, 4 late; 20 in 02:50-03:00, 3 late (15%, cool); one
        more late delivery of 02:55 reported at 04:10."""
        book = LaneBook()
        for start, lates in ((50, 4), (170, 3)):
            for k in range(20):
                book.record(LANE, k < lates, minute(start + k / 2), minute(start + k / 2))
        changes = [] if evaluate_at is None else book.evaluate(minute(evaluate_at))
        changes += book.record(LANE, True, minute(175), minute(250))
        return changes + book.evaluate(minute(280))

    # 03:00 was due at 04:00 and 03:10 at 04:10, both before the report: judged without it,
    # on a cool last window, whether or not anyone evaluated before it came.
    [trip] = run(None)
    assert trip.at == minute(260)
    assert "to 03:20 UTC" in trip.reason
    assert run(249) == [trip]


def test_evaluating_late_makes_the_same_judgement() -> None:
    outcomes = [(m % 3 == 0, float(m)) for m in range(270)]  # all reported by 05:00
    often = reported_late(LaneBook(), outcomes, lag=30, until=300)
    rarely = LaneBook()
    seldom: list[Transition] = []
    for late, m in outcomes:  # no evaluate at all: only outcomes move the clock
        seldom += rarely.record(LANE, late, minute(m), minute(m + 30))
    seldom += rarely.evaluate(minute(300))

    assert [c.at for c in often] == [minute(200), minute(230)]  # tripped, half-opened
    assert seldom == often


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


def test_cooldown_runs_from_the_judgement_not_the_boundary() -> None:
    book = LaneBook()
    feed(book, 0, 140, late_every=3)
    assert [c.at for c in book.evaluate(minute(200))] == [minute(200)]
    assert book.evaluate(minute(229)) == []

    [change] = book.evaluate(minute(230))

    assert (change.to_state, change.at) == ("HALF_OPEN", minute(230))


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
    assert feed(book, 171, 180, transit=1) == []
    assert book.health(minute(180))[0].probes == 9

    [change] = feed(book, 180, 181, transit=1)

    assert (change.from_state, change.to_state, change.at) == ("HALF_OPEN", "CLOSED", minute(180))
    assert (change.outcomes, change.delay_rate) == (10, 0.0)
    assert all(book.admits(LANE, f"order-{n}", minute(181)) for n in range(100))


def test_probes_reopen_bad_lane() -> None:
    book = half_open_book()

    [change] = feed(book, 171, 181, late_every=2, transit=1)

    assert (change.from_state, change.to_state, change.at) == ("HALF_OPEN", "OPEN", minute(180))
    assert change.delay_rate == 0.5
    [health] = book.health(minute(181))
    assert health.reopens_at == minute(210)
    assert book.evaluate(minute(209)) == []
    assert [c.to_state for c in book.evaluate(minute(210))] == ["HALF_OPEN"]


def test_probes_are_parcels_shipped_from_the_half_open_moment() -> None:
    book = half_open_book()  # tripped 02:20, half-open 02:50

    book.record(LANE, True, minute(165), minute(171), shipped_at=minute(100))  # in transit
    book.record(LANE, True, minute(171), minute(171), shipped_at=minute(169.9))

    [health] = book.health(minute(171))
    assert (health.probes, health.outcomes, health.late) == (0, 31, 11)  # counted all the same
    book.record(LANE, True, minute(171), minute(171), shipped_at=minute(170))
    assert book.health(minute(171))[0].probes == 1


def test_parcels_in_transit_at_the_trip_do_not_flap_the_lane() -> None:
    stragglers = [(minute(171 + m), minute(100 + m)) for m in range(30)]  # shipped before 02:20
    probes = [(minute(200 + m), minute(180 + m)) for m in range(10)]  # shipped after 02:50

    book = half_open_book()
    for delivered, shipped in stragglers:
        assert book.record(LANE, True, delivered, delivered, shipped_at=shipped) == []
    assert book.health(minute(201))[0].probes == 0
    changes = [
        c
        for delivered, shipped in probes
        for c in book.record(LANE, False, delivered, delivered, shipped_at=shipped)
    ]
    assert [(c.to_state, c.at) for c in changes] == [("CLOSED", minute(209))]

    # Counting every outcome from the half-open moment on, as before shipped_at, the late
    # stragglers reopen it.
    old = LaneBook(BreakerPolicy(settle_seconds=0, probe_transit_seconds=0))
    feed(old, 0, 140, late_every=3)
    old.evaluate(minute(170))
    changes = [
        c for delivered, _ in stragglers for c in old.record(LANE, True, delivered, delivered)
    ]
    assert [(c.to_state, c.at) for c in changes] == [("OPEN", minute(180))]


def test_without_shipped_at_a_probe_is_an_outcome_a_transit_after_half_open() -> None:
    book = half_open_book()  # half-open at 02:50; probe_transit_seconds is a day

    book.record(LANE, False, minute(170 + 1439), minute(170 + 1439))
    assert book.health(minute(170 + 1439))[0].probes == 0
    book.record(LANE, False, minute(170 + 1440), minute(170 + 1440))
    assert book.health(minute(170 + 1440))[0].probes == 1

    prompt = LaneBook(BreakerPolicy(settle_seconds=0, probe_transit_seconds=0))
    feed(prompt, 0, 140, late_every=3)
    prompt.evaluate(minute(170))
    prompt.record(LANE, False, minute(170), minute(170))
    assert prompt.health(minute(170))[0].probes == 1


def test_shipped_at_must_be_aware_and_not_after_the_delivery() -> None:
    with pytest.raises(ValueError, match="shipped_at"):
        LaneBook().record(LANE, True, minute(0), minute(0), shipped_at=datetime(2026, 11, 11))
    with pytest.raises(ValueError, match="shipped_at"):
        LaneBook().record(LANE, True, minute(0), minute(0), shipped_at=minute(1))
    with pytest.raises(ValueError, match="shipped_at"):
        LaneBook.rebuild([(LANE, True, minute(0), minute(1))], minute(5))


def test_probes_exactly_at_threshold_close_the_lane() -> None:
    book = LaneBook(BreakerPolicy(probe_outcomes=20, settle_seconds=0))
    feed(book, 0, 140, late_every=3)
    book.evaluate(minute(170))

    changes = [
        book.record(LANE, m < 3, minute(171 + m), minute(171 + m), shipped_at=minute(170))
        for m in range(20)
    ]

    assert [(c.to_state, c.delay_rate) for c in changes[-1]] == [("CLOSED", 0.15)]


def test_stragglers_from_before_a_close_do_not_reopen_the_lane() -> None:
    book = half_open_book()
    feed(book, 171, 181, transit=1)  # probes close it at 03:00
    stragglers = [book.record(LANE, True, minute(100 + m % 80), minute(181)) for m in range(200)]

    assert stragglers == [[]] * 200
    assert book.health(minute(181))[0].late > 100  # counted, for everyone to see
    assert feed(book, 181, 400) == []
    assert book.evaluate(minute(600)) == []


def test_closed_lane_trips_again_on_fresh_evidence_after_window_and_sustain() -> None:
    book = half_open_book()
    feed(book, 171, 181, transit=1)  # closed at 03:00

    changes = feed(book, 181, 361, late_every=3)

    # Only windows starting at 03:00 or later: the first ends 04:00, two hours on is 06:00.
    assert [(c.to_state, c.at) for c in changes] == [("OPEN", minute(360))]


def test_closed_lane_trips_again_no_earlier_than_window_sustain_and_settle() -> None:
    book = LaneBook()
    feed(book, 0, 140, late_every=3)
    book.evaluate(minute(230))  # tripped 03:20, half-open 03:50
    feed(book, 231, 241, transit=1)  # closed at 04:00

    changes = feed(book, 241, 481, late_every=3)

    # The first window starting at 04:00 ends 05:00; two hours on is 07:00, judged 08:00.
    assert [(c.to_state, c.at) for c in changes] == [("OPEN", minute(480))]


# --------------------------------------------------------------------------- the book


def test_a_lane_asks_for_time_only_while_time_can_change_it() -> None:
    quiet = LaneBreaker(LANE, BreakerPolicy())
    quiet.record(False, minute(0), minute(0))
    assert quiet.next_check() == minute(70)  # 00:10, judged an hour later
    quiet.evaluate(minute(125))
    assert quiet.next_check() is None  # its one outcome has left every window ahead

    tripped = LaneBreaker(LANE, BreakerPolicy())
    for m in range(201):
        tripped.record(m % 3 == 0, minute(m), minute(m))
    assert (tripped.state, tripped.next_check()) == ("OPEN", minute(230))


def test_old_buckets_are_dropped() -> None:
    breaker = LaneBreaker(LANE, BreakerPolicy())
    for m in range(24 * 60):
        breaker.record(False, minute(m), minute(m))

    # Four hours of ten-minute buckets, and the one filling now.
    assert len(breaker._totals) == 25
    assert breaker.health(minute(24 * 60)).outcomes == 60


def test_health_filters_lanes() -> None:
    book = LaneBook()
    feed(book, 0, 10)
    feed(book, 0, 10, lane=OTHER)

    assert [h.lane for h in book.health(minute(10))] == [OTHER, LANE]
    assert [h.lane for h in book.health(minute(10), carrier="zto")] == [LANE]
    assert [h.lane for h in book.health(minute(10), destination_province="北京")] == [OTHER]
    assert book.health(minute(10), state=BreakerState.OPEN) == []


def test_health_shows_the_window_judged_last() -> None:
    book = LaneBook()
    feed(book, 0, 150, late_every=3, on_time_only=True)
    feed(book, 150, 200, late_every=3)  # late ones only from 02:30

    [health] = book.health(minute(200))  # the hour before 02:20, judged at 03:20

    assert (health.late, health.outcomes, health.judged) == (0, 40, True)


def test_lanes_time_alone_cannot_change_are_not_scheduled() -> None:
    book = LaneBook(PROMPT)
    for n in range(2000):
        book.record(Lane(f"WH-{n}", "jd", "浙江"), False, minute(0), minute(0))
    assert book.evaluate(minute(70)) == []  # their one outcome has left every window ahead
    feed(book, 0, 140, late_every=3)

    assert list(book._scheduled) == [LANE]
    assert [c.lane for c in book.evaluate(minute(140))] == [LANE]


def test_times_in_any_zone_are_the_same_instants() -> None:
    beijing = timezone(timedelta(hours=8))
    book = LaneBook(PROMPT)
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
        ({"retention_seconds": 10_800}, "settle_seconds"),  # sustain + window is not enough
        ({"window_seconds": 3600.0}, "window_seconds"),
        ({"settle_seconds": 900}, "settle_seconds"),
        ({"settle_seconds": -600}, "settle_seconds"),
        ({"settle_seconds": 600.0}, "settle_seconds"),
        ({"probe_transit_seconds": -1}, "probe_transit_seconds"),
        ({"hot_margin_z": -1.0}, "hot_margin_z"),
        ({"hot_margin_z": float("nan")}, "hot_margin_z"),
        ({"hot_margin_z": float("inf")}, "hot_margin_z"),
        ({"hot_margin_z": True}, "hot_margin_z"),
    ],
)
def test_policy_names_the_field_it_rejects(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        BreakerPolicy(**changes)  # type: ignore[arg-type]


def test_policy_keeps_just_enough_history_by_default() -> None:
    assert BreakerPolicy().retention_seconds == 7200 + 3600 + 3600
    assert BreakerPolicy(settle_seconds=0).retention_seconds == 7200 + 3600
    assert BreakerPolicy(retention_seconds=86_400).retention_seconds == 86_400


def test_policy_defaults() -> None:
    policy = BreakerPolicy()
    assert (policy.settle_seconds, policy.probe_transit_seconds, policy.hot_margin_z) == (
        3600,
        86_400,
        0.0,
    )


# --------------------------------------------------------------------------- restarts


def test_rebuild_restores_state() -> None:
    live = half_open_book()
    stored: list[StoredOutcome] = [(LANE, m % 3 == 0, minute(m)) for m in range(140)]
    for m in (171, 172, 173):
        live.record(LANE, m == 172, minute(m), minute(m), shipped_at=minute(m - 1))
        stored.append((LANE, m == 172, minute(m), minute(m - 1)))
    live.record(LANE, True, minute(174), minute(174), shipped_at=minute(120))  # in transit
    stored.append((LANE, True, minute(174), minute(120)))
    live.record(LANE, True, minute(174), minute(174))  # shipped_at unknown
    stored.append((LANE, True, minute(174), None))
    random.Random(3).shuffle(stored)

    rebuilt = LaneBook.rebuild(stored, minute(175), policy=PROMPT)

    assert rebuilt.health(minute(175)) == live.health(minute(175))
    assert (live.health(minute(175))[0].probes, live.health(minute(175))[0].probe_late) == (3, 1)
    assert [(c.to_state, c.at) for c in rebuilt.replayed] == [
        ("OPEN", minute(140)),
        ("HALF_OPEN", minute(170)),
    ]
    assert rebuilt.evaluate(minute(175)) == []  # nothing raised twice


def test_rebuild_finds_the_settled_trip_with_the_same_key() -> None:
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(140)]
    live = LaneBook()
    feed(live, 0, 140, late_every=3)
    [trip] = live.evaluate(minute(200))

    [replayed] = LaneBook.rebuild(stored, minute(210)).replayed

    assert replayed == trip
    assert replayed.key == trip.key == f"WH-SH/zto/广东/OPEN/{minute(200).isoformat()}"


def test_rebuild_finds_what_fell_due_while_the_hub_was_down() -> None:
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(140)]
    before = LaneBook(PROMPT)
    feed(before, 0, 140, late_every=3)
    alerted = before.evaluate(minute(145))  # then the hub stopped, before the cool-down ran out

    rebuilt = LaneBook.rebuild(stored, minute(200), policy=PROMPT)

    keys = {c.key for c in alerted}
    assert [(c.to_state, c.at) for c in rebuilt.replayed if c.key not in keys] == [
        ("HALF_OPEN", minute(170)),
    ]


def test_rebuild_does_not_judge_windows_reaching_before_the_history_kept() -> None:
    live = LaneBook(PROMPT)
    feed(live, 0, 60)
    assert feed(live, 60, 200, late_every=3) == []  # the on-time hour keeps it closed
    recent = [(LANE, m % 3 == 0, minute(m)) for m in range(60, 200)]

    rebuilt = LaneBook.rebuild(recent, minute(200), policy=PROMPT, history_from=minute(60))

    assert (rebuilt.states(), rebuilt.replayed) == ({LANE: BreakerState.CLOSED}, [])
    # Without the hint, the on-time hour missing from the kept history would trip it.
    [trip] = LaneBook.rebuild(recent, minute(200), policy=PROMPT).replayed
    assert trip.at == minute(200)


def test_rebuild_resumes_from_the_last_transition_without_older_outcomes() -> None:
    live = LaneBook(PROMPT)
    feed(live, 0, 140, late_every=3)
    alerted = live.evaluate(minute(140)) + live.evaluate(minute(170))
    stored = [(LANE, m % 3 == 0, minute(m)) for m in range(60, 140)]  # kept since 01:00 only

    rebuilt = LaneBook.rebuild(
        stored, minute(175), policy=PROMPT, resume_from=alerted, history_from=minute(60)
    )

    assert rebuilt.health(minute(175)) == live.health(minute(175))
    assert rebuilt.states() == {LANE: BreakerState.HALF_OPEN}
    assert rebuilt.replayed == []


# --------------------------------------------------------------------------- properties

#: Small enough for a few hours to trip, probe and close; one judges each boundary at once
#: and counts any outcome from the half-open moment on as a probe, one settles for two
#: buckets and asks an outcome with no shipped_at to come ten minutes after half-open.
SMALL = BreakerPolicy(
    late_threshold=0.3,
    sustain_seconds=1200,
    bucket_seconds=600,
    window_seconds=1200,
    min_outcomes=3,
    cooldown_seconds=1200,
    probe_share=0.5,
    probe_outcomes=3,
    settle_seconds=0,
    probe_transit_seconds=0,
)
SETTLED = replace(SMALL, settle_seconds=1200, probe_transit_seconds=600, retention_seconds=0)
POLICIES = pytest.mark.parametrize("policy", [SMALL, SETTLED], ids=["prompt", "settled"])
LANES = (LANE, OTHER)
HORIZON = 6 * 3600

moments = st.one_of(
    st.integers(0, HORIZON),
    st.integers(0, HORIZON // 600).map(lambda n: n * 600),  # exactly on boundaries too
)
#: Seconds from handover to delivery, or None when unknown.
transits = st.one_of(st.none(), st.integers(0, 3600))

#: (lane, late, occurred, seconds shipped before it or None)
Outcome = tuple[int, bool, int, int | None]


def expand(
    runs: list[tuple[int, int, int, int, int, int | None]], singles: list[Outcome]
) -> list[Outcome]:
    """Runs of outcomes (lane, late in every 4, start, count, spacing, transit) and single
    ones."""
    outcomes = list(singles)
    for lane, late_in_4, start, count, spacing, transit in runs:
        outcomes += [(lane, n % 4 < late_in_4, start + n * spacing, transit) for n in range(count)]
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
            transits,
        ),
        max_size=10,
    ),
    st.lists(st.tuples(st.integers(0, 1), st.booleans(), moments, transits), max_size=20),
)
tick_lists = st.lists(moments, max_size=20)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def shipped(s: int, transit: int | None) -> datetime | None:
    return None if transit is None else at(s - transit)


def stored_form(outcome: Outcome) -> StoredOutcome:
    """As the store keeps it: a 3-tuple when the handover is unknown, else a 4-tuple."""
    lane, late, s, transit = outcome
    if transit is None:
        return (LANES[lane], late, at(s))
    return (LANES[lane], late, at(s), shipped(s, transit))


def run_live(
    policy: BreakerPolicy,
    outcomes: list[Outcome],
    ticks: list[int],
    until: int | None = None,
    delays: list[int] | None = None,
) -> tuple[LaneBook, list[Transition]]:
    """A book that saw each outcome as it happened (or ``delays`` later, in turn),
    evaluated at the ticks besides."""
    book = LaneBook(policy)
    changes: list[Transition] = []
    lag = delays or [0]
    events = sorted(
        [
            (s + lag[n % len(lag)], 1, lane, late, s, transit)
            for n, (lane, late, s, transit) in enumerate(outcomes)
        ]
        + [(s, 0, 0, False, s, None) for s in ticks],
        key=lambda event: (event[0], event[1]),
    )
    for arrival, kind, lane, late, s, transit in events:
        if until is not None and arrival > until:
            break
        if kind:
            changes += book.record(
                LANES[lane], late, at(s), at(arrival), shipped_at=shipped(s, transit)
            )
        else:
            changes += book.evaluate(at(arrival))
    return book, changes


def blank(health: LaneHealth) -> bool:
    """A lane whose outcomes all aged out and that never changed: nothing to rebuild."""
    return health.outcomes == 0 and health.since is None


def in_order(changes: list[Transition]) -> list[Transition]:
    return sorted(changes, key=lambda c: (c.at, c.lane, c.to_state))


@POLICIES
@settings(max_examples=300, deadline=None)
@given(outcome_lists, tick_lists, st.integers(0, 7200), st.randoms(use_true_random=False))
def test_rebuild_equals_a_book_that_saw_everything_live(
    policy: BreakerPolicy,
    outcomes: list[Outcome],
    ticks: list[int],
    extra: int,
    shuffle: random.Random,
) -> None:
    now = at(max([s for _, _, s, _ in outcomes] + ticks + [0]) + extra)
    live, changes = run_live(policy, outcomes, ticks)
    changes += live.evaluate(now)
    # Stored in any order, except that a lane's outcomes with one event time keep the order
    # they arrived in: which of them completes the probes decides the verdict.
    ties: dict[tuple[int, int], deque[StoredOutcome]] = {}
    for outcome in outcomes:
        ties.setdefault((outcome[0], outcome[2]), deque()).append(stored_form(outcome))
    arrival = [(lane, s) for lane, _, s, _ in outcomes]
    shuffle.shuffle(arrival)
    stored = [ties[tie].popleft() for tie in arrival]

    rebuilt = LaneBook.rebuild(stored, now, policy=policy)

    assert rebuilt.health(now) == live.health(now)
    assert in_order(rebuilt.replayed) == in_order(changes)


@POLICIES
@settings(max_examples=300, deadline=None)
@given(
    outcome_lists,
    tick_lists,
    st.integers(2400, HORIZON),
    st.integers(0, 3600),
    st.integers(0, 7200),
)
def test_rebuild_from_the_last_alerts_and_recent_outcomes_equals_the_live_book(
    policy: BreakerPolicy,
    outcomes: list[Outcome],
    ticks: list[int],
    down: int,
    margin: int,
    extra: int,
) -> None:
    now = at(max([s for _, _, s, _ in outcomes] + ticks + [down]) + extra)
    ideal, ideal_changes = run_live(policy, outcomes, ticks)
    ideal_changes += ideal.evaluate(now)
    before, alerted = run_live(policy, outcomes, ticks, until=down)
    alerted += before.evaluate(at(down))
    # Outcomes are kept from sustain + window + settle before the outage, and for a lane last
    # seen half-opening, since then.
    kept = policy.sustain_seconds + policy.window_seconds + policy.settle_seconds
    history_from = at(down - kept - margin)
    kept_from = {lane: history_from for lane in LANES}
    for change in alerted:  # a half-open lane counts its probes from when it half-opened
        if change.to_state is BreakerState.HALF_OPEN:
            kept_from[change.lane] = min(history_from, change.at)
        else:
            kept_from[change.lane] = history_from
    stored = [stored_form(o) for o in outcomes if at(o[2]) >= kept_from[LANES[o[0]]]]

    rebuilt = LaneBook.rebuild(
        stored, now, policy=policy, resume_from=alerted, history_from=history_from
    )

    assert [h for h in rebuilt.health(now) if not blank(h)] == [
        h for h in ideal.health(now) if not blank(h)
    ]
    raised = {c.key for c in alerted}
    assert {c.key for c in rebuilt.replayed} - raised == {c.key for c in ideal_changes} - raised


@settings(max_examples=300, deadline=None)
@given(
    outcome_lists,
    st.lists(st.integers(0, SETTLED.settle_seconds - 1), min_size=1, max_size=30),
    tick_lists,
)
def test_reports_within_the_settle_time_trip_a_lane_as_reports_at_once_would(
    outcomes: list[Outcome], delays: list[int], ticks: list[int]
) -> None:
    now = at(HORIZON + 4 * 3600)
    once_book, at_once = run_live(SETTLED, outcomes, [])
    at_once += once_book.evaluate(now)
    late_book, reported_late = run_live(SETTLED, outcomes, ticks, delays=delays)
    reported_late += late_book.evaluate(now)

    for lane in LANES:
        first = [c for c in at_once if c.lane == lane][:1]
        assert [c for c in reported_late if c.lane == lane][:1] == first


ALLOWED = {
    (BreakerState.CLOSED, BreakerState.OPEN),
    (BreakerState.OPEN, BreakerState.HALF_OPEN),
    (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    (BreakerState.HALF_OPEN, BreakerState.OPEN),
}


@POLICIES
@settings(max_examples=300, deadline=None)
@given(outcome_lists, st.lists(st.integers(0, 10_800), min_size=1, max_size=30), tick_lists)
def test_breaker_never_skips_a_state_whatever_the_arrival_order(
    policy: BreakerPolicy, outcomes: list[Outcome], delays: list[int], ticks: list[int]
) -> None:
    book, changes = run_live(policy, outcomes, ticks, delays=delays)

    for each in LANES:
        state, last = BreakerState.CLOSED, T0
        for change in (c for c in changes if c.lane == each):
            assert (change.from_state, change.to_state) in ALLOWED
            assert change.from_state is state
            assert change.at >= last
            state, last = change.to_state, change.at
        assert book.states().get(each, BreakerState.CLOSED) is state
