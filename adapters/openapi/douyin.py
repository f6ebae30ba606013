"""Douyin shop open platform (抖店): signed calls for the incremental order pull.

``order.searchList`` lists shop orders by update time (``update_time_start`` /
``update_time_end`` in Unix seconds, ``order_by=update_time``; pages from 0, at most 100 a
page) and returns each shop order in full, so polling needs no detail call.
``order.orderDetail`` (``shop_order_id``) reads one order: the webhook receiver needs it,
because Douyin's messages carry ids only.

A call is ``POST {gateway}/{method with / for .}`` with ``app_key``, ``method``,
``access_token``, ``timestamp`` (Unix seconds), ``v=2``, ``sign_method`` and ``sign`` in the
query and the business parameters as the JSON body (``param_json``: keys sorted, no spaces).
The signed text is ``secret + "app_key"+key + "method"+method + "param_json"+json +
"timestamp"+ts + "v"+"2" + secret``; ``hmac-sha256`` keys an HMAC-SHA256 with the secret,
``md5`` takes its MD5; both in lower-case hex.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from adapters.openapi.base import (
    ApiError,
    Credentials,
    ErrorKind,
    HttpRequest,
    ListPage,
    OpenApi,
    RawOrder,
    Window,
    as_int,
    as_object,
    as_objects,
    compact_json,
    hmac_hex,
    load_json,
    md5_hex,
    unix_seconds,
)

GATEWAY = "https://openapi-fxg.jinritemai.com"
VERSION = "2"
SIGN_METHODS = ("hmac-sha256", "md5")
LIST_METHOD = "order.searchList"
DETAIL_METHOD = "order.orderDetail"
SUCCESS = 10000

# The platform's base codes.
_RATE_CODES = frozenset({60000})  # 超过限流限制
_AUTH_CODES = frozenset({30001, 30002})  # 操作权限不足, IP不在白名单内
_REJECTED_CODES = frozenset({30000, 40001, 40002, 40003, 40004, 70000})
_TOKEN_SUB_CODES = ("isv.access-token-expired", "isv.access-token-no-existed")


def sign_text(app_key: str, secret: str, method: str, param_json: str, timestamp: str) -> str:
    """The text 抖店 signs: the secret, the sorted system fields and values, the secret."""
    return (
        f"{secret}app_key{app_key}method{method}param_json{param_json}"
        f"timestamp{timestamp}v{VERSION}{secret}"
    )


def sign(
    app_key: str,
    secret: str,
    method: str,
    param_json: str,
    timestamp: str,
    sign_method: str = "hmac-sha256",
) -> str:
    """The 抖店 signature (lower-case hex) of one call."""
    text = sign_text(app_key, secret, method, param_json, timestamp)
    if sign_method == "hmac-sha256":
        return hmac_hex(secret, text, "sha256")
    if sign_method == "md5":
        return md5_hex(text)
    raise ValueError(f"unknown 抖店 sign_method {sign_method!r}; use one of {SIGN_METHODS}")


def classify(root: Mapping[str, Any]) -> ApiError:
    """A response whose ``code`` is not 10000 as an :class:`ApiError`."""
    raw = root.get("code")
    code = as_int(raw)
    sub_code = str(root.get("sub_code", "") or "")
    text = " ".join(str(root.get(k, "") or "") for k in ("msg", "sub_code", "sub_msg")).strip()
    if code in _RATE_CODES:
        kind = ErrorKind.RATE_LIMITED
    elif code in _AUTH_CODES or sub_code in _TOKEN_SUB_CODES or "access-token" in sub_code:
        kind = ErrorKind.AUTH
    elif "sign" in sub_code.lower():
        kind = ErrorKind.AUTH  # a signature the platform rejects: the secret is wrong
    elif code in _REJECTED_CODES:
        kind = ErrorKind.REJECTED
    else:
        # 20000 服务不可用, 20001 内部服务超时, 5xxxx platform failures, and the unknown.
        kind = ErrorKind.TRANSIENT
    return ApiError(kind, str(raw), text or "error")


class DouyinApi(OpenApi):
    """抖店: ``order.searchList`` (by update time) + ``order.orderDetail``."""

    platform = "douyin"
    gateway = GATEWAY
    max_window = timedelta(hours=1)  # no documented limit found; an hour keeps pages few
    min_lag = timedelta(seconds=60)
    page_size = 100  # documented maximum
    first_page = 0
    needs_detail = False

    def __init__(self, sign_method: str = "hmac-sha256") -> None:
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"unknown 抖店 sign_method {sign_method!r}")
        self.sign_method = sign_method

    def request(
        self, creds: Credentials, method: str, business: Mapping[str, Any], now: datetime
    ) -> HttpRequest:
        """Any 抖店 method, signed: system parameters in the query, the JSON as the body."""
        param_json = compact_json(dict(business))
        timestamp = str(unix_seconds(now))
        query = {
            "app_key": creds.app_key,
            "method": method,
            "access_token": creds.access_token,
            "timestamp": timestamp,
            "v": VERSION,
            "sign_method": self.sign_method,
            "sign": sign(
                creds.app_key, creds.app_secret, method, param_json, timestamp, self.sign_method
            ),
        }
        base = (creds.api_url or self.gateway).rstrip("/")
        return HttpRequest(
            "POST",
            f"{base}/{method.replace('.', '/')}",
            params=query,
            body=param_json.encode("utf-8"),
            headers={"Content-Type": "application/json;charset=UTF-8"},
        )

    def list_request(
        self, creds: Credentials, window: Window, page: int, now: datetime
    ) -> HttpRequest:
        """One page of ``order.searchList`` by update time."""
        return self.request(
            creds,
            LIST_METHOD,
            {
                "update_time_start": unix_seconds(window.start),
                "update_time_end": unix_seconds(window.end),
                "order_by": "update_time",
                "page": page,
                "size": self.page_size,
            },
            now,
        )

    def parse_list(self, body: bytes | str) -> ListPage:
        """The shop orders of one page, with the window's total."""
        data = as_object(_checked(body).get("data"), "data")
        orders = as_objects(data.get("shop_order_list"), "shop_order_list")
        return ListPage(
            orders=tuple(orders),
            order_ids=tuple(self.order_id(o) for o in orders),
            total=as_int(data.get("total")),
            has_next=False,
        )

    def detail_request(self, creds: Credentials, order_id: str, now: datetime) -> HttpRequest:
        """``order.orderDetail`` for one shop order."""
        return self.request(creds, DETAIL_METHOD, {"shop_order_id": order_id}, now)

    def parse_detail(self, body: bytes | str) -> RawOrder:
        """The ``shop_order_detail`` of one order."""
        data = as_object(_checked(body).get("data"), "data")
        return as_object(data.get("shop_order_detail"), "shop_order_detail")

    def order_id(self, order: Mapping[str, Any]) -> str:
        """The shop order's ``order_id``."""
        value = order.get("order_id")
        if value is None or value == "":
            raise ApiError(ErrorKind.TRANSIENT, "bad_response", "a shop order without order_id")
        return str(value)


def _checked(body: bytes | str) -> dict[str, Any]:
    root = load_json(body)
    if as_int(root.get("code")) != SUCCESS:
        raise classify(root)
    return root
