"""Requests built by the pull clients: gateway, parameter names, time formats, signature."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from adapters.openapi import (
    Credentials,
    DouyinApi,
    JdApi,
    PddApi,
    TaobaoApi,
    Window,
    api_for,
    douyin,
    jd,
    pdd,
    taobao,
)

NOW = datetime(2026, 3, 1, 4, 0, 7, tzinfo=UTC)  # 12:00:07 in Beijing
WINDOW = Window(datetime(2026, 3, 1, 3, 0, tzinfo=UTC), datetime(2026, 3, 1, 3, 30, tzinfo=UTC))
CREDS = Credentials("app-1", "secret-1", "token-1")


def test_top_list_asks_the_increment_api_in_beijing_time() -> None:
    req = TaobaoApi().list_request(CREDS, WINDOW, 3, NOW)
    assert req.method == "POST" and req.url == "https://eco.taobao.com/router/rest"
    assert req.params["method"] == "taobao.trades.sold.increment.get"
    assert req.params["session"] == "token-1" and req.params["app_key"] == "app-1"
    assert req.params["timestamp"] == "2026-03-01 12:00:07"
    assert req.params["v"] == "2.0" and req.params["format"] == "json"
    assert req.form is not None
    assert req.form["start_modified"] == "2026-03-01 11:00:00"
    assert req.form["end_modified"] == "2026-03-01 11:30:00"
    assert req.form["page_no"] == "3" and req.form["page_size"] == "50"
    assert req.form["use_has_next"] == "false"  # the total is needed to page backwards
    assert "guarantee_trade" in req.form["type"] and "fixed" in req.form["type"]


def test_top_signature_covers_query_and_form_together() -> None:
    req = TaobaoApi().list_request(CREDS, WINDOW, 1, NOW)
    assert req.form is not None
    signed = {k: v for k, v in {**req.params, **req.form}.items() if k != "sign"}
    assert req.params["sign"] == taobao.sign(signed, "secret-1", "md5")


def test_top_hmac_sha256_shop_says_so_in_sign_method() -> None:
    req = TaobaoApi(sign_method="hmac-sha256").detail_request(CREDS, "2231958349012345678", NOW)
    assert req.params["sign_method"] == "hmac-sha256"
    assert req.form == {"fields": taobao.DETAIL_FIELDS, "tid": "2231958349012345678"}
    signed = {k: v for k, v in {**req.params, **req.form}.items() if k != "sign"}
    assert req.params["sign"] == taobao.sign(signed, "secret-1", "hmac-sha256")
    assert "orders" in taobao.DETAIL_FIELDS.split(",")


def test_a_shop_api_url_replaces_the_public_gateway() -> None:
    creds = Credentials("a", "s", "t", api_url="http://127.0.0.1:9/top")
    assert TaobaoApi().list_request(creds, WINDOW, 1, NOW).url == "http://127.0.0.1:9/top"
    assert JdApi().list_request(creds, WINDOW, 1, NOW).url == "http://127.0.0.1:9/top"
    assert PddApi().list_request(creds, WINDOW, 1, NOW).url == "http://127.0.0.1:9/top"
    assert (
        DouyinApi().list_request(creds, WINDOW, 0, NOW).url
        == "http://127.0.0.1:9/top/order/searchList"
    )


def test_jd_search_sends_param_json_by_modified_time() -> None:
    req = JdApi().list_request(CREDS, WINDOW, 2, NOW)
    assert req.url == "https://api.jd.com/routerjson"
    assert req.params["method"] == "jingdong.pop.order.search"
    assert req.params["access_token"] == "token-1" and req.params["v"] == "2.0"
    assert req.params["timestamp"] == "2026-03-01 12:00:07"
    assert req.form is not None
    body = json.loads(req.form["360buy_param_json"])
    assert body["dateType"] == 0  # by modification time
    assert body["start_date"] == "2026-03-01 11:00:00"
    assert body["end_date"] == "2026-03-01 11:30:00"
    assert body["page"] == "2" and body["page_size"] == "100"
    assert "WAIT_SELLER_STOCK_OUT" in body["order_state"].split(",")
    assert {"orderId", "modified", "itemInfoList"} <= set(body["optional_fields"].split(","))
    signed = {**{k: v for k, v in req.params.items() if k != "sign"}, **req.form}
    assert req.params["sign"] == jd.sign(signed, "secret-1")


def test_jd_param_json_is_compact_with_sorted_keys() -> None:
    req = JdApi().detail_request(CREDS, "301234567890", NOW)
    assert req.form is not None
    text = req.form["360buy_param_json"]
    value = json.loads(text)
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert value["order_id"] == "301234567890"


def test_douyin_search_posts_param_json_and_signs_it() -> None:
    req = DouyinApi().list_request(CREDS, WINDOW, 0, NOW)
    assert req.url == "https://openapi-fxg.jinritemai.com/order/searchList"
    assert req.params["method"] == "order.searchList"
    assert req.params["v"] == "2" and req.params["sign_method"] == "hmac-sha256"
    assert req.params["timestamp"] == str(int(NOW.timestamp()))
    assert req.body is not None
    text = req.body.decode()
    assert json.loads(text) == {
        "order_by": "update_time",
        "page": 0,
        "size": 100,
        "update_time_end": int(WINDOW.end.timestamp()),
        "update_time_start": int(WINDOW.start.timestamp()),
    }
    assert ", " not in text and ": " not in text
    assert req.params["sign"] == douyin.sign(
        "app-1", "secret-1", "order.searchList", text, req.params["timestamp"]
    )


def test_douyin_detail_asks_for_the_shop_order_id() -> None:
    req = DouyinApi(sign_method="md5").detail_request(CREDS, "6936476692437472563", NOW)
    assert req.url.endswith("/order/orderDetail")
    assert req.body == b'{"shop_order_id":"6936476692437472563"}'
    assert req.params["sign_method"] == "md5"


def test_pdd_increment_is_one_signed_form_with_unix_seconds() -> None:
    req = PddApi().list_request(CREDS, WINDOW, 4, NOW)
    assert req.url == "https://gw-api.pinduoduo.com/api/router" and not req.params
    assert req.form is not None
    form = dict(req.form)
    assert form["type"] == "pdd.order.number.list.increment.get"
    assert form["client_id"] == "app-1" and form["access_token"] == "token-1"
    assert form["data_type"] == "JSON"
    assert form["timestamp"] == str(int(NOW.timestamp()))
    assert form["start_updated_at"] == str(int(WINDOW.start.timestamp()))
    assert form["end_updated_at"] == str(int(WINDOW.end.timestamp()))
    assert form["page"] == "4" and form["page_size"] == "100"
    assert form["order_status"] == "5" and form["refund_status"] == "5"
    assert form.pop("sign") == pdd.sign(form, "secret-1")


def test_pdd_detail_is_order_information_by_order_sn() -> None:
    req = PddApi().detail_request(CREDS, "240518-123456789012345", NOW)
    assert req.form is not None
    assert req.form["type"] == "pdd.order.information.get"
    assert req.form["order_sn"] == "240518-123456789012345"


def test_signatures_are_hex_of_the_expected_case() -> None:
    top = TaobaoApi().list_request(CREDS, WINDOW, 1, NOW).params["sign"]
    jos = JdApi().list_request(CREDS, WINDOW, 1, NOW).params["sign"]
    dy = DouyinApi().list_request(CREDS, WINDOW, 0, NOW).params["sign"]
    pdd_form = PddApi().list_request(CREDS, WINDOW, 1, NOW).form
    assert pdd_form is not None
    assert re.fullmatch(r"[0-9A-F]{32}", top) and re.fullmatch(r"[0-9A-F]{32}", jos)
    assert re.fullmatch(r"[0-9a-f]{64}", dy)
    assert re.fullmatch(r"[0-9A-F]{32}", pdd_form["sign"])


def test_every_pull_platform_has_a_client_and_first_page() -> None:
    assert {api_for(p).platform for p in ("taobao", "jd", "douyin", "pdd")} == {
        "taobao",
        "jd",
        "douyin",
        "pdd",
    }
    assert api_for("douyin").first_page == 0 and api_for("pdd").first_page == 1
    assert api_for("taobao").needs_detail and api_for("pdd").needs_detail
    assert not api_for("jd").needs_detail and not api_for("douyin").needs_detail
