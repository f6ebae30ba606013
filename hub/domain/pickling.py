"""How the values the hub and the shard actors exchange are pickled.

Every reservation crosses a process boundary twice (the command to its shard, the answer
back), and Ray pickles both. A slotted dataclass pickles through a generic state
function that lists its fields on every call; :func:`by_fields` pickles it as its class
and field values instead, about half the work each way.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, TypeVar

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Class decorator (above ``@dataclass``): pickle as ``cls(*field values)``."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not fields or any(not f.init or f.kw_only for f in fields):
        raise TypeError(f"{cls.__name__}: needs positional fields only")
    if len(fields) == 1:
        only = fields[0].name

        def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
            return cls, (getattr(self, only),)
    else:
        values = operator.attrgetter(*(f.name for f in fields))

        def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
            return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls
