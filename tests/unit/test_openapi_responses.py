"""Reading the platforms' answers: pages, full orders, and errors sorted into kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.openapi import ApiError, DouyinApi, ErrorKind, JdApi, PddApi, TaobaoApi

FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"


def fixture(name: str) -> dict[str, Any]:
    value = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(value, dict)
    return value


def body(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def kind_of(parse: Any, value: object) -> ErrorKind:
    with pytest.raises(ApiError) as caught:
        parse(body(value))
    return caught.value.kind


# -- pages and details -----------------------------------------------------------------


def test_top_increment_page_gives_trade_ids_and_the_total() -> None:
    page = TaobaoApi().parse_list(
        body(
            {
                "trades_sold_increment_get_response": {
                    "total_results": 7,
                    "trades": {
                        "trade": [
                            {"tid": 3341958349012345600, "tid_str": "3341958349012345678"},
                            {"tid": 2231958349012345678, "modified": "2026-03-01 11:10:00"},
                        ]
                    },
                }
            }
        )
    )
    # tid_str is exact where the number went through a float.
    assert page.order_ids == ("3341958349012345678", "2231958349012345678")
    assert page.total == 7 and len(page.orders) == 2


def test_top_empty_window_has_no_trades_key() -> None:
    page = TaobaoApi().parse_list(
        body({"trades_sold_increment_get_response": {"total_results": 0}})
    )
    assert page.orders == () and page.total == 0


def test_top_fullinfo_gives_the_bare_trade() -> None:
    sample = fixture("taobao_trade_fullinfo_get_sample.json")
    trade = TaobaoApi().parse_detail(body(sample))
    assert trade["tid_str"] == "2231958349012345678"
    assert trade["orders"]["order"][0]["outer_sku_id"] == "TEE-01-BLK-L"


def test_jd_search_page_has_full_orders() -> None:
    page = JdApi().parse_list(body(fixture("jd_pop_order_search_locked.json")))
    assert page.order_ids == ("323456789012",) and page.total == 1
    assert page.orders[0]["orderState"] == "LOCKED"


def test_jd_get_gives_the_order_info() -> None:
    order = JdApi().parse_detail(body(fixture("jd_pop_order_get_sample.json")))
    assert order["orderId"] == "301234567890" and order["itemInfoList"]


def test_douyin_search_page_has_full_shop_orders() -> None:
    page = DouyinApi().parse_list(body(fixture("douyin_search_list_risk_hold.json")))
    assert page.order_ids == ("6936476692437480002",) and page.total == 1
    assert page.orders[0]["order_status"] == 105


def test_douyin_detail_gives_the_shop_order_detail() -> None:
    order = DouyinApi().parse_detail(body(fixture("douyin_order_detail_sample.json")))
    assert order["order_id"] == "6936476692437472563" and order["pay_amount"] == 24800


def test_pdd_increment_page_gives_order_sns_and_the_total() -> None:
    page = PddApi().parse_list(
        body(
            {
                "order_sn_increment_get_response": {
                    "total_count": 3,
                    "has_next": True,
                    "order_sn_list": [{"order_sn": "241111-029900000000001"}],
                }
            }
        )
    )
    assert page.order_ids == ("241111-029900000000001",)
    assert page.total == 3 and page.has_next


def test_pdd_information_gives_the_order_info() -> None:
    order = PddApi().parse_detail(body(fixture("pdd_order_information_get_sample.json")))
    assert order["order_sn"] == "240518-123456789012345"


def test_a_body_that_is_not_json_is_transient() -> None:
    for api in (TaobaoApi(), JdApi(), DouyinApi(), PddApi()):
        with pytest.raises(ApiError) as caught:
            api.parse_list(b"<html>502 Bad Gateway</html>")
        assert caught.value.kind is ErrorKind.TRANSIENT


def test_a_list_without_its_envelope_is_transient() -> None:
    assert kind_of(TaobaoApi().parse_list, {"something_else": {}}) is ErrorKind.TRANSIENT
    assert kind_of(PddApi().parse_detail, {}) is ErrorKind.TRANSIENT


# -- errors ----------------------------------------------------------------------------


def top_error(code: int, msg: str, sub_code: str = "", sub_msg: str = "") -> dict[str, Any]:
    return {
        "error_response": {
            "code": code,
            "msg": msg,
            "sub_code": sub_code,
            "sub_msg": sub_msg,
            "request_id": "r1",
        }
    }


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (top_error(7, "App Call Limited", "accesscontrol.limited-by-app-access-count"), "RATE"),
        (top_error(27, "Invalid session", "invalid-sessionkey"), "AUTH"),
        (top_error(25, "Invalid signature"), "AUTH"),
        (top_error(41, "Invalid arguments", "isv.invalid-parameter"), "REJECTED"),
        (top_error(15, "Remote service error", "isv.trade-not-exist"), "REJECTED"),
        (top_error(15, "Remote service error", "isp.remote-service-timeout"), "TRANSIENT"),
        (top_error(10, "Service Currently Unavailable"), "TRANSIENT"),
    ],
)
def test_top_errors(error: dict[str, Any], kind: str) -> None:
    expected = {
        "RATE": ErrorKind.RATE_LIMITED,
        "AUTH": ErrorKind.AUTH,
        "REJECTED": ErrorKind.REJECTED,
        "TRANSIENT": ErrorKind.TRANSIENT,
    }[kind]
    assert kind_of(TaobaoApi().parse_list, error) is expected
    assert kind_of(TaobaoApi().parse_detail, error) is expected


def test_jd_invalid_access_token_is_auth() -> None:
    error = {
        "error_response": {
            "code": "19",
            "zh_desc": "无效access_token",
            "en_desc": "Invalid access_token",
        }
    }
    assert kind_of(JdApi().parse_list, error) is ErrorKind.AUTH


def test_jd_call_frequency_is_rate_limited() -> None:
    error = {"error_response": {"code": "xx", "zh_desc": "调用频率超限", "en_desc": "call limit"}}
    assert kind_of(JdApi().parse_list, error) is ErrorKind.RATE_LIMITED


def test_jd_failed_api_result_inside_a_success_envelope_is_an_error() -> None:
    value = {
        "jingdong_pop_order_search_responce": {
            "searchorderinfo_result": {
                "apiResult": {
                    "success": False,
                    "chineseErrCode": "系统繁忙",
                    "englishErrCode": "busy",
                }
            }
        }
    }
    assert kind_of(JdApi().parse_list, value) is ErrorKind.TRANSIENT


def test_pdd_expired_token_is_auth_and_frequency_is_rate_limited() -> None:
    expired = {"error_response": {"error_code": 10019, "error_msg": "access_token已过期"}}
    assert kind_of(PddApi().parse_list, expired) is ErrorKind.AUTH
    busy = {"error_response": {"error_code": 99, "error_msg": "调用过于频繁，请调整调用频率"}}
    assert kind_of(PddApi().parse_list, busy) is ErrorKind.RATE_LIMITED
    other = {"error_response": {"error_code": 50000, "error_msg": "系统错误"}}
    assert kind_of(PddApi().parse_list, other) is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ({"code": 60000, "msg": "超过限流限制"}, ErrorKind.RATE_LIMITED),
        (
            {"code": 40003, "msg": "非法的参数", "sub_code": "isv.access-token-expired"},
            ErrorKind.AUTH,
        ),
        ({"code": 30002, "msg": "IP不在白名单内"}, ErrorKind.AUTH),
        ({"code": 40004, "msg": "非法的参数（业务校验）"}, ErrorKind.REJECTED),
        ({"code": 20000, "msg": "服务不可用"}, ErrorKind.TRANSIENT),
        ({"code": 50002, "msg": "业务处理失败"}, ErrorKind.TRANSIENT),
    ],
)
def test_douyin_errors(answer: dict[str, Any], kind: ErrorKind) -> None:
    assert kind_of(DouyinApi().parse_list, answer) is kind


def test_only_rate_limits_and_transient_failures_are_retried() -> None:
    assert ErrorKind.RATE_LIMITED.retryable and ErrorKind.TRANSIENT.retryable
    assert not ErrorKind.AUTH.retryable and not ErrorKind.REJECTED.retryable
