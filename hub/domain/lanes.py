"""Lane health and circuit breakers, in plain Python: no clock but the times callers pass.

A lane is a warehouse, a carrier and a destination province. Delivery outcomes (late or on
time, when the delivery happened and, when known, when the parcel was handed to the carrier)
arrive from carrier tracking and from an RPC, out of order and minutes to hours late.
Everything here counts them by *event time*: an outcome lands in the ``bucket_seconds``
bucket its ``occurred_at`` falls in, whenever it arrives.

**When a lane trips.** Buckets are aligned to the Unix epoch, so with the defaults the
boundaries are every whole ten minutes (…, 10:00, 10:10, …). The *window ending at a
boundary b* holds the outcomes with ``b - window_seconds <= occurred_at < b``. That window
is *sparse* when it holds fewer than ``min_outcomes`` outcomes, *hot* when its late share is
above ``late_threshold``, and *cool* otherwise (at or below the threshold). A CLOSED lane
trips OPEN on boundary B when, among the windows ending at the boundaries
``B - sustain_seconds, B - sustain_seconds + bucket_seconds, …, B`` (13 of them with the
defaults, both ends included):

* none is cool, and
* the first and the last are hot.

Sparse windows in between are not judged: they neither trip a lane nor count as healthy, so
a quiet spell inside a bad stretch does not reset it, while both ends anchor the stretch on
real evidence. With the defaults a reader checks a trip on 12:00 by hand: for each of
10:00, 10:10, …, 12:00 take the hour before it; no hour with 20 or more outcomes may be at
or below 15% late, and the hours before 10:00 and before 12:00 must each have 20 or more
outcomes and be above 15% late.

``hot_margin_z`` (0, off, by default) asks the two ends for more than noise: with z above 0
an end is hot only when more than ``n·t + z·√(n·t·(1 - t))`` of its n outcomes are late
(t the threshold; the score test of "late share above t", the same as the Wilson interval's
lower bound lying above t). With t = 15% and z = 1 that is 5 of 20, 6 of 25, 12 of 60.
Windows in between are judged as without it.

**Settling.** Carriers report a delivery 10 to 90 minutes after it happens, sometimes hours
later, so when the clock passes a boundary the window ending at it holds only part of its
outcomes. Boundary B is therefore judged once, at ``B + settle_seconds`` (an hour by
default; 0 judges it at B), with every outcome recorded before that moment whose
``occurred_at`` is before B, in whatever order they arrived. An outcome recorded later
counts in later judgements, never in one already made. A trip happens at that moment of
judgement: ``Transition.at`` is ``B + settle_seconds``, when the lane stops taking orders and
its cool-down starts, and the reason names the evidence (the boundaries from
``B - sustain_seconds`` to B). ``at`` follows from B and the policy alone, so
``Transition.key`` is the same in every run and rebuild under one policy. With the defaults,
a lane late from 10:00 to 12:00 trips at 13:00. Time moves a lane only at such moments, so
:meth:`LaneBook.evaluate` need not be called exactly at them: a call later (or the next
outcome's arrival) makes the same judgement, as of its moment, on the same outcomes.

Time alone can trip a lane (a judgement falls due) or half-open it (a cool-down runs out), so
the owner calls :meth:`LaneBook.evaluate` often, every minute say; it looks only at the
lanes time can change: open ones, and closed ones with an outcome in a window still to be
judged. A lane is judged from when it is first seen; boundaries whose judgement fell due
before that never are.

**After a trip.** An OPEN lane takes no orders. ``cooldown_seconds`` after the trip it goes
HALF_OPEN and admits ``probe_share`` of orders, chosen by a stable hash of the order id.
Probes are the outcomes of parcels handed to the carrier (``shipped_at``) at or after the
half-open moment: they show how the lane delivers now (a parcel routed before the trip but
handed over after does too). Parcels handed over earlier, in transit when the lane tripped,
are not probes however late they are delivered; they count in the buckets only. When an
outcome's ``shipped_at`` is unknown the breaker cannot tell, so it counts as a probe only if
it occurred ``probe_transit_seconds`` (24 h by default) or more after the half-open moment,
by when most parcels in transit at the trip have been delivered; 0 makes every such outcome
occurring from the half-open moment on a probe, as before ``shipped_at`` existed. Once
``probe_outcomes`` probes have arrived the lane closes if their late share is at or below
the threshold and opens again otherwise (the cool-down restarts). Both happen at the
``now`` of the arrival that completed the probes. Neither the cool-down nor the verdict
waits for settling: no window is judged, the cool-down counts from the moment the lane
stopped taking orders, and waiting for ``probe_outcomes`` probes already waits for their
reports.

**Stragglers from before a close.** Parcels shipped before a trip keep settling while the
lane is open, and their outcomes keep arriving, some backfilled, after the lane closed
again. They still count in the buckets (GetLaneHealth shows them), but a lane that closed at
c is judged only on windows that start at or after c: it can trip again on boundary
``c + window_seconds + sustain_seconds`` at the earliest (judged ``settle_seconds`` later)
and only on outcomes that occurred after the probes proved it healthy. So no straggler,
however late it arrives, reopens a lane on evidence older than the evidence that closed it.

**Restarts.** Every decision depends on the outcomes known at event times (a judgement
moment, the end of a cool-down, the arrival completing the probes), never on when
:meth:`LaneBook.evaluate` happened to be called, so :meth:`LaneBook.rebuild` replays stored
outcomes as if each had been recorded when it occurred and reaches the state a book that had
seen them so would hold (outcomes of one lane with equal event times must come in the order
they arrived). A live book that heard of every outcome less than ``settle_seconds`` after it
occurred judged every boundary on the same outcomes, so it tripped at the same moments, up
to its first verdict on probes: that happens at the arrival completing them, which a replay
puts at the probe's ``occurred_at``, and later judgements start from it. The transitions
found while replaying are kept apart (``LaneBook.replayed``), never returned as new: their
``key`` is the same in every run, so the caller raises only those its alert log does not
already hold, and no alert goes out twice. A rebuild need not read all history:
given every lane's last transition (``resume_from``), the outcomes since ``history_from``
(at least ``sustain_seconds + window_seconds + settle_seconds`` before the hub stopped, what
``retention_seconds`` keeps by default), and for a lane whose last transition half-opened it
the outcomes since then (its probes, with their ``shipped_at``), it reaches the same state.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from hub.domain.quotes import CARRIERS

#: Bucket indexes count from here; any fixed instant works, the epoch is easy to check by hand.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_PAST = -(2**62)
_HASH_SPAN = float(2**64)


class BreakerState(StrEnum):
    """Whether a lane takes orders: all (CLOSED), none (OPEN) or a probe share (HALF_OPEN)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    """Where parcels go: from a warehouse, with a carrier, to a (normalised) province."""

    warehouse_id: str
    carrier: str
    destination_province: str

    def __post_init__(self) -> None:
        if not self.warehouse_id:
            raise ValueError("warehouse_id must not be empty")
        if self.carrier not in CARRIERS:
            raise ValueError(f"carrier {self.carrier!r} is not one of {', '.join(CARRIERS)}")
        if not self.destination_province:
            raise ValueError("destination_province must not be empty")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Thresholds and windows of every lane's breaker; seconds are whole numbers."""

    late_threshold: float = 0.15
    sustain_seconds: int = 7200
    bucket_seconds: int = 600
    window_seconds: int = 3600
    min_outcomes: int = 20
    cooldown_seconds: int = 1800
    probe_share: float = 0.1
    probe_outcomes: int = 10
    #: How far back buckets are kept; 0 means just what judging needs
    #: (sustain + window + settle).
    retention_seconds: int = 0
    #: How long after a boundary it is judged, so that late reports count; 0 judges at once.
    settle_seconds: int = 3600
    #: An outcome with no ``shipped_at`` is a probe only if it occurred this long or more
    #: after the half-open moment; 0 makes any outcome from that moment on a probe.
    probe_transit_seconds: int = 86_400
    #: Standard errors by which the ends of a bad stretch must be above the threshold; 0 is
    #: plain "above".
    hot_margin_z: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "sustain_seconds",
            "bucket_seconds",
            "window_seconds",
            "min_outcomes",
            "cooldown_seconds",
            "probe_outcomes",
            "retention_seconds",
            "settle_seconds",
            "probe_transit_seconds",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if not 0 < self.late_threshold < 1:
            raise ValueError(f"late_threshold must be between 0 and 1, got {self.late_threshold}")
        if self.bucket_seconds < 1:
            raise ValueError(f"bucket_seconds must be positive, got {self.bucket_seconds}")
        if self.window_seconds < 1 or self.window_seconds % self.bucket_seconds:
            raise ValueError(
                f"window_seconds must be a positive multiple of bucket_seconds "
                f"({self.bucket_seconds}), got {self.window_seconds}"
            )
        if self.sustain_seconds < 0 or self.sustain_seconds % self.bucket_seconds:
            raise ValueError(
                f"sustain_seconds must be a multiple of bucket_seconds "
                f"({self.bucket_seconds}), got {self.sustain_seconds}"
            )
        if self.min_outcomes < 1:
            raise ValueError(f"min_outcomes must be at least 1, got {self.min_outcomes}")
        if self.cooldown_seconds < 1:
            raise ValueError(f"cooldown_seconds must be positive, got {self.cooldown_seconds}")
        if not 0 < self.probe_share <= 1:
            raise ValueError(f"probe_share must be in (0, 1], got {self.probe_share}")
        if self.probe_outcomes < 1:
            raise ValueError(f"probe_outcomes must be at least 1, got {self.probe_outcomes}")
        if self.settle_seconds < 0 or self.settle_seconds % self.bucket_seconds:
            raise ValueError(
                f"settle_seconds must be a multiple of bucket_seconds "
                f"({self.bucket_seconds}), got {self.settle_seconds}"
            )
        if self.probe_transit_seconds < 0:
            raise ValueError(
                f"probe_transit_seconds must not be negative, got {self.probe_transit_seconds}"
            )
        z = self.hot_margin_z
        if isinstance(z, bool) or not isinstance(z, int | float) or not 0 <= z < math.inf:
            raise ValueError(f"hot_margin_z must be a number, 0 or more, got {z!r}")
        needed = self.sustain_seconds + self.window_seconds + self.settle_seconds
        if self.retention_seconds == 0:
            object.__setattr__(self, "retention_seconds", needed)
        elif self.retention_seconds < needed:
            raise ValueError(
                f"retention_seconds must be at least sustain_seconds + window_seconds "
                f"+ settle_seconds ({needed}), got {self.retention_seconds}"
            )


@dataclass(frozen=True, slots=True)
class Transition:
    """A lane changed state; the caller turns it into an alert for operations.

    ``at`` is when the change took effect, the moment it was decided: for a trip, the
    moment boundary B was judged (B + ``settle_seconds``; B is named in ``reason``); for a
    half-open, the end of the cool-down; for a verdict on probes, the arrival that
    completed them. It is the lane's ``since`` and, with the lane and the new state, the
    transition's identity.
    """

    lane: Lane
    from_state: BreakerState
    to_state: BreakerState
    at: datetime
    reason: str
    #: Late share behind the change, with ``outcomes``: for a trip or a half-open, the window
    #: ending at the last boundary judged by ``at`` (for a trip, B); for a verdict on probes,
    #: the probes.
    delay_rate: float
    outcomes: int

    @property
    def key(self) -> str:
        """Identity of this transition, equal in every run that sees the same outcomes."""
        lane = self.lane
        return (
            f"{lane.warehouse_id}/{lane.carrier}/{lane.destination_province}"
            f"/{self.to_state}/{self.at.astimezone(UTC).isoformat()}"
        )


@dataclass(frozen=True, slots=True)
class LaneHealth:
    """What GetLaneHealth shows of one lane at a moment."""

    lane: Lane
    state: BreakerState
    #: Late share of the window ending at the last boundary judged by now (the last
    #: boundary up to ``now - settle_seconds``), the one the breaker judged last; 0 when that
    #: window is empty.
    delay_rate: float
    outcomes: int
    late: int
    #: Whether that window holds enough outcomes to be judged.
    judged: bool
    #: When the lane entered its state; None for a lane that never changed.
    since: datetime | None
    reason: str
    #: Probes so far, while HALF_OPEN.
    probes: int
    probe_late: int
    #: When an OPEN lane goes HALF_OPEN.
    reopens_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Steps:
    """A policy in bucket units, shared by every breaker under it."""

    bucket: timedelta
    window: int
    sustain: int
    retention: int
    settle: int
    cooldown: timedelta
    probe_transit: timedelta


@lru_cache(maxsize=64)
def _steps(policy: BreakerPolicy) -> _Steps:
    bucket = policy.bucket_seconds
    return _Steps(
        bucket=timedelta(seconds=bucket),
        window=policy.window_seconds // bucket,
        sustain=policy.sustain_seconds // bucket,
        retention=-(-policy.retention_seconds // bucket),
        settle=policy.settle_seconds // bucket,
        cooldown=timedelta(seconds=policy.cooldown_seconds),
        probe_transit=timedelta(seconds=policy.probe_transit_seconds),
    )


def _require_aware(moment: datetime, name: str) -> None:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be time zone-aware, got {moment!r}")


def _share(fraction: float) -> str:
    return f"{fraction * 100:g}%"


def _span(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}min" if minutes else ""]
    parts.append(f"{secs}s" if secs or not any(parts) else "")
    return "".join(parts)


def _require_shipped(shipped_at: datetime | None, occurred_at: datetime) -> None:
    if shipped_at is not None:
        _require_aware(shipped_at, "shipped_at")
        if shipped_at > occurred_at:
            raise ValueError(
                f"shipped_at ({shipped_at.isoformat()}) must not be after occurred_at "
                f"({occurred_at.isoformat()})"
            )


#: A stored outcome: (lane, late, occurred_at) or (lane, late, occurred_at, shipped_at).
StoredOutcome = tuple[Lane, bool, datetime] | tuple[Lane, bool, datetime, datetime | None]


def _event_time(outcome: StoredOutcome) -> datetime:
    _require_aware(outcome[2], "occurred_at")
    return outcome[2]


def _unpack(outcome: StoredOutcome) -> tuple[Lane, bool, datetime, datetime | None]:
    if len(outcome) == 4:
        return outcome
    lane, late, occurred_at = outcome
    return lane, late, occurred_at, None


def probe_point(key: str) -> float:
    """Where an order id falls in [0, 1): the same in every process, unlike ``hash()``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _HASH_SPAN


# --------------------------------------------------------------------------- one lane


class LaneBreaker:
    """The breaker of one lane: its outcome buckets and its state."""

    __slots__ = (
        "_eligible",
        "_first_seen",
        "_history_from",
        "_indexes",
        "_judged",
        "_lates",
        "_pruned",
        "_steps",
        "_totals",
        "lane",
        "policy",
        "probe_late",
        "probes",
        "reason",
        "since",
        "state",
    )

    def __init__(
        self, lane: Lane, policy: BreakerPolicy, *, history_from: datetime | None = None
    ) -> None:
        self.lane = lane
        self.policy = policy
        self.state = BreakerState.CLOSED
        self.since: datetime | None = None
        self.reason = ""
        self.probes = 0
        self.probe_late = 0
        self._steps = _steps(policy)
        # Windows reaching before history_from would be judged on a partial history.
        self._history_from = history_from
        self._totals: dict[int, int] = {}
        self._lates: dict[int, int] = {}
        self._indexes: list[int] = []  # bucket indexes present, ascending
        self._first_seen: datetime | None = None
        self._judged = _FAR_PAST  # newest boundary judged, or known to need no judging
        self._pruned = _FAR_PAST  # buckets below this index are gone
        self._eligible = self._eligible_after(history_from)

    @classmethod
    def resume(
        cls, transition: Transition, policy: BreakerPolicy, *, history_from: datetime | None = None
    ) -> LaneBreaker:
        """A breaker in the state a stored transition left its lane in, at that moment."""
        breaker = cls(transition.lane, policy, history_from=history_from)
        breaker._start(transition.at)
        breaker._enter(
            transition.to_state,
            transition.at,
            transition.reason,
            transition.delay_rate,
            transition.outcomes,
        )
        return breaker

    # ----------------------------------------------------------------- outcomes and time

    def record(
        self,
        late: bool,
        occurred_at: datetime,
        now: datetime,
        *,
        shipped_at: datetime | None = None,
    ) -> list[Transition]:
        """Judge the lane up to ``now``, then count one delivery outcome.

        ``shipped_at``, when the parcel was handed to the carrier, tells a probe from a
        parcel that was in transit when the lane tripped; it must not be after
        ``occurred_at``.
        """
        _require_aware(occurred_at, "occurred_at")
        _require_aware(now, "now")
        _require_shipped(shipped_at, occurred_at)
        self._start(now)
        # What fell due up to now is judged on what was recorded before now.
        changes = self._advance(now)
        self._tally(late, occurred_at)
        if self.state is BreakerState.HALF_OPEN and self._is_probe(occurred_at, shipped_at):
            self.probes += 1
            self.probe_late += late
            if self.probes >= self.policy.probe_outcomes:
                changes.append(self._judge_probes(now))
        return changes

    def evaluate(self, now: datetime) -> list[Transition]:
        """Judge the lane up to ``now``: boundaries passed, a cool-down run out."""
        _require_aware(now, "now")
        self._start(now)
        return self._advance(now)

    def next_check(self) -> datetime | None:
        """The earliest moment time alone may change this lane; None if only outcomes can."""
        if self.state is BreakerState.OPEN:
            return self._reopens_at()
        if self.state is BreakerState.CLOSED:
            boundary = self._next_boundary()
            return None if boundary is None else self._boundary(boundary + self._steps.settle)
        return None

    # ----------------------------------------------------------------- reading

    def admits(self, key: str, now: datetime) -> bool:
        """Whether the lane takes the order ``key`` now."""
        if self.state is BreakerState.CLOSED:
            return True
        # A run-out cool-down admits probes before evaluate reports it: a slow tick must
        # not hold probes back.
        if self.state is BreakerState.OPEN and now < self._reopens_at():
            return False
        return probe_point(key) < self.policy.probe_share

    def health(self, now: datetime) -> LaneHealth:
        """The lane's state, and the window ending at the last boundary judged by ``now``."""
        late, total = self._window_ending(self._settled(now))
        return LaneHealth(
            lane=self.lane,
            state=self.state,
            delay_rate=late / total if total else 0.0,
            outcomes=total,
            late=late,
            judged=total >= self.policy.min_outcomes,
            since=self.since,
            reason=self.reason,
            probes=self.probes,
            probe_late=self.probe_late,
            reopens_at=self._reopens_at() if self.state is BreakerState.OPEN else None,
        )

    # ----------------------------------------------------------------- inside

    def _index(self, moment: datetime) -> int:
        return (moment - EPOCH) // self._steps.bucket

    def _boundary(self, index: int) -> datetime:
        return EPOCH + self._steps.bucket * index

    def _settled(self, now: datetime) -> int:
        """The last boundary whose judgement is due by ``now``."""
        return self._index(now) - self._steps.settle

    def _is_probe(self, occurred_at: datetime, shipped_at: datetime | None) -> bool:
        since = self.since
        assert since is not None
        if shipped_at is not None:
            return shipped_at >= since
        return occurred_at >= since + self._steps.probe_transit

    def _eligible_after(self, clean_from: datetime | None) -> int:
        """First boundary whose whole judged span starts at or after ``clean_from``."""
        if self._history_from is not None and (
            clean_from is None or clean_from < self._history_from
        ):
            clean_from = self._history_from
        if clean_from is None:
            return _FAR_PAST
        whole, part = divmod(clean_from - EPOCH, self._steps.bucket)
        first_clean_bucket = whole + (1 if part else 0)
        return first_clean_bucket + self._steps.window + self._steps.sustain

    def _reopens_at(self) -> datetime:
        assert self.since is not None
        return self.since + self._steps.cooldown

    def _start(self, now: datetime) -> None:
        if self._first_seen is None:
            # A lane is judged from when it is first seen; boundaries due earlier never were.
            self._first_seen = now
            self._judged = self._settled(now)

    def _tally(self, late: bool, occurred_at: datetime) -> None:
        index = self._index(occurred_at)
        if index < self._pruned:
            return
        if index not in self._totals:
            insort(self._indexes, index)
            self._totals[index] = 0
        self._totals[index] += 1
        if late:
            self._lates[index] = self._lates.get(index, 0) + 1

    def _advance(self, now: datetime) -> list[Transition]:
        changes: list[Transition] = []
        while True:
            if self.state is BreakerState.OPEN:
                reopens_at = self._reopens_at()
                if reopens_at > now:
                    break
                late, total = self._window_ending(self._settled(reopens_at))
                changes.append(
                    self._enter(
                        BreakerState.HALF_OPEN,
                        reopens_at,
                        f"cool-down of {_span(self.policy.cooldown_seconds)} over; admitting "
                        f"{_share(self.policy.probe_share)} of orders as probes",
                        late / total if total else 0.0,
                        total,
                    )
                )
            elif self.state is BreakerState.CLOSED:
                boundary = self._next_boundary()
                if boundary is None or self._boundary(boundary + self._steps.settle) > now:
                    break
                self._judged = boundary
                trip = self._judge(boundary)
                if trip is not None:
                    changes.append(trip)
            else:
                break
        settled = self._settled(now)
        if settled > self._judged:
            self._judged = settled
        self._prune(self._index(now))
        return changes

    def _next_boundary(self) -> int | None:
        """The next boundary worth judging; None while no window ahead holds an outcome."""
        boundary = max(self._judged + 1, self._eligible)
        first = bisect_left(self._indexes, boundary - self._steps.window)
        if first == len(self._indexes):
            return None
        return max(boundary, self._indexes[first] + 1)

    def _judge(self, boundary: int) -> Transition | None:
        """Trip on ``boundary`` if the windows ending at it and the sustain before qualify."""
        window, sustain = self._steps.window, self._steps.sustain
        totals, lates = self._totals, self._lates
        threshold, least = self.policy.late_threshold, self.policy.min_outcomes
        late, total = self._window_ending(boundary)
        last_total, last_late = total, late
        if total < least:
            return None
        # Walk back one bucket at a time; a healthy lane stops at the first window.
        point = boundary
        for step in range(sustain + 1):
            if step:
                point -= 1
                total += totals.get(point - window, 0) - totals.get(point, 0)
                late += lates.get(point - window, 0) - lates.get(point, 0)
            if total >= least and late / total <= threshold:
                return None
        if total < least:  # the oldest end must be judged too
            return None
        if not (self._clear(late, total) and self._clear(last_late, last_total)):
            return None
        end = self._boundary(boundary)
        start = self._boundary(boundary - sustain)
        settled = (
            f" (judged {_span(self.policy.settle_seconds)} later)"
            if self.policy.settle_seconds
            else ""
        )
        return self._enter(
            BreakerState.OPEN,
            self._boundary(boundary + self._steps.settle),
            f"late rate above {_share(threshold)} at every judged point from "
            f"{start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC{settled}; last "
            f"{_span(self.policy.window_seconds)}: {last_late} of {last_total} late",
            last_late / last_total,
            last_total,
        )

    def _clear(self, late: int, total: int) -> bool:
        """Whether a judged, hot window is above the threshold by ``hot_margin_z`` too."""
        z = self.policy.hot_margin_z
        if not z:
            return True
        threshold = self.policy.late_threshold
        return late - total * threshold > z * math.sqrt(total * threshold * (1 - threshold))

    def _judge_probes(self, now: datetime) -> Transition:
        rate = self.probe_late / self.probes
        summary = f"{self.probe_late} of {self.probes} late ({rate:.1%})"
        if rate > self.policy.late_threshold:
            return self._enter(
                BreakerState.OPEN,
                now,
                f"probes still late: {summary}; cool-down restarts",
                rate,
                self.probes,
            )
        healthy = f"probes healthy: {summary}"
        return self._enter(BreakerState.CLOSED, now, healthy, rate, self.probes)

    def _enter(
        self, state: BreakerState, at: datetime, reason: str, rate: float, outcomes: int
    ) -> Transition:
        at = at.astimezone(UTC)
        change = Transition(self.lane, self.state, state, at, reason, rate, outcomes)
        self.state, self.since, self.reason = state, at, reason
        self.probes = self.probe_late = 0
        if state is BreakerState.CLOSED:
            self._eligible = self._eligible_after(at)
            self._judged = max(self._judged, self._index(at))
        return change

    def _window_ending(self, boundary: int) -> tuple[int, int]:
        span = range(boundary - self._steps.window, boundary)
        late = sum(self._lates.get(i, 0) for i in span)
        return late, sum(self._totals.get(i, 0) for i in span)

    def _prune(self, current: int) -> None:
        cutoff = current - self._steps.retention
        if cutoff <= self._pruned:
            return
        self._pruned = cutoff
        gone = bisect_left(self._indexes, cutoff)
        for index in self._indexes[:gone]:
            del self._totals[index]
            self._lates.pop(index, None)
        del self._indexes[:gone]


# --------------------------------------------------------------------------- all lanes


class LaneBook:
    """Every lane's breaker under one policy; a lane appears with its first outcome."""

    def __init__(self, policy: BreakerPolicy | None = None) -> None:
        self.policy = policy if policy is not None else BreakerPolicy()
        #: Transitions found by :meth:`rebuild`; the caller raises those not yet alerted.
        self.replayed: list[Transition] = []
        self._lanes: dict[Lane, LaneBreaker] = {}
        self._history_from: datetime | None = None
        # Lanes time alone may change, by when; entries whose time moved on are skipped.
        self._due: list[tuple[datetime, Lane]] = []
        self._scheduled: dict[Lane, datetime] = {}

    def record(
        self,
        lane: Lane,
        late: bool,
        occurred_at: datetime,
        now: datetime,
        *,
        shipped_at: datetime | None = None,
    ) -> list[Transition]:
        """Judge a lane up to ``now`` and count one delivery outcome on it.

        ``shipped_at`` is when the parcel was handed to the carrier, if known: it decides
        whether the outcome is a probe of a HALF_OPEN lane.
        """
        _require_aware(occurred_at, "occurred_at")
        _require_aware(now, "now")
        _require_shipped(shipped_at, occurred_at)
        breaker = self._lanes.get(lane)
        if breaker is None:
            breaker = LaneBreaker(lane, self.policy, history_from=self._history_from)
            self._lanes[lane] = breaker
        changes = breaker.record(late, occurred_at, now, shipped_at=shipped_at)
        self._schedule(breaker)
        return changes

    def evaluate(self, now: datetime) -> list[Transition]:
        """Judge every lane time has caught up with; the others are not touched."""
        _require_aware(now, "now")
        changes: list[Transition] = []
        while self._due and self._due[0][0] <= now:
            due, lane = heapq.heappop(self._due)
            if self._scheduled.get(lane) != due:
                continue
            del self._scheduled[lane]
            breaker = self._lanes[lane]
            changes.extend(breaker.evaluate(now))
            self._schedule(breaker)
        return changes

    def states(self) -> dict[Lane, BreakerState]:
        """The state of every lane seen."""
        return {lane: breaker.state for lane, breaker in self._lanes.items()}

    def health(
        self,
        now: datetime,
        *,
        warehouse_id: str = "",
        carrier: str = "",
        destination_province: str = "",
        state: BreakerState | None = None,
    ) -> list[LaneHealth]:
        """Health of the lanes matching every filter given (empty matches all), by lane."""
        return [
            self._lanes[lane].health(now)
            for lane in sorted(self._lanes)
            if (not warehouse_id or lane.warehouse_id == warehouse_id)
            and (not carrier or lane.carrier == carrier)
            and (not destination_province or lane.destination_province == destination_province)
            and (state is None or self._lanes[lane].state is state)
        ]

    def admits(self, lane: Lane, key: str, now: datetime) -> bool:
        """Whether a lane takes the order ``key`` now; a lane never seen does."""
        breaker = self._lanes.get(lane)
        return True if breaker is None else breaker.admits(key, now)

    @classmethod
    def rebuild(
        cls,
        outcomes: Iterable[StoredOutcome],
        now: datetime,
        *,
        policy: BreakerPolicy | None = None,
        resume_from: Iterable[Transition] = (),
        history_from: datetime | None = None,
    ) -> LaneBook:
        """The book after a restart: stored outcomes replayed at their own event times.

        ``resume_from`` holds transitions alerted before; a lane starts from its latest one,
        and its outcomes before that moment only fill the statistics. ``history_from`` says
        the outcomes given are complete from then on only: windows reaching before it are
        not judged. Transitions found go to :attr:`replayed`, not to the caller as new.
        Each outcome is ``(lane, late, occurred_at)`` or ``(lane, late, occurred_at,
        shipped_at)``, replayed as if recorded when it occurred; ``shipped_at`` (None when
        unknown) tells probes, so store it for outcomes that may be probes. Outcomes with
        equal event times are replayed in the order given: pass them in the order they
        arrived, since the one that completes a lane's probes decides the verdict.
        """
        _require_aware(now, "now")
        book = cls(policy)
        book._history_from = history_from
        latest: dict[Lane, Transition] = {}
        for change in resume_from:
            held = latest.get(change.lane)
            if change.at <= now and (held is None or change.at >= held.at):
                latest[change.lane] = change
        for lane, change in latest.items():
            book._lanes[lane] = LaneBreaker.resume(change, book.policy, history_from=history_from)
            book._schedule(book._lanes[lane])
        found: list[Transition] = []
        # sorted() is stable: equal event times keep the order given.
        for outcome in sorted(outcomes, key=_event_time):
            lane, late, occurred_at, shipped_at = _unpack(outcome)
            resumed = latest.get(lane)
            if resumed is not None and occurred_at < resumed.at:
                # Before the lane's last transition: statistics only, never a probe of it.
                _require_shipped(shipped_at, occurred_at)
                book._lanes[lane]._tally(late, occurred_at)
                continue
            found.extend(
                book.record(lane, late, occurred_at, min(occurred_at, now), shipped_at=shipped_at)
            )
        found.extend(book.evaluate(now))
        book.replayed = found
        return book

    def _schedule(self, breaker: LaneBreaker) -> None:
        due = breaker.next_check()
        lane = breaker.lane
        if due is None:
            self._scheduled.pop(lane, None)
        elif self._scheduled.get(lane) != due:
            self._scheduled[lane] = due
            heapq.heappush(self._due, (due, lane))
