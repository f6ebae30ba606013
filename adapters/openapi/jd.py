"""JD open platform (JOS): signed calls for the incremental order pull.

``jingdong.pop.order.search`` with ``dateType=0`` lists orders by modification time
(``start_date``/``end_date`` in Beijing time, at most a month apart) and returns the full
``orderInfo`` of each, limited to the ``optional_fields`` asked for, so no detail call is
needed while polling. ``jingdong.pop.order.get`` reads one order. JD asks integrators to
roll the time window rather than page deep, so windows here are short.

The business parameters travel as one JSON string, ``360buy_param_json``. The signature is
``MD5(secret + k1v1k2v2… + secret)`` in upper-case hex over the system parameters and that
JSON string, keys sorted, empty values left out. As in JD's own SDK, the system parameters
go in the query and ``360buy_param_json`` in the form body. JD really spells its response
keys ``…_responce``.
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
    compact_json,
    joined_pairs,
    load_json,
    md5_hex,
    words_say,
)

GATEWAY = "https://api.jd.com/routerjson"
PARAM_JSON = "360buy_param_json"
LIST_METHOD = "jingdong.pop.order.search"
DETAIL_METHOD = "jingdong.pop.order.get"

#: Every documented ``order_state`` (comma-separated, required by the search).
ORDER_STATES = (
    "WAIT_SELLER_STOCK_OUT,WAIT_GOODS_RECEIVE_CONFIRM,WAIT_SELLER_DELIVERY,PAUSE,"
    "FINISHED_L,TRADE_CANCELED,LOCKED,POP_ORDER_PAUSE"
)
#: The ``orderInfo`` fields intake reads (JOS returns only the fields asked for).
OPTIONAL_FIELDS = (
    "orderId,venderId,orderType,payType,orderState,orderStateRemark,orderRemark,"
    "venderRemark,orderStartTime,paymentConfirmTime,orderEndTime,modified,orderTotalPrice,"
    "sellerDiscount,orderSellerPrice,freightPrice,balanceUsed,orderPayment,couponDetailList,"
    "consigneeInfo,itemInfoList,returnOrder,orderSource,deliveryType,invoiceInfo,pin"
)

_AUTH_CODES = frozenset({"19"})  # 无效access_token / Invalid access_token
_AUTH_WORDS = ("access_token", "access token", "signature", "签名", "授权", "appkey", "app_key")


def sign(params: Mapping[str, str], secret: str) -> str:
    """The JOS signature of ``params`` (upper-case hex MD5, secret on both ends)."""
    return md5_hex(f"{secret}{joined_pairs(params)}{secret}").upper()


def classify(error: Mapping[str, Any]) -> ApiError:
    """A JOS ``error_response`` (``code``, ``zh_desc``, ``en_desc``) as an :class:`ApiError`."""
    code = str(error.get("code", "")).strip()
    text = " ".join(str(error.get(k, "") or "") for k in ("zh_desc", "en_desc", "msg")).strip()
    if words_say(text, RATE_WORDS):
        kind = ErrorKind.RATE_LIMITED
    elif code in _AUTH_CODES or words_say(text, _AUTH_WORDS):
        kind = ErrorKind.AUTH
    elif words_say(text, ("参数", "parameter", "argument")):
        kind = ErrorKind.REJECTED
    else:
        kind = ErrorKind.TRANSIENT
    return ApiError(kind, code, text or "error_response")


class JdApi(OpenApi):
    """JOS: ``jingdong.pop.order.search`` (by modified time) + ``jingdong.pop.order.get``."""

    platform = "jd"
    gateway = GATEWAY
    max_window = timedelta(days=1)  # documented limit: one month
    min_lag = timedelta(seconds=60)
    page_size = 100  # documented maximum
    first_page = 1
    needs_detail = False

    def request(
        self, creds: Credentials, method: str, business: Mapping[str, Any], now: datetime
    ) -> HttpRequest:
        """Any JOS method, signed: system parameters in the query, the JSON in the form."""
        param_json = compact_json(dict(business))
        system = {
            "method": method,
            "app_key": creds.app_key,
            "access_token": creds.access_token,
            "timestamp": beijing_text(now),
            "v": "2.0",
        }
        system["sign"] = sign({**system, PARAM_JSON: param_json}, creds.app_secret)
        return HttpRequest(
            "POST", creds.api_url or self.gateway, params=system, form={PARAM_JSON: param_json}
        )

    def list_request(
        self, creds: Credentials, window: Window, page: int, now: datetime
    ) -> HttpRequest:
        """One page of ``jingdong.pop.order.search`` by modification time."""
        return self.request(
            creds,
            LIST_METHOD,
            {
                "start_date": beijing_text(window.start),
                "end_date": beijing_text(window.end),
                "order_state": ORDER_STATES,
                "optional_fields": OPTIONAL_FIELDS,
                "page": str(page),
                "page_size": str(self.page_size),
                "dateType": 0,  # 0: by modification time, 1: by creation time
            },
            now,
        )

    def parse_list(self, body: bytes | str) -> ListPage:
        """The orders of one search page, with the window's total."""
        root = _checked(body)
        response = as_object(_responce(root, "search"), "the response")
        result = as_object(response.get("searchorderinfo_result"), "searchorderinfo_result")
        _check_api_result(result)
        orders = as_objects(result.get("orderInfoList"), "orderInfoList")
        total = as_int(result.get("orderTotal"))
        return ListPage(
            orders=tuple(orders),
            order_ids=tuple(self.order_id(o) for o in orders),
            total=total,
            has_next=False,
        )

    def detail_request(self, creds: Credentials, order_id: str, now: datetime) -> HttpRequest:
        """``jingdong.pop.order.get`` for one order."""
        return self.request(
            creds,
            DETAIL_METHOD,
            {"order_id": order_id, "optional_fields": OPTIONAL_FIELDS, "order_state": ORDER_STATES},
            now,
        )

    def parse_detail(self, body: bytes | str) -> RawOrder:
        """The ``orderInfo`` of one order."""
        root = _checked(body)
        response = as_object(_responce(root, "get"), "the response")
        detail = as_object(response.get("orderDetailInfo"), "orderDetailInfo")
        _check_api_result(detail)
        return as_object(detail.get("orderInfo"), "orderInfo")

    def order_id(self, order: Mapping[str, Any]) -> str:
        """``orderId``."""
        value = order.get("orderId")
        if value is None or value == "":
            raise ApiError(ErrorKind.TRANSIENT, "bad_response", "an order without orderId")
        return str(value)


def _checked(body: bytes | str) -> dict[str, Any]:
    root = load_json(body)
    error = root.get("error_response")
    if isinstance(error, dict):
        raise classify(error)
    return root


def _responce(root: Mapping[str, Any], method: str) -> Any:
    for suffix in ("responce", "response"):
        key = f"jingdong_pop_order_{method}_{suffix}"
        if key in root:
            return root[key]
    return None


def _check_api_result(result: Mapping[str, Any]) -> None:
    """JOS wraps business failures in ``apiResult`` with ``success: false``."""
    api_result = result.get("apiResult")
    if isinstance(api_result, dict) and api_result.get("success") is False:
        raise classify(
            {
                "code": api_result.get("englishErrCode") or api_result.get("resultCode") or "",
                "zh_desc": api_result.get("chineseErrCode") or api_result.get("resultDescribe"),
            }
        )
