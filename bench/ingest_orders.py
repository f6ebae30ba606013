"""Platform orders for the ingestion benchmark, made from the real-shaped fixtures.

Each platform's sample payload (``tests/fixtures/platforms``) is the template; every
generated order gets its own order and line ids, SKUs from the benchmark catalogue (as
that platform's SKU codes), quantities, prices, totals, times, a buyer note and a paid or
unpaid status, and is written as the JSON text an ``IngestPlatformOrder`` call carries.
Refunds, gift wrapping and other after-sale markers in the samples are cleared, so what
an order must do is known in advance: a paid order whose note is not a gift message
holds its lines' units; a gift message sends it to review; an unpaid order holds nothing.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters import registry
from hub.domain.intake import place, tags_from_note
from hub.domain.orders import OrderStatus

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "platforms"
TEMPLATES = {
    "taobao": "taobao_trade_fullinfo_get_sample.json",
    "jd": "jd_pop_order_get_sample.json",
    "douyin": "douyin_order_detail_sample.json",
    "pdd": "pdd_order_information_get_sample.json",
    "shopify": "shopify_orders_create_sample.json",
    "woocommerce": "woocommerce_order_created.json",
}
PLATFORMS = tuple(TEMPLATES)
#: How often each platform appears in the end-to-end mix (the Chinese marketplaces first).
MIX = {"taobao": 25, "jd": 15, "douyin": 20, "pdd": 20, "shopify": 10, "woocommerce": 10}
#: Each platform's prefix of a catalogue SKU's code (what MapPlatformSku maps).
CODE_PREFIX = {
    "taobao": "TB",
    "jd": "JD",
    "douyin": "DY",
    "pdd": "PDD",
    "shopify": "SHOP",
    "woocommerce": "WOO",
}
WAREHOUSE_ID = "ING-WH-1"
SKU_PREFIX = "ING-"
#: Shops never send unpaid orders on JD POP (its API lists orders once paid or COD).
ALWAYS_PAID = frozenset({"jd"})

#: Buyer notes and how often they come: (note, weight, queue the hub must put it in).
NOTES: tuple[tuple[str, int, str], ...] = (
    ("", 50, ""),
    ("请发顺丰，谢谢", 15, ""),
    ("加急，今天发", 8, "priority"),
    ("Please ship ASAP", 3, "priority"),
    ("不用加急", 5, ""),
    ("需要开发票，抬头：上海某某贸易有限公司", 10, ""),
    ("送人的礼物，请附贺卡：生日快乐", 5, "review"),
    ("颜色要黑色的，别发错了", 4, ""),
)
REVIEW = "review"
PRICES_FEN = (990, 1990, 2990, 4590, 5900, 9900, 12800, 19900)
BASE_TIME = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
BEIJING = timedelta(hours=8)


def shop_of(platform: str) -> str:
    """The benchmark's shop on a platform."""
    return f"bench-{platform}-shop"


def catalogue(size: int) -> list[str]:
    """The internal SKUs every order draws from."""
    return [f"{SKU_PREFIX}{n:05d}" for n in range(size)]


def code_of(platform: str, sku: str) -> str:
    """A catalogue SKU's code on a platform (what its payloads carry)."""
    return f"{CODE_PREFIX[platform]}-{sku}"


@dataclass(frozen=True, slots=True)
class Line:
    """One generated order line."""

    sku: str
    quantity: int
    price_fen: int

    @property
    def total_fen(self) -> int:
        """Price times quantity (the benchmark gives no per-line discounts)."""
        return self.price_fen * self.quantity


@dataclass(frozen=True, slots=True)
class Ingest:
    """One generated platform order and what the hub must make of it."""

    platform: str
    shop_id: str
    platform_order_id: str
    payload: str
    paid: bool
    #: The queue it must wait in: "" (automatic), "priority" or "review".
    queue: str
    lines: tuple[Line, ...]

    @property
    def holds(self) -> bool:
        """Whether its stock must be held: paid, and not waiting for a person."""
        return self.paid and self.queue != REVIEW

    @property
    def key(self) -> tuple[str, str, str]:
        """Its platform identity."""
        return (self.platform, self.shop_id, self.platform_order_id)


def held_units(orders: Iterable[Ingest]) -> Counter[str]:
    """Units each SKU must have reserved once ``orders`` were ingested (each once)."""
    units: Counter[str] = Counter()
    for order in orders:
        if order.holds:
            for line in order.lines:
                units[line.sku] += line.quantity
    return units


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _yuan_number(fen: int) -> float:
    return fen / 100  # PDD and WooCommerce write some amounts as JSON numbers


def _beijing(moment: datetime) -> str:
    return (moment + BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _utc_iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class Generator:
    """Makes distinct platform orders from the fixtures, reproducibly from a seed."""

    def __init__(self, skus: list[str], seed: int = 20261125) -> None:
        self.skus = skus
        self.rng = random.Random(seed)
        self._templates = {
            platform: json.loads((FIXTURES / name).read_text(encoding="utf-8"))
            for platform, name in TEMPLATES.items()
        }
        self._notes = [n for n, _, _ in NOTES]
        self._note_weights = [w for _, w, _ in NOTES]
        self._queues = {n: q for n, _, q in NOTES}

    def mixed(self, count: int, first: int, paid_share: float = 0.9) -> list[Ingest]:
        """``count`` orders over every platform (weighted by ``MIX``), numbered from ``first``."""
        platforms = self.rng.choices(list(MIX), weights=list(MIX.values()), k=count)
        return [self.one(p, first + i, paid_share) for i, p in enumerate(platforms)]

    def for_platform(self, platform: str, count: int, first: int = 0) -> list[Ingest]:
        """``count`` orders of one platform, numbered from ``first``."""
        return [self.one(platform, first + i) for i in range(count)]

    def one(self, platform: str, number: int, paid_share: float = 0.9) -> Ingest:
        """Order ``number`` of ``platform``: its payload and what it must do."""
        rng = self.rng
        paid = platform in ALWAYS_PAID or rng.random() < paid_share
        note = rng.choices(self._notes, weights=self._note_weights)[0]
        count = rng.choices((1, 2, 3), weights=(60, 30, 10))[0]
        lines = tuple(
            Line(sku, rng.choices((1, 2, 3), weights=(75, 20, 5))[0], rng.choice(PRICES_FEN))
            for sku in rng.sample(self.skus, count)
        )
        shipping = rng.choice((0, 0, 600, 1000))
        created = BASE_TIME + timedelta(seconds=number % 86_400)
        build = getattr(self, f"_{platform}")
        order_id, body = build(
            copy.deepcopy(self._templates[platform]), number, paid, note, lines, shipping, created
        )
        payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return Ingest(
            platform, shop_of(platform), order_id, payload, paid, self._queues[note], lines
        )

    # Each builder fills a copy of the platform's sample: (platform order id, payload).

    def _taobao(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        trade = body["trade_fullinfo_get_response"]["trade"]
        tid = 2_300_000_000_000_000_000 + n
        status = "WAIT_SELLER_SEND_GOODS" if paid else "WAIT_BUYER_PAY"
        goods = sum(ln.total_fen for ln in lines)
        sample = trade["orders"]["order"][0]
        trade.update(
            tid=tid,
            tid_str=str(tid),
            status=status,
            created=_beijing(created),
            modified=_beijing(created + timedelta(minutes=4)),
            buyer_message=note,
            total_fee=_yuan(goods),
            discount_fee="0.00",
            post_fee=_yuan(shipping),
            payment=_yuan(goods + shipping),
            promotion_details={"promotion_detail": []},
        )
        if paid:
            trade["pay_time"] = _beijing(created + timedelta(seconds=23))
        else:
            trade.pop("pay_time", None)
        subs = []
        for i, ln in enumerate(lines):
            oid = 4_100_000_000_000_000_000 + n * 10 + i
            sub = dict(sample)
            sub.pop("refund_id", None)
            sub.update(
                oid=oid,
                oid_str=str(oid),
                sku_id=str(5_000_000_000 + int(ln.sku.removeprefix(SKU_PREFIX))),
                outer_sku_id=code_of("taobao", ln.sku),
                title=f"商品 {ln.sku}",
                num=ln.quantity,
                price=_yuan(ln.price_fen),
                total_fee=_yuan(ln.total_fen),
                payment=_yuan(ln.total_fen),
                part_mjz_discount="0.00",
                divide_order_fee=_yuan(ln.total_fen),
                status=status,
                refund_status="NO_REFUND",
            )
            subs.append(sub)
        trade["orders"] = {"order": subs}
        return str(tid), body

    def _jd(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        info = body["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]
        order_id = str(310_000_000_000 + n)
        goods = sum(ln.total_fen for ln in lines)
        sample = info["itemInfoList"][0]
        info.update(
            orderId=order_id,
            orderState="WAIT_SELLER_STOCK_OUT",
            orderRemark=note,
            orderStartTime=_beijing(created),
            paymentConfirmTime=_beijing(created + timedelta(seconds=23)),
            modified=_beijing(created + timedelta(minutes=4)),
            orderTotalPrice=_yuan(goods),
            sellerDiscount="0.00",
            orderSellerPrice=_yuan(goods),
            freightPrice=_yuan(shipping),
            orderPayment=_yuan(goods + shipping),
            couponDetailList=[],
            itemInfoList=[
                dict(
                    sample,
                    skuId=str(10_054_000_000_000 + int(ln.sku.removeprefix(SKU_PREFIX))),
                    outerSkuId=code_of("jd", ln.sku),
                    skuName=f"商品 {ln.sku}",
                    jdPrice=_yuan(ln.price_fen),
                    itemTotal=str(ln.quantity),
                )
                for ln in lines
            ],
        )
        return order_id, body

    def _douyin(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        detail = body["data"]["shop_order_detail"]
        order_id = str(6_900_000_000_000_000_000 + n)
        goods = sum(ln.total_fen for ln in lines)
        status = 2 if paid else 1
        stamp = int(created.timestamp())
        sample = detail["sku_order_list"][0]
        detail.update(
            order_id=order_id,
            order_status=status,
            order_status_desc="备货中" if paid else "待支付",
            main_status=status,
            main_status_desc="备货中" if paid else "待支付",
            create_time=stamp,
            update_time=stamp + 240,
            buyer_words=note,
            order_amount=goods,
            post_amount=shipping,
            promotion_amount=0,
            promotion_shop_amount=0,
            pay_amount=goods + shipping,
        )
        if paid:
            detail["pay_time"] = stamp + 23
        else:
            detail.pop("pay_time", None)
        items = []
        for i, ln in enumerate(lines):
            item = dict(sample)
            item.update(
                order_id=str(6_950_000_000_000_000_000 + n * 10 + i),
                parent_order_id=order_id,
                order_status=status,
                order_status_desc=detail["order_status_desc"],
                product_name=f"商品 {ln.sku}",
                sku_id=3_410_716_000_000_000 + int(ln.sku.removeprefix(SKU_PREFIX)),
                code=code_of("douyin", ln.sku),
                out_sku_id=code_of("douyin", ln.sku),
                item_num=ln.quantity,
                origin_amount=ln.price_fen,
                sum_amount=ln.total_fen,
                order_amount=ln.total_fen,
                promotion_amount=0,
                pay_amount=ln.total_fen,
                after_sale_info={"after_sale_status": 0, "after_sale_type": 0, "refund_status": 0},
            )
            items.append(item)
        detail["sku_order_list"] = items
        return order_id, body

    def _pdd(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        info = body["order_info_get_response"]["order_info"]
        order_sn = f"261125-{n:015d}"
        goods = sum(ln.total_fen for ln in lines)
        sample = info["item_list"][0]
        info.update(
            order_sn=order_sn,
            order_status=1,
            confirm_status=1 if paid else 0,
            after_sales_status=0,
            created_time=_beijing(created),
            updated_at=_beijing(created + timedelta(minutes=4)),
            buyer_memo=note,
            goods_amount=_yuan_number(goods),
            seller_discount=0.0,
            discount_amount=0.0,
            postage=_yuan_number(shipping),
            pay_amount=_yuan_number(goods + shipping),
            item_list=[
                dict(
                    sample,
                    sku_id=str(1_000_000_000 + int(ln.sku.removeprefix(SKU_PREFIX))),
                    outer_id=code_of("pdd", ln.sku),
                    goods_name=f"商品 {ln.sku}",
                    goods_count=ln.quantity,
                    goods_price=_yuan_number(ln.price_fen),
                )
                for ln in lines
            ],
        )
        if paid:
            info["pay_time"] = _beijing(created + timedelta(seconds=23))
            info["confirm_time"] = _beijing(created + timedelta(seconds=24))
        else:
            info.pop("pay_time", None)
            info.pop("confirm_time", None)
        return order_sn, body

    def _shopify(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        order_id = 6_100_000_000_000 + n
        goods = sum(ln.total_fen for ln in lines)
        sample = body["line_items"][0]
        body.update(
            id=order_id,
            admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
            name=f"#{n}",
            order_number=n,
            created_at=_utc_iso(created) + "Z",
            processed_at=_utc_iso(created + timedelta(seconds=23)) + "Z",
            updated_at=_utc_iso(created + timedelta(minutes=4)) + "Z",
            financial_status="paid" if paid else "pending",
            note=note or None,
            note_attributes=[],
            total_line_items_price=_yuan(goods),
            total_discounts="0.00",
            subtotal_price=_yuan(goods),
            total_price=_yuan(goods + shipping),
            discount_codes=[],
            discount_applications=[],
            shipping_lines=[
                {"title": "SF Express", "code": "SF", "price": _yuan(shipping)},
            ],
            line_items=[
                dict(
                    sample,
                    id=14_000_000_000_000 + n * 10 + i,
                    variant_id=45_012_000_000_000 + int(ln.sku.removeprefix(SKU_PREFIX)),
                    sku=code_of("shopify", ln.sku),
                    title=f"Item {ln.sku}",
                    name=f"Item {ln.sku}",
                    quantity=ln.quantity,
                    price=_yuan(ln.price_fen),
                    total_discount="0.00",
                    discount_allocations=[],
                )
                for i, ln in enumerate(lines)
            ],
        )
        return str(order_id), body

    def _woocommerce(
        self,
        body: Any,
        n: int,
        paid: bool,
        note: str,
        lines: tuple[Line, ...],
        shipping: int,
        created: datetime,
    ) -> tuple[str, Any]:
        order_id = 1_000_000 + n
        goods = sum(ln.total_fen for ln in lines)
        sample = body["line_items"][0]
        local = created + timedelta(hours=8)
        body.update(
            id=order_id,
            number=str(order_id),
            order_key=f"wc_order_{n:013x}",
            status="processing" if paid else "pending",
            date_created=_utc_iso(local),
            date_created_gmt=_utc_iso(created),
            date_modified=_utc_iso(local + timedelta(minutes=4)),
            date_modified_gmt=_utc_iso(created + timedelta(minutes=4)),
            shipping_total=_yuan(shipping),
            total=_yuan(goods + shipping),
            customer_note=note,
            line_items=[
                dict(
                    sample,
                    id=n * 10 + i,
                    name=f"Item {ln.sku}",
                    product_id=90_000 + int(ln.sku.removeprefix(SKU_PREFIX)),
                    variation_id=0,
                    quantity=ln.quantity,
                    subtotal=_yuan(ln.total_fen),
                    total=_yuan(ln.total_fen),
                    sku=code_of("woocommerce", ln.sku),
                    price=_yuan_number(ln.price_fen),
                )
                for i, ln in enumerate(lines)
            ],
            shipping_lines=[dict(body["shipping_lines"][0], total=_yuan(shipping))],
        )
        if paid:
            body["date_paid"] = _utc_iso(local + timedelta(seconds=23))
            body["date_paid_gmt"] = _utc_iso(created + timedelta(seconds=23))
        else:
            body["date_paid"] = None
            body["date_paid_gmt"] = None
        return str(order_id), body


def self_check(orders: Iterable[Ingest]) -> None:
    """Translate each generated order once: the adapters must read what was meant.

    Guards the generator (not the hub): the platform order id, paid or not, and every
    line's SKU code and quantity must come out of the adapter as generated, and the
    hub's note rules (data that may change) must still put each note in the queue
    ``NOTES`` says.
    """
    paid_states = {OrderStatus.PAID}
    for order in orders:
        got = registry.translate(order.platform, order.payload, order.shop_id)
        lines = [(ln.platform_sku_id, ln.quantity) for ln in got.lines]
        want = [(code_of(order.platform, ln.sku), ln.quantity) for ln in order.lines]
        if (
            got.platform_order_id != order.platform_order_id
            or (got.status in paid_states) != order.paid
            or lines != want
            or any(ln.after_sale_type.value != "NONE" for ln in got.lines)
        ):
            raise AssertionError(
                f"generator: {order.platform} order {order.platform_order_id} translates to "
                f"{got.platform_order_id}, {got.status.value}, {lines} (meant paid="
                f"{order.paid}, {want})"
            )
        queue = place(got, tags_from_note(got.buyer_note), []).queue
        if queue != order.queue:
            raise AssertionError(
                f"generator: the note {got.buyer_note!r} now puts an order in queue {queue!r}, "
                f"NOTES says {order.queue!r}; update NOTES in bench/ingest_orders.py"
            )
