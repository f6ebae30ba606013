"""What every platform's pull client shares: requests as data, pages, errors, time formats.

Nothing here does I/O. A client builds an :class:`HttpRequest` (the caller sends it), reads
the body that came back into a :class:`ListPage` or an order, and turns a platform error
into an :class:`ApiError` whose :class:`ErrorKind` tells the caller what to do next.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from adapters.times import BEIJING

#: A raw order as the platform sent it, passed on to intake as JSON.
RawOrder = dict[str, Any]


class ErrorKind(StrEnum):
    """What a failed call means for the caller."""

    #: Too many calls: wait (back off) and try again.
    RATE_LIMITED = "RATE_LIMITED"
    #: The shop's credentials are wrong or expired: retrying cannot help; a person must act.
    AUTH = "AUTH"
    #: The platform or the network failed this time: back off and try again.
    TRANSIENT = "TRANSIENT"
    #: The platform refused the request itself (a bad parameter): retrying cannot help.
    REJECTED = "REJECTED"

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later."""
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.TRANSIENT)


class ApiError(Exception):
    """A call that did not return what was asked for, classified."""

    def __init__(self, kind: ErrorKind, code: str, message: str) -> None:
        super().__init__(f"{kind.value} {code}: {message}".strip())
        self.kind = kind
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Credentials:
    """A shop's keys for one platform; ``api_url`` empty means the public gateway."""

    app_key: str
    app_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    api_url: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """Modified-time range ``[start, end]`` of one pull, in aware UTC, whole seconds."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a window needs zone-aware times")
        if self.end < self.start:
            raise ValueError("a window cannot end before it starts")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP call to make: ``params`` go in the query, ``form`` or ``body`` in the body."""

    method: str
    url: str
    params: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page of an order list: the orders (or only their ids), and what is left."""

    orders: tuple[RawOrder, ...]
    #: Every order's id on this page, in order (also when the full orders are here).
    order_ids: tuple[str, ...]
    #: How many orders the whole window holds, when the platform says.
    total: int | None
    has_next: bool


class OpenApi(ABC):
    """One platform's incremental order pull: requests, pages, details, errors."""

    #: The platform name, as in the shops file and the adapters.
    platform: str
    #: The public gateway used when a shop sets no ``api_url``.
    gateway: str
    #: The longest modified-time window one list call may ask for.
    max_window: timedelta
    #: How far behind "now" a window must end so late-indexed changes are not missed.
    min_lag: timedelta
    #: Orders per list page (the platform's maximum or its recommended size).
    page_size: int
    #: The number of the first page (0 or 1).
    first_page: int
    #: True when the list holds partial orders (or ids): each order is fetched by id.
    needs_detail: bool

    @abstractmethod
    def request(
        self, creds: Credentials, method: str, params: Mapping[str, Any], now: datetime
    ) -> HttpRequest:
        """A signed call of any API ``method`` with its business ``params``, made at ``now``."""

    @abstractmethod
    def list_request(
        self, creds: Credentials, window: Window, page: int, now: datetime
    ) -> HttpRequest:
        """The signed call for one page of orders modified within ``window``."""

    @abstractmethod
    def parse_list(self, body: bytes | str) -> ListPage:
        """One page of the list response; :class:`ApiError` when the platform refused."""

    @abstractmethod
    def detail_request(self, creds: Credentials, order_id: str, now: datetime) -> HttpRequest:
        """The signed call for one full order."""

    @abstractmethod
    def parse_detail(self, body: bytes | str) -> RawOrder:
        """The full order in a detail response; :class:`ApiError` when refused."""

    @abstractmethod
    def order_id(self, order: Mapping[str, Any]) -> str:
        """The platform order id of a raw order from this platform's list or detail."""


# -- shared helpers -----------------------------------------------------------------------


def load_json(body: bytes | str) -> dict[str, Any]:
    """A JSON object from a response body; a body that is not one is a transient failure."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", f"not JSON: {err}") from err
    if not isinstance(value, dict):
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", "the response is not a JSON object")
    return value


def compact_json(value: Any) -> str:
    """JSON with sorted keys, no spaces and Chinese kept as is: the form signatures cover."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def beijing_text(at: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in Beijing time, as TOP and JOS parameters are written."""
    if at.tzinfo is None:
        raise ValueError("naive datetimes are not sent; use an aware time")
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def unix_seconds(at: datetime) -> int:
    """Whole Unix seconds, as Douyin and PDD parameters are written."""
    if at.tzinfo is None:
        raise ValueError("naive datetimes are not sent; use an aware time")
    return math.floor(at.astimezone(UTC).timestamp())


def md5_hex(text: str) -> str:
    """Lower-case hex MD5 of the UTF-8 text."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def hmac_hex(secret: str, text: str, digest: str) -> str:
    """Lower-case hex HMAC (``digest`` = ``"md5"`` or ``"sha256"``) keyed by ``secret``."""
    return hmac.new(secret.encode("utf-8"), text.encode("utf-8"), digest).hexdigest()


def joined_pairs(params: Mapping[str, str]) -> str:
    """``k1v1k2v2…`` over the non-empty parameters, keys in byte order, ``sign`` left out."""
    return "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def as_int(value: Any) -> int | None:
    """An integer count from a number or a numeric string; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", f"not a count: {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", f"not a count: {value!r}") from err


def as_object(value: Any, what: str) -> dict[str, Any]:
    """A JSON object expected in a response; a malformed response is transient."""
    if not isinstance(value, dict):
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", f"{what} is missing or not an object")
    return value


def as_objects(value: Any, what: str) -> list[dict[str, Any]]:
    """A list of JSON objects (absent or null means none)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ApiError(ErrorKind.TRANSIENT, "bad_response", f"{what} is not a list of objects")
    return value


def words_say(text: str, words: tuple[str, ...]) -> bool:
    """Whether any of ``words`` appears in ``text`` (case-insensitive)."""
    lowered = text.lower()
    return any(w in lowered for w in words)


#: Words in error texts that mean "too many calls" on every platform.
RATE_WORDS = ("limit", "too many", "frequen", "限流", "频繁", "频率", "超限", "流控")
