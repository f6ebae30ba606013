"""Window arithmetic, backwards paging, backoff and pacing for the pollers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.openapi import Window
from adapters.openapi.windows import (
    caught_up,
    last_page,
    next_window,
    pages_backwards,
    whole_second,
)
from hub.pollers import Backoff, TokenBucket

NOW = datetime(2026, 3, 1, 12, 0, 30, 250_000, tzinfo=UTC)
LAG = timedelta(seconds=60)


def at(minutes_ago: float) -> datetime:
    return whole_second(NOW) - timedelta(minutes=minutes_ago)


def test_a_window_ends_lag_before_now_when_the_cursor_is_close() -> None:
    window = next_window(at(5), NOW, timedelta(minutes=30), LAG)
    assert window == Window(at(5), datetime(2026, 3, 1, 11, 59, 30, tzinfo=UTC))


def test_a_window_never_spans_more_than_the_platform_allows() -> None:
    window = next_window(at(120), NOW, timedelta(minutes=30), LAG)
    assert window is not None
    assert window.start == at(120) and window.end == at(90)
    assert not caught_up(window.end, NOW, LAG)


def test_no_window_while_now_minus_lag_has_not_passed_the_cursor() -> None:
    assert next_window(at(0.5), NOW, timedelta(minutes=30), LAG) is None
    assert next_window(at(1) + timedelta(seconds=30), NOW, timedelta(minutes=30), LAG) is None


def test_windows_are_whole_seconds_and_follow_each_other() -> None:
    cursor = NOW - timedelta(hours=1, microseconds=300)
    first = next_window(cursor, NOW, timedelta(minutes=30), LAG)
    assert first is not None and first.start.microsecond == 0 and first.end.microsecond == 0
    second = next_window(first.end, NOW, timedelta(minutes=30), LAG)
    assert second is not None and second.start == first.end
    assert caught_up(second.end, NOW, LAG)


def test_a_window_refuses_naive_times_and_running_backwards() -> None:
    with pytest.raises(ValueError, match="zone-aware"):
        Window(datetime(2026, 3, 1), datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="before it starts"):
        Window(at(1), at(2))


def test_last_page_counts_from_the_platform_first_page() -> None:
    assert last_page(0, 100, 1) == 1
    assert last_page(100, 100, 1) == 1
    assert last_page(101, 100, 1) == 2
    assert last_page(250, 100, 0) == 2


def test_pages_are_read_from_the_last_back_to_the_first() -> None:
    # The first page is read first to learn the total; then last .. first again.
    assert pages_backwards(5, 2, 1) == [3, 2, 1]
    assert pages_backwards(5, 2, 0) == [2, 1, 0]
    assert pages_backwards(2, 2, 1) == []  # one page: nothing more to read
    assert pages_backwards(0, 2, 0) == []


def test_backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() -> None:
    backoff = Backoff(base_s=1.0, cap_s=8.0)
    assert [backoff.delay(n, 0.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff.delay(n, 0.999) for n in range(1, 6)] == pytest.approx(
        [1.0, 2.0, 4.0, 8.0, 8.0], abs=0.01
    )


def test_failed_runs_back_off_from_the_poll_interval_up_to_the_run_cap() -> None:
    backoff = Backoff(run_cap_s=300.0)
    assert backoff.run_delay(1, 60.0, 0.0) == 30.0
    assert backoff.run_delay(3, 60.0, 0.0) == 120.0
    assert backoff.run_delay(10, 60.0, 0.0) == 150.0  # half of the 300 s cap


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


async def test_a_bucket_allows_a_burst_then_paces_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, monotonic=clock.monotonic, sleep=clock.sleep)
    waits = [await bucket.take() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]  # a second's worth at once
    assert waits[2:] == pytest.approx([0.5, 0.5, 0.5])
    assert clock.t == pytest.approx(1.5)


async def test_a_slow_bucket_waits_a_whole_interval() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, monotonic=clock.monotonic, sleep=clock.sleep)
    assert await bucket.take() == 0.0
    assert await bucket.take() == pytest.approx(2.0)


async def test_a_bucket_refills_while_idle() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    await bucket.take()
    clock.t += 10  # idle for a while: refills, but only up to the burst size
    assert await bucket.take() == 0.0
    assert await bucket.take() == pytest.approx(1.0)
