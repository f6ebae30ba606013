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
from collections.abc import Mapping
from dataclasses import dataclass, replace
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

    def value(self, root: Any, where: str = "") -> Any:
        """The one value a simple path (no list selectors) reaches, or None."""
        node = root
        for i, (key, _) in enumerate(self.steps):
            if type(node) is not dict and not isinstance(node, Mapping):
                at = f.path(where, ".".join(k for k, _ in self.steps[:i]))
                raise TranslationError(at or "payload", f"expected an object, got {f.kind(node)}")
            node = node.get(key)
            if node is None:
                return None
        return node

    def located(self, root: Any, where: str = "") -> list[tuple[Any, str]]:
        """Like :meth:`collect`, with the path of each value (for error messages)."""
        if self.simple:
            node = root
            for i, (key, _) in enumerate(self.steps):
                if type(node) is not dict and not isinstance(node, Mapping):
                    at = f.path(where, ".".join(k for k, _ in self.steps[:i]))
                    raise TranslationError(
                        at or "payload", f"expected an object, got {f.kind(node)}"
                    )
                node = node.get(key)
                if node is None:
                    return []
            return [(node, f.path(where, self.text))]
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


def _part_text(part: FieldPath, root: Any, where: str) -> str:
    """The text a template's path puts in: its values, space-separated."""
    if part.simple:
        found = part.value(root, where)
        if found is None:
            return ""
        if type(found) is str:
            return found.strip()
        return _as_text(found, f.path(where, part.text))
    return " ".join(_as_text(v, at) for v, at in part.located(root, where))


def _as_text(value: Any, at: str) -> str:
    if type(value) is str:
        return value.strip()
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        raise TranslationError(at, f"expected text, got {f.kind(value)}")
    return str(value)


@dataclass(frozen=True, slots=True)
class TextField:
    """A text field: alternatives (paths or templates), the first non-empty one wins."""

    options: tuple[FieldPath | tuple[str | FieldPath, ...], ...]

    def read(self, root: Any, where: str = "", joiner: str = "\n") -> str:
        """The field's value in ``root``; ``""`` when every alternative is empty."""
        for option in self.options:
            if isinstance(option, FieldPath) and option.simple:
                found = option.value(root, where)
                if found is None:
                    continue
                if type(found) is str:
                    value = found.strip()
                else:  # the path is only worked out when it is needed for an error
                    value = _as_text(found, f.path(where, option.text))
            elif isinstance(option, FieldPath):
                value = joiner.join(
                    t for t in (_as_text(v, at) for v, at in option.located(root, where)) if t
                )
            else:
                value = " ".join(
                    "".join(
                        part if isinstance(part, str) else _part_text(part, root, where)
                        for part in option
                    ).split()
                )
            if value:
                return value
        return ""


@dataclass(frozen=True, slots=True)
class IdField:
    """An id: paths of which the first present wins; never read through a float."""

    paths: tuple[FieldPath, ...]

    def read(self, root: Any, where: str = "", *, required: bool = True) -> str:
        """The id, or a translation error when it is required and absent."""
        for p in self.paths:
            for value, at in p.located(root, where):
                if isinstance(value, str) and value.strip():
                    return value.strip()
                if isinstance(value, int) and not isinstance(value, bool):
                    return str(value)
                if isinstance(value, Decimal | float):
                    raise TranslationError(
                        at, "id arrived as a floating-point number; its digits may be lost"
                    )
                if not isinstance(value, str):
                    raise TranslationError(at, f"expected an id, got {f.kind(value)}")
        if required:
            raise TranslationError(f.path(where, self.paths[0].text), "missing")
        return ""


@dataclass(frozen=True, slots=True)
class MoneyField:
    """An amount at a path, in major or minor units; several values (``[]``) are summed."""

    path: FieldPath
    unit: str

    def read(self, root: Any, currency: str, where: str = "", *, required: bool = True) -> int:
        """The amount in minor units of ``currency``; absent is 0 unless required."""
        found = [(v, at) for v, at in self.path.located(root, where) if v != ""]
        if not found:
            if required:
                raise TranslationError(f.path(where, self.path.text), "missing")
            return 0
        total = 0
        for value, at in found:
            try:
                if self.unit == "major":
                    total += money.major_to_minor(value, currency)
                else:
                    total += money.minor_units(value)
            except money.MoneyError as exc:
                raise TranslationError(at, str(exc)) from exc
        return total


@dataclass(frozen=True, slots=True)
class TimeField:
    """A time at a path, in a format, in a zone for values that carry no offset."""

    path: FieldPath
    format: str
    zone: tzinfo

    def read(self, root: Any, where: str = "") -> datetime | None:
        """The time in UTC, or ``None`` when absent or a placeholder."""
        for value, at in self.path.located(root, where):
            try:
                if self.format == "unix_seconds":
                    return times.unix_seconds(value)
                if self.format == "unix_ms":
                    return times.unix_millis(value)
                if not isinstance(value, str):
                    raise TranslationError(at, f"expected a time, got {f.kind(value)}")
                if self.format == "iso8601":
                    return times.iso8601(value, self.zone)
                return times.formatted(value, self.format, self.zone)
            except times.TimeFormatError as exc:
                raise TranslationError(at, str(exc)) from exc
        return None


@dataclass(frozen=True, slots=True)
class AfterSaleRule:
    """Where an after-sale type is and what its raw values mean."""

    path: FieldPath | None
    values: Mapping[str, AfterSaleType]
    present: AfterSaleType | None
    state: AfterSaleState

    def read(self, root: Any, where: str = "") -> tuple[AfterSaleType, AfterSaleState]:
        """The after-sale type and state found in ``root``."""
        if self.path is None:
            return AfterSaleType.NONE, AfterSaleState.NONE
        found = [v for v in self.path.collect(root, where) if v not in ("", [], {})]
        kinds = [self.values[key] for key in map(_raw, found) if key in self.values]
        if not kinds and found and self.present is not None:
            kinds = [self.present]
        kind = summarize_after_sale(kinds)
        return kind, (AfterSaleState.NONE if kind is AfterSaleType.NONE else self.state)


def _raw(value: Any) -> str:
    """A raw platform value as a map key: JSON spelling for booleans, digits for numbers."""
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

    def translate(self, payload: Any, shop_id: str) -> PlatformOrder:
        """The channel's raw order (parsed JSON) → the unified order."""
        root = f.as_object(payload, "payload")
        order, at = self._order(root)
        currency = self._currency(order, at)
        raw_status = self.status_path.located(order, at)
        if not raw_status:
            raise TranslationError(f.path(at, self.status_path.text), "missing")
        status_text = _raw(raw_status[0][0])
        status = self.status_map.get(status_text, self.status_default)
        if status is None:
            raise TranslationError(raw_status[0][1], f"unknown {self.name} status {status_text!r}")
        lines = self._lines(order, at, currency)
        kind, _ = self.after_sale.read(order, at)
        return PlatformOrder(
            platform=self.name,
            shop_id=shop_id,
            platform_order_id=self.order_id.read(order, at),
            platform_status=status_text,
            status=status,
            after_sale_type=summarize_after_sale([kind, *(ln.after_sale_type for ln in lines)]),
            buyer_note=self.buyer_note.read(order, at),
            seller_note=self.seller_note.read(order, at),
            recipient=self._recipient(order, at),
            lines=lines,
            shipping_fee_fen=self.shipping_fee.read(order, currency, at, required=False)
            if self.shipping_fee
            else 0,
            total_paid_fen=self.total_paid.read(order, currency, at),
            currency=currency,
            created_at=self.created_at.read(order, at) if self.created_at else None,
            paid_at=self.paid_at.read(order, at) if self.paid_at else None,
            updated_at=self.updated_at.read(order, at) if self.updated_at else None,
        )

    def _order(self, root: f.Obj) -> tuple[f.Obj, str]:
        for envelope in self.envelopes:
            if envelope is None:
                return root, ""
            found = envelope.located(root)
            if len(found) == 1 and isinstance(found[0][0], Mapping):
                return found[0][0], found[0][1]
        return root, ""

    def _currency(self, order: f.Obj, at: str) -> str:
        currency = ""
        if self.currency is not None:
            found = self.currency.located(order, at)
            currency = _as_text(*found[0]).upper() if found else ""
        currency = currency or self.default_currency
        if not currency:
            raise TranslationError(
                f.path(at, self.currency.text if self.currency else "currency"), "missing"
            )
        try:
            money.exponent(currency)
        except money.MoneyError as exc:
            raise TranslationError(f.path(at, "currency"), str(exc)) from exc
        return currency

    def _lines(self, order: f.Obj, at: str, currency: str) -> tuple[OrderLine, ...]:
        spec = self.lines
        found = spec.path.located(order, at)
        if not found:
            raise TranslationError(f.path(at, spec.path.text), "an order without lines")
        lines = [self._line(f.as_object(item, where), where, currency) for item, where in found]
        if spec.paid is not None:
            return tuple(lines)
        # No per-line paid amount: split the goods part of the total by list price.
        total = self.total_paid.read(order, currency, at)
        shipping = (
            self.shipping_fee.read(order, currency, at, required=False) if self.shipping_fee else 0
        )
        shares = money.allocate(
            max(total - shipping, 0), [ln.unit_price_fen * ln.quantity for ln in lines]
        )
        return tuple(replace(ln, paid_fen=share) for ln, share in zip(lines, shares, strict=True))

    def _line(self, item: f.Obj, at: str, currency: str) -> OrderLine:
        spec = self.lines
        quantities = spec.quantity.located(item, at)
        if not quantities:
            raise TranslationError(f.path(at, spec.quantity.text), "missing")
        native = spec.native_sku_id.read(item, at) if spec.native_sku_id else ""
        code = spec.sku.read(item, at) or native
        if not code:
            raise TranslationError(at, "no SKU code in any of the mapped fields")
        kind, state = spec.after_sale.read(item, at)
        return OrderLine(
            platform_line_id=spec.line_id.read(item, at),
            platform_sku_id=code,
            title=spec.title.read(item, at, " ") if spec.title else "",
            quantity=_quantity(*quantities[0]),
            unit_price_fen=spec.unit_price.read(item, currency, at),
            paid_fen=spec.paid.read(item, currency, at) if spec.paid else 0,
            after_sale_type=kind,
            after_sale_state=state,
            native_sku_id=native,
        )

    def _recipient(self, order: f.Obj, at: str) -> Recipient:
        values = {name: spec.read(order, at, " ") for name, spec in self.recipient.items()}
        protected = self.pii_protected
        if protected is None:
            protected = any(
                f.looks_protected(values.get(k, "")) for k in ("name", "phone", "address")
            )
        return Recipient(**values, pii_protected=protected)


def _quantity(value: Any, at: str) -> int:
    number = f.whole(value)
    if number is None:
        raise TranslationError(at, f"expected a whole number, got {f.kind(value)} {value!r}")
    if number <= 0:
        raise TranslationError(at, f"quantity must be positive, got {number}")
    return number


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
