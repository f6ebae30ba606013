"""Masking of personal data in answers, driven by the protos' ``sensitivity`` field option.

A field marked ``[(orderhub.v1.sensitivity) = SENSITIVITY_PHONE]`` (and so on) is shown,
masked or redacted according to the caller's role (:mod:`hub.domain.access`). The plan of
which fields to visit is worked out once per message type; types that cannot hold personal
data are passed through untouched, and an answer is copied before it is changed, so a
message a handler cached is never altered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hub.domain.access import REDACTED, Sensitivity, Treatment, Visibility, treat
from orderhub.v1 import options_pb2

M = TypeVar("M", bound=Message)


@dataclass(frozen=True, slots=True)
class _Plan:
    # (field name, kind, bytes?, repeated?)
    marked: tuple[tuple[str, Sensitivity, bool, bool], ...]
    # (field name, repeated?, map?) of message fields that can hold marked fields
    nested: tuple[tuple[str, bool, bool], ...]


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


class Masker:
    """Applies a role's visibility to a message, in place on a copy."""

    def __init__(self) -> None:
        self._plans: dict[str, _Plan | None] = {}

    def plan(self, descriptor: Any) -> _Plan | None:
        """Which fields of this type (and the types inside it) are personal; None if none."""
        name = descriptor.full_name
        if name in self._plans:
            return self._plans[name]
        self._plans[name] = None  # guards against recursive types while being planned
        marked: list[tuple[str, Sensitivity, bool, bool]] = []
        nested: list[tuple[str, bool, bool]] = []
        for field in descriptor.fields:
            kind = Sensitivity(field.GetOptions().Extensions[options_pb2.sensitivity])
            if kind is not Sensitivity.UNSPECIFIED:
                marked.append(
                    (
                        field.name,
                        kind,
                        field.type == FieldDescriptor.TYPE_BYTES,
                        _is_repeated(field),
                    )
                )
            elif field.message_type is not None:
                is_map = field.message_type.GetOptions().map_entry
                inner = field.message_type.fields_by_name["value"] if is_map else None
                target = inner.message_type if inner is not None else field.message_type
                if target is not None and self.plan(target) is not None:
                    nested.append((field.name, _is_repeated(field), bool(is_map)))
        plan = _Plan(tuple(marked), tuple(nested)) if marked or nested else None
        self._plans[name] = plan
        return plan

    def apply(self, message: M, visibility: Visibility) -> M:
        """``message`` as a role with ``visibility`` may see it (the same object if unchanged)."""
        if visibility.sees_everything:
            return message
        plan = self.plan(message.DESCRIPTOR)
        if plan is None:
            return message
        copy = type(message)()
        copy.CopyFrom(message)
        self._walk(copy, plan, visibility)
        return copy

    def _walk(self, message: Message, plan: _Plan, visibility: Visibility) -> None:
        for name, kind, is_bytes, repeated in plan.marked:
            treatment = visibility.of(kind)
            if treatment is Treatment.SHOW:
                continue
            if repeated:
                values = getattr(message, name)
                if is_bytes:
                    values[:] = [b"" for _ in values]
                else:
                    values[:] = [treat(treatment, kind, v) for v in values]
            elif is_bytes:
                if getattr(message, name):
                    setattr(message, name, b"")
            else:
                value = getattr(message, name)
                if value:
                    setattr(message, name, treat(treatment, kind, value))
        for name, repeated, is_map in plan.nested:
            if is_map:
                children = list(getattr(message, name).values())
            elif repeated:
                children = list(getattr(message, name))
            elif message.HasField(name):
                children = [getattr(message, name)]
            else:
                continue
            for child in children:
                inner = self.plan(child.DESCRIPTOR)
                if inner is not None:
                    self._walk(child, inner, visibility)


__all__ = ["REDACTED", "Masker"]
