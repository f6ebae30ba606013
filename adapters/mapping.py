"""A new channel by configuration: a mapping file (TOML or JSON) → an order translator.

A mapping names, for one platform, where each unified field lives in its order payload and
how to read it. Paths are dotted (``shipping.city``); ``name[]`` walks every element of a
list (amounts found that way are summed, texts joined), ``name[0]`` one element. A text
field is a path, a template (``"{shipping.first_name} {shipping.last_name}"``) or a list of
those, of which the first non-empty one wins. Example: ``adapters/channels/woocommerce.toml``.

Layout (``?`` = optional)::

    name = "woocommerce"            # the platform name orders are ingested under
    description? = "…"
    envelopes? = ["order", ""]      # where the order sits; "" = the payload itself

    [order]
    id = "id"                       # path(s); an id never passes through a float
    currency? = "currency"          # path; default_currency? = "CNY" when absent
    total_paid = "total"            # money: path, or {path, unit}
    shipping_fee? = "shipping_total"
    buyer_note? = ["customer_note"] # text fields, joined with newlines
    seller_note? = []
    unit? = "yuan_string"           # default money unit: yuan_string, yuan_number, major,
                                    # fen, minor

    [times]                         # created_at?, paid_at?, updated_at?: path or
    zone? = "Asia/Shanghai"         #   {path, format?, zone?}; the zone applies to values
    format? = "iso8601"             #   without an offset; format: iso8601, unix_seconds,
                                    #   unix_ms or a strptime pattern ("%Y-%m-%d %H:%M:%S")
    [status]
    path = "status"
    map = {processing = "PAID", …}  # raw value → PENDING_PAYMENT, PAID, ON_HOLD, SHIPPED, …
    default? = "…"                  # else an unknown value is a TranslationError

    [after_sale]                    # optional, also as [lines.after_sale] relative to a line
    path? = "…"; map? = {…}         # raw value → NONE, REFUND_ONLY, RETURN_REFUND, …
    present? = "OTHER"              # the type when ``path`` holds anything but no map entry
    state? = "OPEN"                 # OPEN or DONE for an after-sale found this way

    [recipient]                     # name, phone, province, city, district, street,
    pii_protected? = "auto"         # address, zip, country: text fields; true/false/"auto"

    [lines]
    path = "line_items[]"
    id, sku, quantity, unit_price   # required; sku = the code a shop maps to our SKU
    native_sku_id?, title?, paid?   # paid absent: the goods total split by list price
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters import fields as f
from adapters import money, times
from hub.domain.orders import (
    AfterSaleState,
    AfterSaleType,
    OrderLine,
    OrderStatus,
    PlatformOrder,
    Recipient,
    TranslationError,
    summarize_after_sale,
)

UNITS: Final = {
    "yuan_string": "major",
    "yuan_number": "major",
    "major": "major",
    "fen": "minor",
    "minor": "minor",
}
TIME_FORMATS: Final = ("iso8601", "unix_seconds", "unix_ms")
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_STEP = re.compile(r"([^.\[\]{}]+)(?:\[(\d*)\])?")
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_OFFSET = re.compile(r"([+-])(\d{2}):?(\d{2})")
_ALL: Final = -1
E = TypeVar("E", OrderStatus, AfterSaleType, AfterSaleState)
_RECIPIENT_FIELDS = (
    "name",
    "phone",
    "province",
    "city",
    "district",
    "street",
    "address",
    "zip",
    "country",
)


class MappingError(ValueError):
    """A mapping file that cannot be used; ``where`` names the key, ``reason`` says why."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


# --------------------------------------------------------------------------- paths
#
# A parsed mapping is compiled once (``ChannelMapping.__post_init__``) into closures: every
# path split into its keys, every unit, zone, format and map resolved, so translating an
# order is a fixed sequence of calls. Each reader gets the object it reads and that
# object's path (``where``); a field's own path is only written out for an error.

#: A simple path's reader: (a mapping, its path) → the value, or None when absent.
Getter = Callable[[Any, str], Any]
TextReader = Callable[[Any, str], str]
MoneyReader = Callable[[Any, int, str], int]
TimeReader = Callable[[Any, str], datetime | None]
AfterSaleReader = Callable[[Any, str], tuple[AfterSaleType, AfterSaleState]]


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A compiled dotted path; each step is a key and an optional list selector."""

    text: str
    steps: tuple[tuple[str, int | None], ...]
    #: No list selectors: one walk, one value at most.
    simple: bool = False

    @classmethod
    def parse(cls, text: str, where: str) -> FieldPath:
        """Compile ``a.b[].c[0]``; a malformed path is a :class:`MappingError`."""
        if not text.strip():
            raise MappingError(where, "empty path")
        steps: list[tuple[str, int | None]] = []
        for part in text.strip().split("."):
            match = _STEP.fullmatch(part)
            if match is None:
                raise MappingError(where, f"malformed path {text!r} at {part!r}")
            key, index = match.group(1), match.group(2)
            if index is None:
                steps.append((key, None))
            else:
                steps.append((key, _ALL if index == "" else int(index)))
        return cls(text.strip(), tuple(steps), all(sel is None for _, sel in steps))

    @property
    def many(self) -> bool:
        """Whether the path walks a whole list and so may yield several values."""
        return any(sel == _ALL for _, sel in self.steps)

    def collect(self, root: Any, where: str = "") -> list[Any]:
        """Every non-null value the path reaches; a wrong shape on the way is an error."""
        return [value for value, _ in self.located(root, where)]

    def located(self, root: Any, where: str = "") -> list[tuple[Any, str]]:
        """Like :meth:`collect`, with the path of each value (for error messages)."""
        nodes: list[tuple[Any, str]] = [(root, where)]
        for key, sel in self.steps:
            following: list[tuple[Any, str]] = []
            for node, at in nodes:
                if type(node) is not dict and not isinstance(node, Mapping):
                    raise TranslationError(
                        at or "payload", f"expected an object, got {f.kind(node)}"
                    )
                value = node.get(key)
                at = f.path(at, key)
                if value is None:
                    continue
                if sel is None:
                    following.append((value, at))
                elif not isinstance(value, list):
                    raise TranslationError(at, f"expected a list, got {f.kind(value)}")
                elif sel == _ALL:
                    following.extend(
                        (v, f.path(at, i)) for i, v in enumerate(value) if v is not None
                    )
                elif sel < len(value) and value[sel] is not None:
                    following.append((value[sel], f.path(at, sel)))
            nodes = following
        return nodes

    def getter(self) -> Getter:
        """The reader of a simple path, for a mapping: its value, or None when absent.

        Like :meth:`located`, a step that meets something other than an object is an
        error naming the path walked so far.
        """
        if not self.simple:
            raise ValueError(f"{self.text!r} walks a list: read it with located()")
        keys = tuple(key for key, _ in self.steps)
        first = keys[0]
        if len(keys) == 1:

            def get_one(root: Any, where: str) -> Any:
                return root.get(first)

            return get_one
        if len(keys) == 2:
            second = keys[1]

            def get_two(root: Any, where: str) -> Any:
                node = root.get(first)
                if node is None:
                    return None
                if type(node) is not dict and not isinstance(node, Mapping):
                    raise TranslationError(
                        f.path(where, first), f"expected an object, got {f.kind(node)}"
                    )
                return node.get(second)

            return get_two
        rest = tuple(enumerate(keys))[1:]

        def get(root: Any, where: str) -> Any:
            node = root.get(first)
            for i, key in rest:
                if node is None:
                    return None
                if type(node) is not dict and not isinstance(node, Mapping):
                    at = f.path(where, ".".join(keys[:i]))
                    raise TranslationError(at, f"expected an object, got {f.kind(node)}")
                node = node.get(key)
            return node

        return get


def _as_text(value: Any, at: str) -> str:
    if type(value) is str:
        return value.strip()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise TranslationError(at, f"expected text, got {f.kind(value)}")
    return str(value)


def _no_text(root: Any, where: str) -> str:
    return ""


def _text_of(path: FieldPath, joiner: str) -> TextReader:
    """One path's text: a simple path's value; a list path's values joined by ``joiner``."""
    if not path.simple:

        def texts(root: Any, where: str) -> str:
            found = (_as_text(v, at) for v, at in path.located(root, where))
            return joiner.join(t for t in found if t)

        return texts
    text = path.text
    if len(path.steps) == 1:  # the most common path: one key (one call fewer)
        key = path.steps[0][0]

        def read_key(root: Any, where: str) -> str:
            found = root.get(key)
            if found is None:
                return ""
            if type(found) is str:
                return found.strip()
            return _as_text(found, f.path(where, text))

        return read_key
    if len(path.steps) == 2:  # an object's field (``shipping.city``)
        parent, key = path.steps[0][0], path.steps[1][0]

        def read_field(root: Any, where: str) -> str:
            node = root.get(parent)
            if node is None:
                return ""
            if type(node) is not dict and not isinstance(node, Mapping):
                raise TranslationError(
                    f.path(where, parent), f"expected an object, got {f.kind(node)}"
                )
            found = node.get(key)
            if found is None:
                return ""
            if type(found) is str:
                return found.strip()
            return _as_text(found, f.path(where, text))

        return read_field
    get = path.getter()

    def read(root: Any, where: str) -> str:
        found = get(root, where)
        if found is None:
            return ""
        if type(found) is str:
            return found.strip()
        return _as_text(found, f.path(where, text))

    return read


def _template_of(parts: tuple[str | FieldPath, ...]) -> TextReader:
    """A template's text: literals and values, runs of white space made one space."""
    layout = "".join(
        part.replace("{", "{{").replace("}", "}}") if isinstance(part, str) else "{}"
        for part in parts
    )
    values = tuple(_text_of(p, " ") for p in parts if isinstance(p, FieldPath))
    if len(values) == 1:
        (one,) = values

        def one_value(root: Any, where: str) -> str:
            return " ".join(layout.format(one(root, where)).split())

        return one_value
    if len(values) == 2:
        left, right = values

        def two_values(root: Any, where: str) -> str:
            return " ".join(layout.format(left(root, where), right(root, where)).split())

        return two_values

    def many_values(root: Any, where: str) -> str:
        return " ".join(layout.format(*[value(root, where) for value in values]).split())

    return many_values


@dataclass(frozen=True, slots=True)
class TextField:
    """A text field: alternatives (paths or templates), the first non-empty one wins."""

    options: tuple[FieldPath | tuple[str | FieldPath, ...], ...]

    def reader(self, joiner: str = "\n") -> TextReader:
        """The field's reader: its value in a mapping, ``""`` when every alternative is
        empty; a list path's values are joined by ``joiner``."""
        options = tuple(
            _text_of(option, joiner) if isinstance(option, FieldPath) else _template_of(option)
            for option in self.options
        )
        if not options:
            return _no_text
        if len(options) == 1:
            return options[0]

        def first(root: Any, where: str) -> str:
            for option in options:
                value = option(root, where)
                if value:
                    return value
            return ""

        return first


def _id_of(value: Any, at: str) -> str:
    """An id value (not null) as text; ``""`` for an empty string (the next path is tried)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, Decimal | float):
        raise TranslationError(at, "id arrived as a floating-point number; its digits may be lost")
    raise TranslationError(at, f"expected an id, got {f.kind(value)}")


@dataclass(frozen=True, slots=True)
class IdField:
    """An id: paths of which the first present wins; never read through a float."""

    paths: tuple[FieldPath, ...]

    def reader(self) -> TextReader:
        """The id's reader; an id found nowhere is a translation error (``missing``)."""
        missing = self.paths[0].text
        if len(self.paths) == 1 and self.paths[0].simple:
            get = self.paths[0].getter()

            def read_one(root: Any, where: str) -> str:
                value = get(root, where)
                if type(value) is str:
                    value = value.strip()
                    if value:
                        return value
                elif type(value) is int:
                    return str(value)
                elif value is not None:
                    found = _id_of(value, f.path(where, missing))
                    if found:
                        return found
                raise TranslationError(f.path(where, missing), "missing")

            return read_one
        paths = self.paths

        def read(root: Any, where: str) -> str:
            for p in paths:
                for value, at in p.located(root, where):
                    found = _id_of(value, at)
                    if found:
                        return found
            raise TranslationError(f.path(where, missing), "missing")

        return read


@dataclass(frozen=True, slots=True)
class MoneyField:
    """An amount at a path, in major or minor units; several values (``[]``) are summed."""

    path: FieldPath
    unit: str

    def reader(self, *, required: bool = True) -> MoneyReader:
        """The amount's reader: (mapping, the currency's exponent, path) → minor units.

        Absent (or ``""``) is 0 unless ``required``.
        """
        text = self.path.text
        minor = self.unit != "major"

        def convert(value: Any, places: int, at: str) -> int:
            try:
                if minor:
                    return money.minor_units(value)
                return money.major_in_places(value, places)
            except money.MoneyError as exc:
                raise TranslationError(at, str(exc)) from exc

        if not self.path.simple:
            path = self.path

            def read_all(root: Any, places: int, where: str) -> int:
                found = [(v, at) for v, at in path.located(root, where) if v != ""]
                if not found:
                    if required:
                        raise TranslationError(f.path(where, text), "missing")
                    return 0
                return sum(convert(value, places, at) for value, at in found)

            return read_all
        get = self.path.getter()

        def read(root: Any, places: int, where: str) -> int:
            value = get(root, where)
            if value is None or value == "":
                if required:
                    raise TranslationError(f.path(where, text), "missing")
                return 0
            if not minor:
                try:
                    return money.major_in_places(value, places)
                except money.MoneyError as exc:
                    raise TranslationError(f.path(where, text), str(exc)) from exc
            return convert(value, places, f.path(where, text))

        return read


@dataclass(frozen=True, slots=True)
class TimeField:
    """A time at a path, in a format, in a zone for values that carry no offset."""

    path: FieldPath
    format: str
    zone: tzinfo

    def reader(self) -> TimeReader:
        """The time's reader: UTC, or ``None`` when absent or a placeholder."""
        style, zone = self.format, self.zone

        def convert(value: Any, at: str) -> datetime | None:
            try:
                if style == "unix_seconds":
                    return times.unix_seconds(value)
                if style == "unix_ms":
                    return times.unix_millis(value)
                if not isinstance(value, str):
                    raise TranslationError(at, f"expected a time, got {f.kind(value)}")
                if style == "iso8601":
                    return times.iso8601(value, zone)
                return times.formatted(value, style, zone)
            except times.TimeFormatError as exc:
                raise TranslationError(at, str(exc)) from exc

        if not self.path.simple:
            path = self.path

            def read_first(root: Any, where: str) -> datetime | None:
                for value, at in path.located(root, where):
                    return convert(value, at)
                return None

            return read_first
        get = self.path.getter()
        text = self.path.text
        if style == "iso8601":

            def read_iso(root: Any, where: str) -> datetime | None:
                value = get(root, where)
                if value is None:
                    return None
                if type(value) is str:
                    try:
                        return times.iso8601(value, zone)
                    except times.TimeFormatError as exc:
                        raise TranslationError(f.path(where, text), str(exc)) from exc
                return convert(value, f.path(where, text))

            return read_iso

        def read(root: Any, where: str) -> datetime | None:
            value = get(root, where)
            return None if value is None else convert(value, f.path(where, text))

        return read


def _no_after_sale(root: Any, where: str) -> tuple[AfterSaleType, AfterSaleState]:
    return AfterSaleType.NONE, AfterSaleState.NONE


@dataclass(frozen=True, slots=True)
class AfterSaleRule:
    """Where an after-sale type is and what its raw values mean."""

    path: FieldPath | None
    values: Mapping[str, AfterSaleType]
    present: AfterSaleType | None
    state: AfterSaleState

    def reader(self) -> AfterSaleReader:
        """The rule's reader: the after-sale type and state found in a mapping."""
        path = self.path
        if path is None:
            return _no_after_sale
        values, present, state = dict(self.values), self.present, self.state

        def read(root: Any, where: str) -> tuple[AfterSaleType, AfterSaleState]:
            found = [v for v in path.collect(root, where) if v not in ("", [], {})]
            if not found:
                return AfterSaleType.NONE, AfterSaleState.NONE
            kinds = [values[key] for key in map(_raw, found) if key in values]
            if not kinds and present is not None:
                kinds = [present]
            kind = summarize_after_sale(kinds)
            return kind, (AfterSaleState.NONE if kind is AfterSaleType.NONE else state)

        return read


def _raw(value: Any) -> str:
    """A raw platform value as a map key: JSON spelling for booleans, digits for numbers."""
    if type(value) is str:
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value).strip()


@dataclass(frozen=True, slots=True)
class LineMapping:
    """Where a line's fields are, relative to each element of ``path``."""

    path: FieldPath
    line_id: IdField
    sku: TextField
    native_sku_id: TextField | None
    title: TextField | None
    quantity: FieldPath
    unit_price: MoneyField
    paid: MoneyField | None
    after_sale: AfterSaleRule


@dataclass(frozen=True, slots=True)
class ChannelMapping:
    """A channel defined by a mapping file: translates its orders without code of its own."""

    name: str
    description: str
    envelopes: tuple[FieldPath | None, ...]
    order_id: IdField
    currency: FieldPath | None
    default_currency: str
    total_paid: MoneyField
    shipping_fee: MoneyField | None
    buyer_note: TextField
    seller_note: TextField
    status_path: FieldPath
    status_map: Mapping[str, OrderStatus]
    status_default: OrderStatus | None
    created_at: TimeField | None
    paid_at: TimeField | None
    updated_at: TimeField | None
    after_sale: AfterSaleRule
    recipient: Mapping[str, TextField]
    pii_protected: bool | None
    lines: LineMapping
    #: The mapping compiled into one translating function (built once, at creation).
    _translate: Callable[[Any, str], PlatformOrder] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_translate", _compile(self))

    def translate(self, payload: Any, shop_id: str) -> PlatformOrder:
        """The channel's raw order (parsed JSON) → the unified order."""
        return self._translate(payload, shop_id)


def _compile(spec: ChannelMapping) -> Callable[[Any, str], PlatformOrder]:
    """The mapping as one function; fields are read in a fixed order, so of several bad
    fields the same one is always reported."""
    name = spec.name
    find_order = _order_finder(spec.envelopes)
    read_currency = _currency_reader(spec.currency, spec.default_currency)
    read_status = _status_reader(spec.status_path, spec.status_map, spec.status_default, name)
    read_lines = _lines_reader(spec.lines, spec.total_paid, spec.shipping_fee)
    order_after_sale = spec.after_sale.reader()
    # Lines without an after-sale rule are all NONE: the order's own type is the summary.
    lines_have_after_sales = spec.lines.after_sale.path is not None
    order_id = spec.order_id.reader()
    buyer_note = spec.buyer_note.reader()
    seller_note = spec.seller_note.reader()
    recipient = _recipient_reader(spec.recipient, spec.pii_protected)
    shipping_fee = spec.shipping_fee.reader(required=False) if spec.shipping_fee else None
    total_paid = spec.total_paid.reader()
    created_at = spec.created_at.reader() if spec.created_at else None
    paid_at = spec.paid_at.reader() if spec.paid_at else None
    updated_at = spec.updated_at.reader() if spec.updated_at else None

    def translate(payload: Any, shop_id: str) -> PlatformOrder:
        root = f.as_object(payload, "payload")
        order, at = find_order(root)
        currency, places = read_currency(order, at)
        status_text, status = read_status(order, at)
        lines = read_lines(order, at, places)
        kind = order_after_sale(order, at)[0]
        if lines_have_after_sales:
            kind = summarize_after_sale([kind, *(ln.after_sale_type for ln in lines)])
        return PlatformOrder(
            platform=name,
            shop_id=shop_id,
            platform_order_id=order_id(order, at),
            platform_status=status_text,
            status=status,
            after_sale_type=kind,
            buyer_note=buyer_note(order, at),
            seller_note=seller_note(order, at),
            recipient=recipient(order, at),
            lines=lines,
            shipping_fee_fen=shipping_fee(order, places, at) if shipping_fee else 0,
            total_paid_fen=total_paid(order, places, at),
            currency=currency,
            created_at=created_at(order, at) if created_at else None,
            paid_at=paid_at(order, at) if paid_at else None,
            updated_at=updated_at(order, at) if updated_at else None,
        )

    return translate


def _order_finder(
    envelopes: tuple[FieldPath | None, ...],
) -> Callable[[f.Obj], tuple[f.Obj, str]]:
    """Where the order is: the first envelope holding exactly one object, else the root."""
    steps: list[tuple[Getter | None, FieldPath | None]] = []
    for envelope in envelopes:
        if envelope is None:
            break  # the payload itself: later envelopes are never tried
        steps.append((envelope.getter() if envelope.simple else None, envelope))

    def find(root: f.Obj) -> tuple[f.Obj, str]:
        for get, envelope in steps:
            if get is not None:
                found = get(root, "")
                if found is not None and isinstance(found, Mapping):
                    return found, envelope.text  # type: ignore[union-attr]
                continue
            located = envelope.located(root)  # type: ignore[union-attr]
            if len(located) == 1 and isinstance(located[0][0], Mapping):
                return located[0][0], located[0][1]
        return root, ""

    return find


def _currency_reader(
    path: FieldPath | None, default: str
) -> Callable[[f.Obj, str], tuple[str, int]]:
    """The order's currency (upper case) and its exponent; a missing or unknown one is an
    error."""
    text = path.text if path is not None else "currency"
    get = path.getter() if path is not None and path.simple else None

    def read(order: f.Obj, at: str) -> tuple[str, int]:
        currency = ""
        if get is not None:
            value = get(order, at)
            if value is not None:
                if type(value) is str:
                    currency = value.strip().upper()
                else:
                    currency = _as_text(value, f.path(at, text)).upper()
        elif path is not None:
            found = path.located(order, at)
            currency = _as_text(*found[0]).upper() if found else ""
        currency = currency or default
        if not currency:
            raise TranslationError(f.path(at, text), "missing")
        try:
            return currency, money.exponent(currency)
        except money.MoneyError as exc:
            raise TranslationError(f.path(at, "currency"), str(exc)) from exc

    return read


def _status_reader(
    path: FieldPath,
    table: Mapping[str, OrderStatus],
    default: OrderStatus | None,
    channel: str,
) -> Callable[[f.Obj, str], tuple[str, OrderStatus]]:
    """The raw status (as written, for ``platform_status``) and what the map makes of it."""
    statuses = dict(table)
    text = path.text
    get = path.getter() if path.simple else None

    def read(order: f.Obj, at: str) -> tuple[str, OrderStatus]:
        if get is not None:
            value = get(order, at)
            if value is None:
                raise TranslationError(f.path(at, text), "missing")
            raw = value.strip() if type(value) is str else _raw(value)
            status = statuses.get(raw, default)
            if status is None:
                raise TranslationError(f.path(at, text), f"unknown {channel} status {raw!r}")
            return raw, status
        found = path.located(order, at)
        if not found:
            raise TranslationError(f.path(at, text), "missing")
        raw = _raw(found[0][0])
        status = statuses.get(raw, default)
        if status is None:
            raise TranslationError(found[0][1], f"unknown {channel} status {raw!r}")
        return raw, status

    return read


def _quantity(value: Any, at: str) -> int:
    number = f.whole(value)
    if number is None:
        raise TranslationError(at, f"expected a whole number, got {f.kind(value)} {value!r}")
    if number <= 0:
        raise TranslationError(at, f"quantity must be positive, got {number}")
    return number


def _lines_reader(
    spec: LineMapping, total_paid: MoneyField, shipping_fee: MoneyField | None
) -> Callable[[f.Obj, str, int], tuple[OrderLine, ...]]:
    """The order's lines; without a per-line paid amount, the goods total split by list
    price."""
    lines_path = spec.path
    read_line = _line_reader(spec)
    split = spec.paid is None
    total = total_paid.reader()
    shipping = shipping_fee.reader(required=False) if shipping_fee else None

    def read(order: f.Obj, at: str, places: int) -> tuple[OrderLine, ...]:
        found = lines_path.located(order, at)
        if not found:
            raise TranslationError(f.path(at, lines_path.text), "an order without lines")
        drafts = [read_line(f.as_object(item, where), where, places) for item, where in found]
        if not split:
            return tuple(_order_line(draft, draft[5]) for draft in drafts)
        # No per-line paid amount: split the goods part of the total by list price.
        goods = total(order, places, at) - (shipping(order, places, at) if shipping else 0)
        shares = money.allocate(max(goods, 0), [d[3] * d[4] for d in drafts])
        return tuple(_order_line(draft, share) for draft, share in zip(drafts, shares, strict=True))

    return read


#: A line as read: id, SKU code, title, quantity, unit price, paid (0 when the order's
#: total is to be split), after-sale type, native SKU id, after-sale state.
_Draft = tuple[str, str, str, int, int, int, AfterSaleType, str, AfterSaleState]


def _order_line(draft: _Draft, paid: int) -> OrderLine:
    line_id, code, title, quantity, unit_price, _, kind, native, state = draft
    return OrderLine(
        platform_line_id=line_id,
        platform_sku_id=code,
        title=title,
        quantity=quantity,
        unit_price_fen=unit_price,
        paid_fen=paid,
        after_sale_type=kind,
        after_sale_state=state,
        native_sku_id=native,
    )


def _line_reader(spec: LineMapping) -> Callable[[f.Obj, str, int], _Draft]:
    """One line's fields, read in a fixed order (the same field is reported first)."""
    quantity_text = spec.quantity.text
    quantity_get = spec.quantity.getter() if spec.quantity.simple else None
    quantity_path = spec.quantity
    native_sku = spec.native_sku_id.reader() if spec.native_sku_id else _no_text
    sku = spec.sku.reader()
    after_sale = spec.after_sale.reader()
    line_id = spec.line_id.reader()
    title = spec.title.reader(" ") if spec.title else _no_text
    unit_price = spec.unit_price.reader()
    paid = spec.paid.reader() if spec.paid else None

    def read(item: f.Obj, at: str, places: int) -> _Draft:
        if quantity_get is not None:
            count = quantity_get(item, at)
            if count is None:
                raise TranslationError(f.path(at, quantity_text), "missing")
            count_at = ""
        else:
            counts = quantity_path.located(item, at)
            if not counts:
                raise TranslationError(f.path(at, quantity_text), "missing")
            count, count_at = counts[0]
        native = native_sku(item, at)
        code = sku(item, at) or native
        if not code:
            raise TranslationError(at, "no SKU code in any of the mapped fields")
        kind, state = after_sale(item, at)
        platform_line_id = line_id(item, at)
        name = title(item, at)
        if type(count) is not int or count <= 0:
            count = _quantity(count, count_at or f.path(at, quantity_text))
        return (
            platform_line_id,
            code,
            name,
            count,
            unit_price(item, places, at),
            paid(item, places, at) if paid else 0,
            kind,
            native,
            state,
        )

    return read


def _recipient_reader(
    fields: Mapping[str, TextField], pii_protected: bool | None
) -> Callable[[f.Obj, str], Recipient]:
    readers = tuple((name, spec.reader(" ")) for name, spec in fields.items())
    checked = tuple(name for name in ("name", "phone", "address") if name in fields)

    def read(order: f.Obj, at: str) -> Recipient:
        values = {name: reader(order, at) for name, reader in readers}
        protected = pii_protected
        if protected is None:
            protected = any(f.looks_protected(values[k]) for k in checked)
        return Recipient(**values, pii_protected=protected)

    return read


# --------------------------------------------------------------------------- loading


def load_mapping(path: str | Path) -> ChannelMapping:
    """Read and validate a mapping file (``.toml`` or ``.json``)."""
    file = Path(path)
    if file.suffix not in (".toml", ".json"):
        raise MappingError("", f"{file}: a mapping file ends in .toml or .json")
    try:
        raw = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise MappingError("", f"{file}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise MappingError("", f"{file}: not UTF-8 ({exc.reason})") from exc
    data: Any
    try:
        data = tomllib.loads(raw) if file.suffix == ".toml" else json.loads(raw)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MappingError("", f"{file}: not valid {file.suffix[1:].upper()}: {exc}") from exc
    try:
        return parse_mapping(data)
    except MappingError as exc:
        raise MappingError(exc.where, f"{exc.reason} (in {file.name})") from exc


def parse_mapping(data: Any) -> ChannelMapping:
    """Validate a mapping already read into a dict, and compile it."""
    top = _Section(data, "")
    name = top.text("name", required=True)
    if not _NAME.fullmatch(name):
        raise MappingError("name", f"{name!r} is not a platform name (a-z, 0-9, '_', '-')")
    description = top.text("description")
    envelopes = tuple(
        FieldPath.parse(e, f"envelopes[{i}]") if e else None
        for i, e in enumerate(top.strings("envelopes"))
    ) or (None,)

    order = top.section("order", required=True)
    unit = _unit(order.text("unit") or "yuan_string", "order.unit")
    order_id = _id_field(order.take("id", required=True), "order.id")
    currency_path = order.text("currency")
    default_currency = order.text("default_currency").upper()
    if not currency_path and not default_currency:
        raise MappingError("order.currency", "say where the currency is, or set default_currency")
    if default_currency:
        try:
            money.exponent(default_currency)
        except money.MoneyError as exc:
            raise MappingError("order.default_currency", str(exc)) from exc
    total_paid = _money_field(order.take("total_paid", required=True), "order.total_paid", unit)
    shipping = order.take("shipping_fee")
    shipping_fee = _money_field(shipping, "order.shipping_fee", unit) if shipping else None
    buyer_note = _text_field(order.take("buyer_note"), "order.buyer_note")
    seller_note = _text_field(order.take("seller_note"), "order.seller_note")
    order.done()

    clock = top.section("times")
    zone = _zone(clock.text("zone") or "Asia/Shanghai", "times.zone")
    time_format = _time_format(clock.text("format") or "iso8601", "times.format")
    moments = {
        key: _time_field(clock.take(key), f"times.{key}", time_format, zone)
        for key in ("created_at", "paid_at", "updated_at")
    }
    clock.done()

    status = top.section("status", required=True)
    status_path = FieldPath.parse(status.text("path", required=True), "status.path")
    status_map = {
        str(raw): _enum(OrderStatus, target, f"status.map.{raw}")
        for raw, target in status.table("map", required=True).items()
    }
    default = status.text("default")
    status_default = _enum(OrderStatus, default, "status.default") if default else None
    status.done()

    after_sale = _after_sale(top.section("after_sale"), "after_sale")
    recipient = _recipient(top.section("recipient"))
    lines = _lines(top.section("lines", required=True), unit)
    top.done()
    return ChannelMapping(
        name=name,
        description=description,
        envelopes=envelopes,
        order_id=order_id,
        currency=FieldPath.parse(currency_path, "order.currency") if currency_path else None,
        default_currency=default_currency,
        total_paid=total_paid,
        shipping_fee=shipping_fee,
        buyer_note=buyer_note,
        seller_note=seller_note,
        status_path=status_path,
        status_map=status_map,
        status_default=status_default,
        created_at=moments["created_at"],
        paid_at=moments["paid_at"],
        updated_at=moments["updated_at"],
        after_sale=after_sale,
        recipient=recipient[0],
        pii_protected=recipient[1],
        lines=lines,
    )


class _Section:
    """One table of the mapping file; remembers which keys were read to catch unknown ones."""

    def __init__(self, data: Any, where: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise MappingError(where or "mapping", f"expected a table, got {f.kind(data)}")
        self.data: Mapping[str, Any] = data
        self.where = where
        self.used: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def take(self, key: str, *, required: bool = False) -> Any:
        self.used.add(key)
        value = self.data.get(key)
        if required and value in (None, "", [], {}):
            raise MappingError(self.key(key), "required")
        return value

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.take(key, required=required)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise MappingError(self.key(key), f"expected a string, got {f.kind(value)}")
        return value.strip()

    def strings(self, key: str) -> list[str]:
        value = self.take(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MappingError(self.key(key), "expected a list of strings")
        return value

    def table(self, key: str, *, required: bool = False) -> Mapping[str, Any]:
        value = self.take(key, required=required)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise MappingError(self.key(key), f"expected a table, got {f.kind(value)}")
        return value

    def section(self, key: str, *, required: bool = False) -> _Section:
        return _Section(self.table(key, required=required), self.key(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise MappingError(self.key(unknown[0]), f"unknown key (known here: {known})")


def _enum(kind: type[E], value: Any, where: str) -> E:
    if isinstance(value, str) and value.strip().upper() in kind.__members__:
        return kind[value.strip().upper()]
    allowed = ", ".join(kind.__members__)
    raise MappingError(where, f"{value!r} is not one of {allowed}")


def _unit(value: Any, where: str) -> str:
    if isinstance(value, str) and value in UNITS:
        return UNITS[value]
    raise MappingError(where, f"{value!r} is not a money unit ({', '.join(UNITS)})")


def _paths(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise MappingError(where, "expected a path or a list of paths")


def _text_field(value: Any, where: str) -> TextField:
    options: list[FieldPath | tuple[str | FieldPath, ...]] = []
    for i, option in enumerate(_paths(value, where)):
        at = where if isinstance(value, str) else f"{where}[{i}]"
        if "{" in option or "}" in option:
            options.append(_template(option, at))
        else:
            options.append(FieldPath.parse(option, at))
    return TextField(tuple(options))


def _template(text: str, where: str) -> tuple[str | FieldPath, ...]:
    parts: list[str | FieldPath] = []
    last = 0
    for match in _TEMPLATE.finditer(text):
        parts.append(text[last : match.start()])
        parts.append(FieldPath.parse(match.group(1), where))
        last = match.end()
    parts.append(text[last:])
    if any(isinstance(p, str) and ("{" in p or "}" in p) for p in parts):
        raise MappingError(where, f"unbalanced braces in template {text!r}")
    return tuple(p for p in parts if p != "")


def _id_field(value: Any, where: str) -> IdField:
    paths = _paths(value, where)
    if not paths:
        raise MappingError(where, "required")
    return IdField(tuple(FieldPath.parse(p, where) for p in paths))


def _money_field(value: Any, where: str, unit: str) -> MoneyField:
    if isinstance(value, str):
        return MoneyField(FieldPath.parse(value, where), unit)
    spec = _Section(value, where)
    field = MoneyField(
        FieldPath.parse(spec.text("path", required=True), f"{where}.path"),
        _unit(spec.text("unit"), f"{where}.unit") if "unit" in spec.data else unit,
    )
    spec.done()
    return field


def _zone(text: str, where: str) -> tzinfo:
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    offset = _OFFSET.fullmatch(text)
    if offset:
        sign = -1 if offset.group(1) == "-" else 1
        delta = timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
        if delta >= timedelta(hours=24):
            raise MappingError(where, f"offset out of range: {text!r}")
        return timezone(sign * delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MappingError(where, f"unknown time zone {text!r}") from exc


def _time_format(text: str, where: str) -> str:
    if text in TIME_FORMATS or "%" in text:
        return text
    raise MappingError(where, f"{text!r} is not {', '.join(TIME_FORMATS)} or a strptime pattern")


def _time_field(value: Any, where: str, default_format: str, zone: tzinfo) -> TimeField | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return TimeField(FieldPath.parse(value, where), default_format, zone)
    spec = _Section(value, where)
    field = TimeField(
        FieldPath.parse(spec.text("path", required=True), f"{where}.path"),
        _time_format(spec.text("format"), f"{where}.format")
        if "format" in spec.data
        else default_format,
        _zone(spec.text("zone"), f"{where}.zone") if "zone" in spec.data else zone,
    )
    spec.done()
    return field


def _after_sale(spec: _Section, where: str) -> AfterSaleRule:
    path = spec.text("path")
    values = {
        str(raw): _enum(AfterSaleType, target, f"{where}.map.{raw}")
        for raw, target in spec.table("map").items()
    }
    present = spec.text("present")
    state = spec.text("state") or "OPEN"
    spec.done()
    if (values or present) and not path:
        raise MappingError(f"{where}.path", "required when map or present is given")
    chosen_state = _enum(AfterSaleState, state, f"{where}.state")
    if chosen_state is AfterSaleState.NONE:
        raise MappingError(f"{where}.state", "an after-sale found by the mapping is OPEN or DONE")
    return AfterSaleRule(
        path=FieldPath.parse(path, f"{where}.path") if path else None,
        values=values,
        present=_enum(AfterSaleType, present, f"{where}.present") if present else None,
        state=chosen_state,
    )


def _recipient(spec: _Section) -> tuple[dict[str, TextField], bool | None]:
    fields = {
        name: _text_field(spec.take(name), f"recipient.{name}")
        for name in _RECIPIENT_FIELDS
        if spec.data.get(name) is not None
    }
    protected = spec.take("pii_protected")
    spec.done()
    if protected is None or protected == "auto":
        return fields, None
    if isinstance(protected, bool):
        return fields, protected
    raise MappingError("recipient.pii_protected", 'expected true, false or "auto"')


def _lines(spec: _Section, unit: str) -> LineMapping:
    where = "lines"
    path = FieldPath.parse(spec.text("path", required=True), f"{where}.path")
    native = spec.take("native_sku_id")
    title = spec.take("title")
    paid = spec.take("paid")
    mapping = LineMapping(
        path=path,
        line_id=_id_field(spec.take("id", required=True), f"{where}.id"),
        sku=_text_field(spec.take("sku", required=True), f"{where}.sku"),
        native_sku_id=_text_field(native, f"{where}.native_sku_id") if native else None,
        title=_text_field(title, f"{where}.title") if title else None,
        quantity=FieldPath.parse(spec.text("quantity", required=True), f"{where}.quantity"),
        unit_price=_money_field(
            spec.take("unit_price", required=True), f"{where}.unit_price", unit
        ),
        paid=_money_field(paid, f"{where}.paid", unit) if paid else None,
        after_sale=_after_sale(spec.section("after_sale"), f"{where}.after_sale"),
    )
    spec.done()
    return mapping
