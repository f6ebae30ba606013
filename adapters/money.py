"""Exact money: platform amounts → integer minor units of the currency, never via float.

Platforms send yuan as decimal strings (Taobao, JD, Shopify: ``"29.90"``), yuan as JSON
numbers (PDD: ``29.9``) or fen as integers (Douyin: ``2990``). JSON is parsed with
``parse_float=Decimal`` so a number arrives as the exact digits the platform wrote; a
``float`` that slipped through is read through its shortest repr (``29.9`` → ``"29.9"``),
which is the value the platform wrote. Rounding, where a platform sends more decimals than
the currency has, is ROUND_HALF_UP.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

#: ISO 4217 currencies whose minor unit is not 2 decimals; every other code has 2.
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMALS = "CLF UYW"
_EXPONENTS = {
    code: places
    for codes, places in ((_ZERO_DECIMALS, 0), (_THREE_DECIMALS, 3), (_FOUR_DECIMALS, 4))
    for code in codes.split()
}
_CODE = re.compile(r"[A-Z]{3}")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LIMIT = 2**63  # amounts travel as int64 in the proto
#: 10 ** places (a currency's exponent is 0, 2, 3 or 4).
_SCALE = tuple(10**places for places in range(19))
_ONE = Decimal(1)


class MoneyError(ValueError):
    """An amount or currency that cannot be read exactly."""


@functools.lru_cache(maxsize=256)
def exponent(currency: str) -> int:
    """How many decimals the currency's minor unit has (CNY 2, JPY 0, KWD 3)."""
    if not _CODE.fullmatch(currency):
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return _EXPONENTS.get(currency, 2)


#: Currency names exports write instead of the ISO code.
CURRENCY_NAMES = {"人民币": "CNY", "RMB": "CNY", "元": "CNY"}


def currency_code(text: str) -> str:
    """A currency as exports write it (``CNY``, ``cny``, ``人民币``) → its ISO 4217 code;
    MoneyError when it is none."""
    code = CURRENCY_NAMES.get(text, text.upper())
    exponent(code)
    return code


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        return Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _DECIMAL.fullmatch(text):
            raise MoneyError(f"not an amount: {value!r}")
        number = Decimal(text)
    else:
        raise MoneyError(f"not an amount: {type(value).__name__}")
    if not number.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return number


def _bounded(minor: int, value: object) -> int:
    if -_LIMIT < minor < _LIMIT:
        return minor
    raise MoneyError(f"amount out of range: {value!r}")


def major_to_minor(value: object, currency: str = "CNY") -> int:
    """An amount in major units (yuan, dollars) as a string or number → minor units."""
    return major_in_places(value, exponent(currency))


def major_in_places(value: object, places: int) -> int:
    """:func:`major_to_minor` for a currency whose :func:`exponent` is already known."""
    minor: int
    if type(value) is int:  # whole major units: exact, only the range to check
        minor = value * _SCALE[places]
        if -_LIMIT < minor < _LIMIT:
            return minor
        raise MoneyError(f"amount out of range: {value!r}")
    # JSON numbers arrive as Decimal: their text is the digits the platform wrote.
    if type(value) is str:
        text = value.strip()
    elif type(value) is Decimal:
        text = str(value)
    else:
        text = ""
    if text:
        # The common case without Decimal: "29.90", "199", "-5.5" (at most 15 whole
        # digits); anything else (a sign other than "-", exponents, other digits) goes on.
        whole, _, fraction = text.partition(".")
        negative = whole[:1] == "-"
        if negative:
            whole = whole[1:]
        if (
            0 < len(whole) <= 15
            and whole.isascii()
            and whole.isdigit()
            and (not fraction or (fraction.isascii() and fraction.isdigit()))
        ):
            if len(fraction) == places:  # "29.90" in yuan: the digits are the fen
                minor = int(whole + fraction)
                return -minor if negative else minor
            fraction = fraction.rstrip("0")
            short = places - len(fraction)
            if short >= 0:  # exact in minor units: integer arithmetic suffices
                minor = int(whole) * _SCALE[places]
                if fraction:
                    minor += int(fraction) * _SCALE[short]
                return -minor if negative else minor
    number = _decimal(value)
    try:
        scaled = number.scaleb(places).quantize(_ONE, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise MoneyError(f"amount out of range: {value!r}") from exc
    return _bounded(int(scaled), value)


def minor_units(value: object) -> int:
    """An amount already in minor units (Douyin fen) as an integer or integer string."""
    if isinstance(value, bool):
        raise MoneyError(f"not an amount in minor units: {value!r}")
    if isinstance(value, int):
        return _bounded(value, value)
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()) and len(value) < 40:
        return _bounded(int(value.strip()), value)
    if isinstance(value, Decimal | float):
        number = _decimal(value)
        if abs(number) >= _LIMIT:
            raise MoneyError(f"amount out of range: {value!r}")
        if number == number.to_integral_value():
            return int(number)
    raise MoneyError(f"not a whole amount in minor units: {value!r}")


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over ``weights`` in proportion; the parts sum to ``total`` exactly.

    Largest remainder: each part gets its floor share, and the units left over go to the
    parts with the largest remainders (earlier parts first on a tie). All-zero weights split
    evenly.
    """
    if not weights:
        return []
    if total < 0:
        raise MoneyError(f"cannot allocate a negative total: {total}")
    if len(weights) == 1:
        return [total]
    basis = [max(w, 0) for w in weights]
    whole = sum(basis)
    if whole == 0:
        basis = [1] * len(weights)
        whole = len(weights)
    parts = [total * w // whole for w in basis]
    rest = total - sum(parts)
    if rest:
        order = sorted(range(len(basis)), key=lambda i: (-(total * basis[i] % whole), i))
        for i in order[:rest]:
            parts[i] += 1
    return parts
