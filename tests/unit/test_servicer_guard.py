"""The servicer's guard: a call whose deadline has passed does no work."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
import pytest

from hub.api.stock import _guard


class Aborted(Exception):
    pass


class LateContext:
    """A servicer context whose caller's deadline has already passed."""

    def time_remaining(self) -> float:
        return 0.0

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


async def test_a_call_past_its_deadline_is_refused_before_any_work() -> None:
    done: list[str] = []

    async def work() -> str:
        done.append("work")
        return "answer"

    with pytest.raises(Aborted) as refused:
        await _guard(LateContext(), work, str)  # type: ignore[arg-type]
    assert refused.value.args[0] is grpc.StatusCode.DEADLINE_EXCEEDED
    assert done == []


async def test_a_call_with_time_left_does_its_work() -> None:
    class OnTime(LateContext):
        def time_remaining(self) -> Any:
            return 5.0

    async def work() -> str:
        return "answer"

    assert await _guard(OnTime(), work, str) == "answer"  # type: ignore[arg-type]
