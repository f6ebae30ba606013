"""Values the hub and the shards exchange pickle as their fields and come back equal."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from ray import cloudpickle

from hub.domain.inventory import (
    LevelView,
    LineRequest,
    Reservation,
    ReservationStatus,
    ReservedLine,
)
from hub.domain.inventory_ops import Commit, Follow, GetReservation, Prepare, Release, Reserve
from hub.domain.pickling import by_fields

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
LINES = (LineRequest(1, "TEE", 2, "WH-1"), LineRequest(2, "MUG", 1))
HELD = (ReservedLine(1, "TEE", "WH-1", 2),)

VALUES = [
    LINES[0],
    LINES[1],
    HELD[0],
    Reservation("rsv_1", "o-1", ReservationStatus.HELD, "MUG", HELD, NOW, NOW),
    Reservation("rsv_1", "o-1", ReservationStatus.RELEASED, "MUG", HELD, NOW, NOW, NOW),
    LevelView("TEE", "WH-1", 10, 2, 1, 7),
    Reserve("o-1", "rsv_1", LINES, NOW, "MUG"),
    Reserve("o-1", "rsv_1", LINES, NOW, "MUG", HELD),
    Prepare("o-1", "rsv_1", LINES, NOW, "MUG"),
    Follow("o-1", "rsv_1", ReservationStatus.ABORTED),
    Release("o-1"),
    Commit("o-1"),
    GetReservation("o-1"),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "ray"])
def test_round_trip_keeps_every_field(value: object, dumps: object) -> None:
    assert callable(dumps)
    back = pickle.loads(dumps(value))
    assert back == value
    assert type(back) is type(value)


def test_a_reduced_value_is_its_class_and_field_values() -> None:
    cls, values = Reserve("o-1", "rsv_1", LINES, NOW, "MUG").__reduce__()
    assert cls is Reserve
    assert values == ("o-1", "rsv_1", LINES, NOW, "MUG", ())


def test_keyword_only_or_derived_fields_are_refused() -> None:
    @dataclass(frozen=True, kw_only=True)
    class Named:
        a: int
        b: int

    @dataclass
    class Derived:
        a: int
        b: int = field(init=False, default=0)

    for cls in (Named, Derived):
        with pytest.raises(TypeError, match="positional fields only"):
            by_fields(cls)
