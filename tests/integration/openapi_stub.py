"""A local stand-in for the four platforms' open APIs, for the poller tests.

One aiohttp server on a free port answers like TOP, JOS, 抖店 and PDD do for the calls the
pollers make: it checks every request's signature with its own code (written from the
documented recipes, not imported from the code under test) and refuses a bad one the way
the platform does, refuses an unknown token, filters its orders by the modified-time window
asked for, enforces the documented window limits, pages, and can be told to answer with an
error (a rate limit, a transient failure, an HTTP status) a given number of times.

Orders are built from the sample payloads in ``tests/fixtures/platforms`` (real field names,
invented values) with their ids and modification times replaced.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

APP_KEY = "stub-app-key"
SECRET = "stub-app-secret"
TOKEN = "stub-access-token"
PLATFORMS = ("taobao", "jd", "douyin", "pdd")
PATHS = {
    "taobao": "/top/router/rest",
    "jd": "/jd/routerjson",
    "douyin": "/douyin",
    "pdd": "/pdd/api/router",
}
BEIJING = timezone(timedelta(hours=8))
FIXTURES = Path(__file__).parent.parent / "fixtures" / "platforms"
_BEIJING_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")

# Error answers in each platform's shape. TOP's codes and 抖店's base codes are the
# documented ones; where no code was found (JOS and PDD rate limits and signature errors,
# 抖店's signature sub-code) the text carries the meaning and the code is a stand-in.
RATE_LIMITED: dict[str, dict[str, Any]] = {
    "taobao": {
        "error_response": {
            "code": 7,
            "msg": "App Call Limited",
            "sub_code": "accesscontrol.limited-by-app-access-count",
            "sub_msg": "This ban will last for 1 more seconds",
        }
    },
    "jd": {
        "error_response": {"code": "stub", "zh_desc": "调用频率超限", "en_desc": "call limited"}
    },
    "douyin": {"code": 60000, "msg": "超过限流限制"},
    "pdd": {"error_response": {"error_code": 0, "error_msg": "调用过于频繁，请调整调用频率"}},
}
TRANSIENT: dict[str, dict[str, Any]] = {
    "taobao": {
        "error_response": {
            "code": 15,
            "msg": "Remote service error",
            "sub_code": "isp.remote-service-timeout",
        }
    },
    "jd": {"error_response": {"code": "stub", "zh_desc": "系统繁忙", "en_desc": "system busy"}},
    "douyin": {"code": 20001, "msg": "内部服务超时"},
    "pdd": {"error_response": {"error_code": 0, "error_msg": "系统繁忙，请稍后重试"}},
}
_BAD_TOKEN: dict[str, dict[str, Any]] = {
    "taobao": {
        "error_response": {"code": 27, "msg": "Invalid session", "sub_code": "invalid-sessionkey"}
    },
    "jd": {
        "error_response": {
            "code": "19",
            "zh_desc": "无效access_token",
            "en_desc": "Invalid access_token",
        }
    },
    "douyin": {
        "code": 40003,
        "msg": "非法的参数",
        "sub_code": "isv.access-token-expired",
        "sub_msg": "access_token已过期",
    },
    "pdd": {"error_response": {"error_code": 10019, "error_msg": "access_token已过期"}},
}
_BAD_SIGN: dict[str, dict[str, Any]] = {
    "taobao": {"error_response": {"code": 25, "msg": "Invalid signature"}},
    "jd": {
        "error_response": {"code": "stub", "zh_desc": "签名无效", "en_desc": "Invalid signature"}
    },
    "douyin": {"code": 40003, "msg": "非法的参数", "sub_code": "isv.sign-invalid"},
    "pdd": {"error_response": {"error_code": 0, "error_msg": "sign签名错误"}},
}


@dataclass
class StubOrder:
    """An order the stub serves: its id, when it last changed, its full object."""

    order_id: str
    modified: datetime
    full: dict[str, Any]


@dataclass
class Call:
    """A request the stub answered (or refused)."""

    platform: str
    method: str
    params: dict[str, Any]

    @property
    def page(self) -> int | None:
        for key in ("page_no", "page"):
            if key in self.params:
                return int(self.params[key])
        return None


@dataclass
class PlatformStub:
    """The stand-in platforms: orders, scripted failures, and the calls seen."""

    orders: dict[str, list[StubOrder]] = field(default_factory=lambda: {p: [] for p in PLATFORMS})
    calls: list[Call] = field(default_factory=list)
    #: (platform, method, page or None) → answers to give before the real one.
    script: dict[tuple[str, str, int | None], list[dict[str, Any] | int]] = field(
        default_factory=dict
    )
    base_url: str = ""
    _runner: web.AppRunner | None = None

    # -- setting up ----------------------------------------------------------------------

    async def start(self) -> str:
        """Serve on a free port of 127.0.0.1; returns the base URL."""
        app = web.Application()
        app.router.add_post(PATHS["taobao"], self._taobao)
        app.router.add_post(PATHS["jd"], self._jd)
        app.router.add_post(PATHS["douyin"] + "/order/{name}", self._douyin)
        app.router.add_post(PATHS["pdd"], self._pdd)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, platform: str) -> str:
        """The ``api_url`` of a shop on ``platform`` served by this stub."""
        return self.base_url + PATHS[platform]

    def put(self, platform: str, order_id: str, modified: datetime) -> StubOrder:
        """Add (or change) an order modified at ``modified``; returns it."""
        full = build_order(platform, order_id, modified)
        kept = [o for o in self.orders[platform] if o.order_id != order_id]
        order = StubOrder(order_id, modified, full)
        self.orders[platform] = [*kept, order]
        return order

    def put_raw(
        self, platform: str, order_id: str, modified: datetime, full: dict[str, Any]
    ) -> None:
        """Add an order with a full object given as is (e.g. one intake cannot read)."""
        self.orders[platform].append(StubOrder(order_id, modified, full))

    def fail(
        self,
        platform: str,
        method: str,
        answer: dict[str, Any] | int,
        *,
        times: int = 1,
        page: int | None = None,
    ) -> None:
        """Answer ``method`` (on ``page``, or any page) with ``answer`` the next ``times`` times.

        ``answer`` is a JSON body (HTTP 200, as the platforms send errors) or an HTTP status.
        """
        self.script.setdefault((platform, method, page), []).extend([answer] * times)

    def calls_of(self, platform: str, method: str) -> list[Call]:
        return [c for c in self.calls if c.platform == platform and c.method == method]

    # -- answering -----------------------------------------------------------------------

    def _scripted(self, platform: str, method: str, page: int | None) -> web.Response | None:
        for key in ((platform, method, page), (platform, method, None)):
            queue = self.script.get(key)
            if queue:
                answer = queue.pop(0)
                if isinstance(answer, int):
                    return web.Response(status=answer, text="stub failure")
                return web.json_response(answer)
        return None

    def _window(self, platform: str, start: datetime, end: datetime) -> list[StubOrder]:
        return sorted(
            (o for o in self.orders[platform] if start <= o.modified <= end),
            key=lambda o: (o.modified, o.order_id),
        )

    async def _taobao(self, request: web.Request) -> web.Response:
        params = {**request.query, **(await request.post())}
        params = {k: str(v) for k, v in params.items()}
        call = Call("taobao", params.get("method", ""), params)
        self.calls.append(call)
        if not _top_signed(params):
            return web.json_response(_BAD_SIGN["taobao"])
        assert _BEIJING_TEXT.fullmatch(params["timestamp"]), params["timestamp"]
        if params.get("session") != TOKEN:
            return web.json_response(_BAD_TOKEN["taobao"])
        scripted = self._scripted("taobao", call.method, call.page)
        if scripted is not None:
            return scripted
        if call.method == "taobao.trades.sold.increment.get":
            start, end = _beijing(params["start_modified"]), _beijing(params["end_modified"])
            if end - start > timedelta(days=1):
                return web.json_response(
                    {"error_response": {"code": 41, "msg": "Invalid arguments:end_modified"}}
                )
            # TOP lists the newest change first.
            hits = list(reversed(self._window("taobao", start, end)))
            chunk = _page(hits, int(params["page_no"]), int(params["page_size"]), first=1)
            trades = [
                {"tid": int(o.order_id), "tid_str": o.order_id, "modified": _text(o.modified)}
                for o in chunk
            ]
            answer: dict[str, Any] = {"total_results": len(hits)}
            if trades:
                answer["trades"] = {"trade": trades}
            return web.json_response({"trades_sold_increment_get_response": answer})
        if call.method == "taobao.trade.fullinfo.get":
            found = self._find("taobao", params["tid"])
            if found is None:
                return web.json_response(
                    {
                        "error_response": {
                            "code": 15,
                            "msg": "Remote service error",
                            "sub_code": "isv.trade-not-exist",
                        }
                    }
                )
            return web.json_response({"trade_fullinfo_get_response": {"trade": found.full}})
        return web.json_response({"error_response": {"code": 22, "msg": "Invalid method"}})

    async def _jd(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {**request.query, "360buy_param_json": str(form.get("360buy_param_json", ""))}
        call = Call("jd", params.get("method", ""), json.loads(params["360buy_param_json"] or "{}"))
        self.calls.append(call)
        if not _jd_signed(params):
            return web.json_response(_BAD_SIGN["jd"])
        assert _BEIJING_TEXT.fullmatch(params["timestamp"]), params["timestamp"]
        if params.get("access_token") != TOKEN:
            return web.json_response(_BAD_TOKEN["jd"])
        scripted = self._scripted("jd", call.method, call.page)
        if scripted is not None:
            return scripted
        body = call.params
        if call.method == "jingdong.pop.order.search":
            assert body["dateType"] == 0, "the pull must search by modification time"
            start, end = _beijing(body["start_date"]), _beijing(body["end_date"])
            assert end - start <= timedelta(days=31)
            hits = self._window("jd", start, end)
            chunk = _page(hits, int(body["page"]), int(body["page_size"]), first=1)
            return web.json_response(
                {
                    "jingdong_pop_order_search_responce": {
                        "code": "0",
                        "searchorderinfo_result": {
                            "apiResult": {"success": True, "resultCode": "", "resultDescribe": ""},
                            "orderTotal": len(hits),
                            "orderInfoList": [o.full for o in chunk],
                        },
                    }
                }
            )
        if call.method == "jingdong.pop.order.get":
            found = self._find("jd", body["order_id"])
            assert found is not None
            return web.json_response(
                {
                    "jingdong_pop_order_get_responce": {
                        "code": "0",
                        "orderDetailInfo": {
                            "apiResult": {"success": True},
                            "orderInfo": found.full,
                        },
                    }
                }
            )
        return web.json_response({"error_response": {"code": "stub", "zh_desc": "方法不存在"}})

    async def _douyin(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        text = await request.text()
        method = params.get("method", "")
        assert method == "order." + request.match_info["name"], "path and method must agree"
        body = json.loads(text or "{}")
        call = Call("douyin", method, body)
        self.calls.append(call)
        if not _douyin_signed(params, text):
            return web.json_response(_BAD_SIGN["douyin"])
        assert params["timestamp"].isdigit() and params["v"] == "2"
        if params.get("access_token") != TOKEN:
            return web.json_response(_BAD_TOKEN["douyin"])
        scripted = self._scripted("douyin", method, call.page)
        if scripted is not None:
            return scripted
        if method == "order.searchList":
            assert body["order_by"] == "update_time" and body["size"] <= 100
            start = datetime.fromtimestamp(body["update_time_start"], UTC)
            end = datetime.fromtimestamp(body["update_time_end"], UTC)
            hits = list(reversed(self._window("douyin", start, end)))  # newest first by default
            chunk = _page(hits, body["page"], body["size"], first=0)
            data = {
                "page": body["page"],
                "size": body["size"],
                "total": len(hits),
                "shop_order_list": [o.full for o in chunk],
            }
            return web.json_response({"code": 10000, "msg": "success", "data": data})
        if method == "order.orderDetail":
            found = self._find("douyin", body["shop_order_id"])
            assert found is not None
            return web.json_response(
                {"code": 10000, "msg": "success", "data": {"shop_order_detail": found.full}}
            )
        return web.json_response({"code": 40001, "msg": "缺少必选参数"})

    async def _pdd(self, request: web.Request) -> web.Response:
        params = {k: str(v) for k, v in (await request.post()).items()}
        call = Call("pdd", params.get("type", ""), params)
        self.calls.append(call)
        if not _pdd_signed(params):
            return web.json_response(_BAD_SIGN["pdd"])
        assert params["timestamp"].isdigit() and params["client_id"] == APP_KEY
        if params.get("access_token") != TOKEN:
            return web.json_response(_BAD_TOKEN["pdd"])
        scripted = self._scripted("pdd", call.method, call.page)
        if scripted is not None:
            return scripted
        if call.method == "pdd.order.number.list.increment.get":
            start = datetime.fromtimestamp(int(params["start_updated_at"]), UTC)
            end = datetime.fromtimestamp(int(params["end_updated_at"]), UTC)
            if end - start > timedelta(minutes=30):
                return web.json_response(
                    {
                        "error_response": {
                            "error_code": 0,
                            "error_msg": "参数错误：时间跨度不能超过30分钟",
                        }
                    }
                )
            hits = self._window("pdd", start, end)
            chunk = _page(hits, int(params["page"]), int(params["page_size"]), first=1)
            listed = [{"order_sn": o.order_id, "updated_at": _text(o.modified)} for o in chunk]
            return web.json_response(
                {
                    "order_sn_increment_get_response": {
                        "total_count": len(hits),
                        "has_next": False,
                        "order_sn_list": listed,
                    }
                }
            )
        if call.method == "pdd.order.information.get":
            found = self._find("pdd", params["order_sn"])
            assert found is not None
            return web.json_response({"order_info_get_response": {"order_info": found.full}})
        return web.json_response({"error_response": {"error_code": 0, "error_msg": "type不存在"}})

    def _find(self, platform: str, order_id: str) -> StubOrder | None:
        return next((o for o in self.orders[platform] if o.order_id == order_id), None)


# -- the stub's own signature checks (from the documented recipes) -------------------------


def _pairs(params: Mapping[str, str]) -> str:
    return "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k])


def _top_signed(params: Mapping[str, str]) -> bool:
    pairs = _pairs(params)
    method = params.get("sign_method", "md5")
    if method == "md5":
        expected = hashlib.md5(f"{SECRET}{pairs}{SECRET}".encode()).hexdigest()
    elif method == "hmac":
        expected = hmac.new(SECRET.encode(), pairs.encode(), hashlib.md5).hexdigest()
    elif method == "hmac-sha256":
        expected = hmac.new(SECRET.encode(), pairs.encode(), hashlib.sha256).hexdigest()
    else:
        return False
    return params.get("sign") == expected.upper()


def _jd_signed(params: Mapping[str, str]) -> bool:
    expected = hashlib.md5(f"{SECRET}{_pairs(params)}{SECRET}".encode()).hexdigest().upper()
    return params.get("sign") == expected


def _douyin_signed(params: Mapping[str, str], param_json: str) -> bool:
    text = (
        f"{SECRET}app_key{params.get('app_key')}method{params.get('method')}"
        f"param_json{param_json}timestamp{params.get('timestamp')}v{params.get('v')}{SECRET}"
    )
    if params.get("sign_method") == "md5":
        expected = hashlib.md5(text.encode()).hexdigest()
    else:
        expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    return params.get("sign") == expected


def _pdd_signed(params: Mapping[str, str]) -> bool:
    expected = hashlib.md5(f"{SECRET}{_pairs(params)}{SECRET}".encode()).hexdigest().upper()
    return params.get("sign") == expected


# -- orders ---------------------------------------------------------------------------------


def _sample(name: str, *path: str) -> dict[str, Any]:
    value: Any = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    for step in path:
        value = value[step]
    assert isinstance(value, dict)
    return copy.deepcopy(value)


def build_order(platform: str, order_id: str, modified: datetime) -> dict[str, Any]:
    """A full order object of ``platform`` with this id, last changed at ``modified``."""
    if platform == "taobao":
        trade = _sample(
            "taobao_trade_fullinfo_get_sample.json", "trade_fullinfo_get_response", "trade"
        )
        trade.update(tid=int(order_id), tid_str=order_id, modified=_text(modified))
        for i, line in enumerate(trade["orders"]["order"]):
            oid = f"{order_id}{i}"
            line.update(oid=int(oid), oid_str=oid)
        return trade
    if platform == "jd":
        order = _sample(
            "jd_pop_order_get_sample.json",
            "jingdong_pop_order_get_responce",
            "orderDetailInfo",
            "orderInfo",
        )
        order.update(orderId=order_id, modified=_text(modified))
        return order
    if platform == "douyin":
        order = _sample("douyin_order_detail_sample.json", "data", "shop_order_detail")
        order.update(order_id=order_id, update_time=int(modified.timestamp()))
        for i, line in enumerate(order["sku_order_list"]):
            line.update(order_id=f"{order_id}{i}", parent_order_id=order_id)
        return order
    if platform == "pdd":
        order = _sample(
            "pdd_order_information_get_sample.json", "order_info_get_response", "order_info"
        )
        order.update(order_sn=order_id, updated_at=_text(modified))
        return order
    raise ValueError(platform)


def order_ids(platform: str, count: int, first: int = 1) -> list[str]:
    """Plausible, distinct order ids of ``platform``."""
    if platform == "taobao":
        return [str(2231958349012340000 + n) for n in range(first, first + count)]
    if platform == "jd":
        return [str(301234560000 + n) for n in range(first, first + count)]
    if platform == "douyin":
        return [str(6936476692437470000 + n) for n in range(first, first + count)]
    return [f"260301-{123456789000000 + n}" for n in range(first, first + count)]


def _page(hits: list[StubOrder], page: int, size: int, *, first: int) -> list[StubOrder]:
    offset = (page - first) * size
    return hits[offset : offset + size]


def _text(at: datetime) -> str:
    return at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _beijing(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).astimezone(UTC)
