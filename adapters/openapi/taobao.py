"""Taobao / Tmall open platform (TOP): signed calls for the incremental trade pull.

The pull lists trades by modification time with ``taobao.trades.sold.increment.get``
(``start_modified``/``end_modified`` in Beijing time, at most one day apart; TOP advises
30 minutes) and reads each one with ``taobao.trade.fullinfo.get``, because the increment
list holds only part of a trade. The list is sorted by ``modified``, newest first, and TOP
asks for the pages to be read from the last one back so that no trade is skipped.

Signing (``sign_method``): ``md5`` is ``MD5(secret + k1v1k2v2… + secret)``; ``hmac`` is
HMAC-MD5 and ``hmac-sha256`` HMAC-SHA256 of ``k1v1k2v2…`` keyed by the secret; all in
upper-case hex. Keys are sorted, empty values and ``sign`` itself are left out, and every
parameter sent (system and business) takes part.
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
    beijing_text,
    hmac_hex,
    joined_pairs,
    load_json,
    md5_hex,
    words_say,
)

GATEWAY = "https://eco.taobao.com/router/rest"
SIGN_METHODS = ("md5", "hmac", "hmac-sha256")
LIST_METHOD = "taobao.trades.sold.increment.get"
DETAIL_METHOD = "taobao.trade.fullinfo.get"

#: Without ``type`` TOP lists only five trade types; these are the documented ones.
TRADE_TYPES = (
    "fixed,auction,guarantee_trade,step,independent_simple_trade,independent_shop_trade,"
    "auto_delivery,ec,cod,game_equipment,shopex_trade,netcn_trade,external_trade,"
    "instant_trade,b2c_cod,hotel_trade,super_market_trade,super_market_cod_trade,"
    "o2o_offlinetrade,nopaid,pre_auth_type,tmall_i18n,eticket"
)
#: What the list needs: the id to fetch the full trade by, and when it changed.
LIST_FIELDS = "tid,tid_str,modified"
#: What intake reads from a full trade (``orders`` returns every sub-order field).
DETAIL_FIELDS = (
    "tid,tid_str,type,status,created,pay_time,modified,consign_time,end_time,"
    "buyer_nick,buyer_message,seller_memo,seller_flag,receiver_name,receiver_mobile,"
    "receiver_phone,receiver_state,receiver_city,receiver_district,receiver_town,"
    "receiver_address,receiver_zip,receiver_country,oaid,total_fee,discount_fee,adjust_fee,"
    "post_fee,payment,received_payment,step_trade_status,step_paid_fee,orders,"
    "promotion_details"
)

# TOP's system error codes (the platform-wide table).
_RATE_CODES = frozenset({"7"})  # App Call Limited
# Invalid signature, missing/invalid session, missing/invalid app key, insufficient
# permissions, invalid access token, insufficient security level.
_AUTH_CODES = frozenset({"11", "12", "13", "24", "25", "26", "27", "28", "29", "42", "44", "53"})
# Missing/invalid method, format, timestamp, version, arguments.
_REJECTED_CODES = frozenset(
    {"21", "22", "23", "30", "31", "32", "33", "34", "40", "41", "43", "47"}
)
_AUTH_SUB_WORDS = ("session", "signature", "access-token", "accesstoken", "permission")


def sign(params: Mapping[str, str], secret: str, method: str = "md5") -> str:
    """The TOP signature of ``params`` (upper-case hex) with ``method``."""
    pairs = joined_pairs(params)
    if method == "md5":
        return md5_hex(f"{secret}{pairs}{secret}").upper()
    if method == "hmac":
        return hmac_hex(secret, pairs, "md5").upper()
    if method == "hmac-sha256":
        return hmac_hex(secret, pairs, "sha256").upper()
    raise ValueError(f"unknown TOP sign_method {method!r}; use one of {SIGN_METHODS}")


def classify(error: Mapping[str, Any]) -> ApiError:
    """A TOP ``error_response`` as an :class:`ApiError`."""
    code = str(error.get("code", "")).strip()
    sub_code = str(error.get("sub_code", "") or "")
    text = " ".join(str(error.get(k, "") or "") for k in ("msg", "sub_code", "sub_msg"))
    message = text.strip() or "error_response"
    if code in _RATE_CODES or words_say(sub_code, ("limit",)):
        kind = ErrorKind.RATE_LIMITED
    elif code in _AUTH_CODES or words_say(sub_code, _AUTH_SUB_WORDS):
        kind = ErrorKind.AUTH
    elif words_say(text, RATE_WORDS):
        kind = ErrorKind.RATE_LIMITED
    elif code in _REJECTED_CODES or sub_code.startswith("isv."):
        # isv.* sub-codes are the caller's fault (a bad parameter, a trade that is gone).
        kind = ErrorKind.REJECTED
    else:
        # Service unavailable (10), platform-side failures (isp.*) and the unknown.
        kind = ErrorKind.TRANSIENT
    return ApiError(kind, code or sub_code, message)


class TaobaoApi(OpenApi):
    """TOP: ``taobao.trades.sold.increment.get`` + ``taobao.trade.fullinfo.get``."""

    platform = "taobao"
    gateway = GATEWAY
    max_window = timedelta(minutes=30)  # documented limit: one day
    min_lag = timedelta(seconds=60)
    page_size = 50  # 1..100; TOP recommends 40-50 to avoid timeouts
    first_page = 1
    needs_detail = True

    def __init__(self, sign_method: str = "md5") -> None:
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"unknown TOP sign_method {sign_method!r}")
        self.sign_method = sign_method

    def request(
        self, creds: Credentials, method: str, business: Mapping[str, Any], now: datetime
    ) -> HttpRequest:
        """Any TOP method, signed: system parameters in the query, the API's in the form."""
        form = {k: str(v) for k, v in business.items()}
        system = {
            "method": method,
            "app_key": creds.app_key,
            "session": creds.access_token,
            "timestamp": beijing_text(now),
            "format": "json",
            "v": "2.0",
            "sign_method": self.sign_method,
        }
        system["sign"] = sign({**system, **form}, creds.app_secret, self.sign_method)
        # As TOP's own SDK does: system parameters in the query, the API's in the form body.
        return HttpRequest("POST", creds.api_url or self.gateway, params=system, form=form)

    def list_request(
        self, creds: Credentials, window: Window, page: int, now: datetime
    ) -> HttpRequest:
        """One page of ``taobao.trades.sold.increment.get`` over ``window``."""
        return self.request(
            creds,
            LIST_METHOD,
            {
                "fields": LIST_FIELDS,
                "start_modified": beijing_text(window.start),
                "end_modified": beijing_text(window.end),
                "type": TRADE_TYPES,
                "page_no": str(page),
                "page_size": str(self.page_size),
                # The total is needed to read the pages from the last one back.
                "use_has_next": "false",
            },
            now,
        )

    def parse_list(self, body: bytes | str) -> ListPage:
        """Trade ids of one increment page, with the window's total."""
        root = _checked(body)
        response = as_object(root.get("trades_sold_increment_get_response"), "the response")
        box = response.get("trades")
        trades = as_objects(box.get("trade") if isinstance(box, dict) else None, "trades")
        total = as_int(response.get("total_results"))
        return ListPage(
            orders=tuple(trades),
            order_ids=tuple(self.order_id(t) for t in trades),
            total=total,
            has_next=bool(response.get("has_next", False)),
        )

    def detail_request(self, creds: Credentials, order_id: str, now: datetime) -> HttpRequest:
        """``taobao.trade.fullinfo.get`` for one trade."""
        return self.request(creds, DETAIL_METHOD, {"fields": DETAIL_FIELDS, "tid": order_id}, now)

    def parse_detail(self, body: bytes | str) -> RawOrder:
        """The full Trade object."""
        root = _checked(body)
        response = as_object(root.get("trade_fullinfo_get_response"), "the response")
        return as_object(response.get("trade"), "trade")

    def order_id(self, order: Mapping[str, Any]) -> str:
        """``tid_str`` (exact for ids above 2^53), else ``tid``."""
        value = order.get("tid_str") or order.get("tid")
        if value is None or value == "":
            raise ApiError(ErrorKind.TRANSIENT, "bad_response", "a trade without tid")
        return str(value)


def _checked(body: bytes | str) -> dict[str, Any]:
    root = load_json(body)
    error = root.get("error_response")
    if isinstance(error, dict):
        raise classify(error)
    return root
