"""Pinduoduo open platform (PDD): signed calls for the incremental order pull.

``pdd.order.number.list.increment.get`` lists orders by last update
(``start_updated_at``/``end_updated_at`` in Unix seconds, at most 30 minutes apart, ending
at least 3 minutes before PDD's clock); PDD asks for the pages to be read from the last one
back so that no order is skipped. Each order is then read in full with
``pdd.order.information.get`` (``order_sn``).

Every call is ``POST https://gw-api.pinduoduo.com/api/router`` with all parameters —
``type`` (the method), ``client_id``, ``access_token``, ``timestamp`` (Unix seconds),
``data_type`` and the business ones — here as a form. The signature is
``MD5(client_secret + k1v1k2v2… + client_secret)`` in upper-case hex over all of them, keys
sorted, ``sign`` left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from adapters.openapi.base import (
    RATE_WORDS,
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
    joined_pairs,
    load_json,
    md5_hex,
    unix_seconds,
    words_say,
)

GATEWAY = "https://gw-api.pinduoduo.com/api/router"
LIST_METHOD = "pdd.order.number.list.increment.get"
DETAIL_METHOD = "pdd.order.information.get"

_AUTH_CODES = frozenset({"10019"})  # access_token已过期
_AUTH_WORDS = ("access_token", "token", "sign", "签名", "client_id", "授权")


def sign(params: Mapping[str, str], client_secret: str) -> str:
    """The PDD signature of ``params`` (upper-case hex MD5, secret on both ends)."""
    return md5_hex(f"{client_secret}{joined_pairs(params)}{client_secret}").upper()


def classify(error: Mapping[str, Any]) -> ApiError:
    """A PDD ``error_response`` (``error_code``, ``error_msg``, ``sub_code``, ``sub_msg``)."""
    code = str(error.get("error_code", "")).strip()
    text = " ".join(
        str(error.get(k, "") or "") for k in ("error_msg", "sub_code", "sub_msg")
    ).strip()
    if words_say(text, RATE_WORDS):
        kind = ErrorKind.RATE_LIMITED
    elif code in _AUTH_CODES or words_say(text, _AUTH_WORDS):
        kind = ErrorKind.AUTH
    elif words_say(text, ("参数", "param", "illegal")):
        kind = ErrorKind.REJECTED
    else:
        kind = ErrorKind.TRANSIENT
    return ApiError(kind, code, text or "error_response")


class PddApi(OpenApi):
    """PDD: ``pdd.order.number.list.increment.get`` + ``pdd.order.information.get``."""

    platform = "pdd"
    gateway = GATEWAY
    max_window = timedelta(minutes=30)  # documented limit
    min_lag = timedelta(minutes=3)  # documented: end at least 3 minutes before PDD's time
    page_size = 100  # documented maximum
    first_page = 1
    needs_detail = True

    def request(
        self, creds: Credentials, method: str, business: Mapping[str, Any], now: datetime
    ) -> HttpRequest:
        """Any PDD method (``type``), signed, all parameters in one form."""
        params = {
            "type": method,
            "client_id": creds.app_key,
            "access_token": creds.access_token,
            "timestamp": str(unix_seconds(now)),
            "data_type": "JSON",
            **{k: str(v) for k, v in business.items()},
        }
        params["sign"] = sign(params, creds.app_secret)
        return HttpRequest("POST", creds.api_url or self.gateway, form=params)

    def list_request(
        self, creds: Credentials, window: Window, page: int, now: datetime
    ) -> HttpRequest:
        """One page of ``pdd.order.number.list.increment.get``."""
        return self.request(
            creds,
            LIST_METHOD,
            {
                "start_updated_at": str(unix_seconds(window.start)),
                "end_updated_at": str(unix_seconds(window.end)),
                "is_lucky_flag": "0",  # all orders, lucky draws or not
                "order_status": "5",  # all shipping states
                "refund_status": "5",  # all after-sale states
                "page": str(page),
                "page_size": str(self.page_size),
            },
            now,
        )

    def parse_list(self, body: bytes | str) -> ListPage:
        """The order numbers of one page, with the window's total."""
        root = _checked(body)
        response = as_object(root.get("order_sn_increment_get_response"), "the response")
        orders = as_objects(response.get("order_sn_list"), "order_sn_list")
        return ListPage(
            orders=tuple(orders),
            order_ids=tuple(self.order_id(o) for o in orders),
            total=as_int(response.get("total_count")),
            has_next=bool(response.get("has_next", False)),
        )

    def detail_request(self, creds: Credentials, order_id: str, now: datetime) -> HttpRequest:
        """``pdd.order.information.get`` for one order."""
        return self.request(creds, DETAIL_METHOD, {"order_sn": order_id}, now)

    def parse_detail(self, body: bytes | str) -> RawOrder:
        """The ``order_info`` of one order."""
        root = _checked(body)
        response = as_object(root.get("order_info_get_response"), "the response")
        return as_object(response.get("order_info"), "order_info")

    def order_id(self, order: Mapping[str, Any]) -> str:
        """``order_sn``."""
        value = order.get("order_sn")
        if value is None or value == "":
            raise ApiError(ErrorKind.TRANSIENT, "bad_response", "an order without order_sn")
        return str(value)


def _checked(body: bytes | str) -> dict[str, Any]:
    root = load_json(body)
    error = root.get("error_response")
    if isinstance(error, dict):
        raise classify(error)
    return root
