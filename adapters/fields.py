"""Typed reads out of a parsed platform payload; every failure names the field.

Each reader takes the object, the key and ``where`` (the path of the object, e.g.
``orders.order[1]``) and raises :class:`TranslationError` with the full path
(``orders.order[1].price``). The path is only built when something is wrong, so the
happy path stays cheap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, NoReturn

from adapters import money, times
from hub.domain.orders import TranslationError

Obj = Mapping[str, Any]

# Masked values carry '*' (张*, 138****0000); ciphertext is Douyin's ##…## / $$…$$, PDD's
# ~…~, or a long unbroken base64 run (JD's "AAS/…=").
_CIPHERTEXT = re.compile(r"##.+##|\$\$.+\$\$|~.+~|[A-Za-z0-9+/=_-]{24,}")
_WHOLE = re.compile(r"[+-]?[0-9]{1,18}")
_WHOLE_LIMIT = Decimal(10**18)


def path(where: str, key: str | int) -> str:
    """The path of ``key`` inside the object at ``where``."""
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def fail(where: str, key: str | int, reason: str) -> NoReturn:
    """Raise the translation error for one field."""
    raise TranslationError(path(where, key), reason)


def kind(value: object) -> str:
    """A JSON-ish name for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, Decimal | float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def as_object(value: object, where: str) -> Obj:
    """The value as an object (a JSON object), or a translation error."""
    if isinstance(value, Mapping):
        return value
    raise TranslationError(where or "payload", f"expected an object, got {kind(value)}")


def child(m: Obj, key: str, where: str = "") -> Obj | None:
    """An optional nested object; ``None`` when absent or null."""
    value = m.get(key)
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value
    fail(where, key, f"expected an object, got {kind(value)}")


def objects(m: Obj, key: str, where: str = "", *, required: bool = False) -> list[Obj]:
    """A list of objects; empty when absent unless ``required``."""
    value = m.get(key)
    if value is None:
        if required:
            fail(where, key, "missing")
        return []
    if not isinstance(value, list):
        fail(where, key, f"expected a list, got {kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            fail(path(where, key), i, f"expected an object, got {kind(item)}")
    return value


def text(m: Obj, key: str, where: str = "", *, required: bool = False) -> str:
    """A text value, trimmed; numbers are written out, absent or null is ``""``."""
    value = m.get(key)
    if type(value) is str or isinstance(value, str):
        result = value.strip()
    elif value is None:
        result = ""
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        result = str(value)
    else:
        fail(where, key, f"expected text, got {kind(value)}")
    if required and not result:
        fail(where, key, "missing")
    return result


def first_text(m: Obj, keys: tuple[str, ...], where: str = "") -> str:
    """The first non-empty text among ``keys``."""
    for key in keys:
        value = text(m, key, where)
        if value:
            return value
    return ""


def ident(m: Obj, key: str, where: str = "", *, required: bool = True) -> str:
    """An id: a string or an integer, never a float (a float may have lost digits)."""
    value = m.get(key)
    if isinstance(value, str):
        result = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool):
        result = str(value)
    elif value is None:
        result = ""
    elif isinstance(value, Decimal | float):
        fail(where, key, "id arrived as a floating-point number; its digits may be lost")
    else:
        fail(where, key, f"expected an id, got {kind(value)}")
    if required and not result:
        fail(where, key, "missing")
    return result


def integer(m: Obj, key: str, where: str = "", *, required: bool = True) -> int | None:
    """A whole number: an integer or a digit string (JD writes quantities as ``"1"``)."""
    value = m.get(key)
    number = whole(value)
    if number is not None:
        return number
    if value is None or value == "":
        if required:
            fail(where, key, "missing")
        return None
    fail(where, key, f"expected a whole number, got {kind(value)} {value!r}")


def whole(value: object) -> int | None:
    """The value as a whole number (an integer, a digit string, an integral decimal), or None."""
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and abs(value) < _WHOLE_LIMIT
        and value == value.to_integral_value()
    ):
        return int(value)
    return None


def quantity(m: Obj, key: str, where: str = "") -> int:
    """A line quantity: a positive whole number."""
    value = integer(m, key, where)
    assert value is not None
    if value <= 0:
        fail(where, key, f"quantity must be positive, got {value}")
    return value


def major(m: Obj, key: str, where: str, currency: str, *, required: bool = True) -> int:
    """A major-unit amount (yuan string or number) → minor units; absent is 0 unless required."""
    value = m.get(key)
    if value is None or (type(value) is str and not value):
        if required:
            fail(where, key, "missing")
        return 0
    try:
        return money.major_to_minor(value, currency)
    except money.MoneyError as exc:
        fail(where, key, str(exc))


def minor(m: Obj, key: str, where: str = "", *, required: bool = True) -> int:
    """An amount already in minor units (fen); absent is 0 unless required."""
    value = m.get(key)
    if value is None or value == "":
        if required:
            fail(where, key, "missing")
        return 0
    try:
        return money.minor_units(value)
    except money.MoneyError as exc:
        fail(where, key, str(exc))


def beijing_time(m: Obj, key: str, where: str = "") -> datetime | None:
    """A zoneless ``yyyy-MM-dd HH:mm:ss`` time in Beijing time → UTC."""
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        fail(where, key, f"expected a date and time, got {kind(value)}")
    try:
        return times.local_time(value)
    except times.TimeFormatError as exc:
        fail(where, key, str(exc))


def unix_time(m: Obj, key: str, where: str = "") -> datetime | None:
    """Unix seconds → UTC."""
    value = m.get(key)
    if value is None:
        return None
    try:
        return times.unix_seconds(value)
    except times.TimeFormatError as exc:
        fail(where, key, str(exc))


def iso_time(
    m: Obj, key: str, where: str = "", default_zone: tzinfo | None = None
) -> datetime | None:
    """An ISO 8601 time → UTC."""
    value = m.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        fail(where, key, f"expected an ISO 8601 time, got {kind(value)}")
    try:
        return times.iso8601(value, default_zone)
    except times.TimeFormatError as exc:
        fail(where, key, str(exc))


def looks_protected(value: str) -> bool:
    """Whether a name, phone or address value is masked or ciphertext rather than plain."""
    return "*" in value or _CIPHERTEXT.search(value) is not None


def single(items: list[Any], where: str, what: str) -> Any:
    """The one element of a list response; a translation error for zero or several."""
    if len(items) != 1:
        raise TranslationError(where, f"expected exactly one {what}, got {len(items)}")
    return items[0]


def unwrap(payload: object, envelopes: tuple[tuple[str, ...], ...]) -> tuple[Obj, str]:
    """The order inside the first envelope path that matches, or the payload itself.

    A path step ``"[]"`` takes the single element of a list. Returns the object and its path.
    """
    root = as_object(payload, "payload")
    for steps in envelopes:
        node: object = root
        where = ""
        for step in steps:
            if step == "[]":
                if not isinstance(node, list):
                    break
                node = single(node, where, "order")
                where = f"{where}[0]"
            elif isinstance(node, Mapping) and step in node:
                node = node[step]
                where = path(where, step)
            else:
                break
        else:
            return as_object(node, where), where
    return root, ""


def platform_error(root: Obj) -> None:
    """Raise when the payload is a TOP/JOS/PDD ``error_response`` instead of an order."""
    error = root.get("error_response")
    if isinstance(error, Mapping):
        message = " ".join(
            str(error[k])
            for k in ("code", "msg", "sub_code", "sub_msg", "error_msg")
            if error.get(k)
        )
        raise TranslationError("error_response", f"the platform answered an error: {message}")


def header_key(name: str) -> str:
    """A column header as compared across exports: no BOM or quotes, lower case, no spaces,
    underscores or hyphens, full-width parentheses made ASCII (``实付金额（元）`` and
    ``实付金额(元)`` are one column)."""
    text = name.replace("\ufeff", "").strip().strip('"').lower()
    text = text.replace("（", "(").replace("）", ")")
    return re.sub(r"[\s_\-]+", "", text)


_SCIENTIFIC = re.compile(r"[0-9](\.[0-9]+)?[eE]\+?[0-9]+")


def spreadsheet_text(text: str) -> str:
    """Undo a spreadsheet's ways of keeping a number as text: ``="123"``, ``'123``."""
    if text.startswith('="') and text.endswith('"'):
        text = text[2:-1]
    return text.lstrip("'").strip()


def rounded_by_spreadsheet(text: str) -> bool:
    """Whether an id reads like a spreadsheet's scientific notation (``6.9123E+18``): its
    digits are lost."""
    return _SCIENTIFIC.fullmatch(text) is not None
