"""Window and page arithmetic for incremental pulls: plain functions of times and counts."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from adapters.openapi.base import Window


def whole_second(at: datetime) -> datetime:
    """``at`` without its fraction of a second (platforms take whole seconds)."""
    return at.replace(microsecond=0)


def next_window(
    cursor: datetime, now: datetime, max_window: timedelta, lag: timedelta
) -> Window | None:
    """The window to pull after ``cursor``: ``[cursor, min(now - lag, cursor + max_window)]``.

    None while ``now - lag`` has not passed the cursor yet (nothing new can be asked for).
    """
    if max_window <= timedelta(0):
        raise ValueError("max_window must be positive")
    start = whole_second(cursor)
    latest = whole_second(now - lag)
    end = min(latest, start + max_window)
    if end <= start:
        return None
    return Window(start, end)


def caught_up(window_end: datetime, now: datetime, lag: timedelta) -> bool:
    """Whether a cursor at ``window_end`` leaves less than a second to pull before ``now - lag``."""
    return whole_second(now - lag) - window_end < timedelta(seconds=1)


def last_page(total: int, page_size: int, first_page: int) -> int:
    """The number of the last page holding ``total`` orders (the first page when none)."""
    if page_size <= 0:
        raise ValueError("page_size must be positive")
    pages = max(1, math.ceil(total / page_size))
    return first_page + pages - 1


def pages_backwards(total: int, page_size: int, first_page: int) -> list[int]:
    """The pages to read after the first one, from the last back to the first.

    Orders that change during the pull leave the window, which moves every later order one
    place forward. Read from the back, an order that moves lands on a page still to be read;
    read from the front, it would land on one already read and be missed. The first page,
    already read to learn the total, is read again at the end for the same reason.
    """
    last = last_page(total, page_size, first_page)
    if last == first_page:
        return []
    return list(range(last, first_page - 1, -1))
