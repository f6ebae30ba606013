"""The ingestion baseline: what a typical OMS does with an incoming platform order.

Straight on PostgreSQL, no hub: translate the payload with the same adapters, then one
transaction per order on a pooled psycopg 3 async connection — ``SELECT`` the stored order
by (platform, shop, platform order id), and if it is new: ``SELECT`` the shop's SKU
mappings of its lines, ``INSERT`` the order (its JSON document), and if it is paid and no
person has to look at it, ``SELECT … FOR UPDATE`` the stock rows (in SKU order, so orders
sharing SKUs cannot deadlock), ``UPDATE`` their ``reserved`` and ``INSERT`` the
reservation lines; commit. Tags and the queue come from the hub's own pure rules
(:mod:`hub.domain.intake`), so both sides decide the same. Its tables (``ib_*``) live in
the benchmark database next to the hub's.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import cast

import psycopg

from adapters import registry
from bench.baseline import ConnectionPool
from bench.ingest_orders import PLATFORMS, WAREHOUSE_ID, Ingest, code_of, shop_of
from hub.domain.intake import REVIEW, holds_stock, place, tags_from_note
from hub.domain.lifecycle import lines_to_hold
from hub.store.orders import to_json

SCHEMA = (
    "DROP TABLE IF EXISTS ib_reservations, ib_orders, ib_stock, ib_platform_skus",
    "CREATE TABLE ib_orders (id bigserial PRIMARY KEY, platform text NOT NULL, "
    "shop_id text NOT NULL, platform_order_id text NOT NULL, status text NOT NULL, "
    "queue text NOT NULL, tags jsonb NOT NULL, document jsonb NOT NULL, "
    "ingested_at timestamptz NOT NULL DEFAULT now(), "
    "UNIQUE (platform, shop_id, platform_order_id))",
    "CREATE TABLE ib_platform_skus (platform text, shop_id text, platform_sku text, "
    "sku text NOT NULL, PRIMARY KEY (platform, shop_id, platform_sku))",
    "CREATE TABLE ib_stock (sku text, warehouse_id text, on_hand integer NOT NULL, "
    "reserved integer NOT NULL DEFAULT 0, PRIMARY KEY (sku, warehouse_id))",
    "CREATE TABLE ib_reservations (order_id bigint NOT NULL REFERENCES ib_orders (id), "
    "line_no integer NOT NULL, sku text NOT NULL, warehouse_id text NOT NULL, "
    "quantity integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), "
    "PRIMARY KEY (order_id, line_no))",
)
_FIND = "SELECT id FROM ib_orders WHERE platform = %s AND shop_id = %s AND platform_order_id = %s"
_MAP = (
    "SELECT platform_sku, sku FROM ib_platform_skus "
    "WHERE platform = %s AND shop_id = %s AND platform_sku = ANY(%s)"
)
_INSERT = (
    "INSERT INTO ib_orders (platform, shop_id, platform_order_id, status, queue, tags, "
    "document) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id"
)
_LOCK = (
    "SELECT sku, on_hand - reserved FROM ib_stock WHERE warehouse_id = %s AND sku = ANY(%s) "
    "ORDER BY sku FOR UPDATE"
)
_TAKE = (
    "UPDATE ib_stock SET reserved = reserved + q.n FROM unnest(%s::text[], %s::int[]) AS q(sku, n) "
    "WHERE ib_stock.warehouse_id = %s AND ib_stock.sku = q.sku"
)
_RESERVE = (
    "INSERT INTO ib_reservations (order_id, line_no, sku, warehouse_id, quantity) "
    "SELECT %s, q.no, q.sku, %s, q.n FROM unnest(%s::text[], %s::int[]) WITH ORDINALITY "
    "AS q(sku, n, no)"
)
_SHORT = "UPDATE ib_orders SET queue = 'review' WHERE id = %s"

Conn = psycopg.AsyncConnection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class Answer:
    """What ingesting one order did: a repeat or not, and the queue it waits in."""

    duplicate: bool
    queue: str


async def setup(conninfo: str, skus: list[str], on_hand: int) -> None:
    """Create the baseline's tables, its SKU mappings and its stock (not timed)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        for statement in SCHEMA:
            await conn.execute(statement)
        async with conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO ib_platform_skus VALUES (%s, %s, %s, %s)",
                [(p, shop_of(p), code_of(p, sku), sku) for p in PLATFORMS for sku in skus],
            )
            await cur.executemany(
                "INSERT INTO ib_stock (sku, warehouse_id, on_hand) VALUES (%s, %s, %s)",
                [(sku, WAREHOUSE_ID, on_hand) for sku in skus],
            )
        await conn.execute("ANALYZE ib_platform_skus")
        await conn.execute("ANALYZE ib_stock")


async def ingest(pool: ConnectionPool, platform: str, shop_id: str, payload: str) -> Answer:
    """Translate and store one platform order, holding its stock if it is paid."""
    order = registry.translate(platform, payload, shop_id)
    codes = sorted({line.platform_sku_id for line in order.lines})
    async with pool.connection() as conn, conn.transaction():
        cur = await conn.execute(_FIND, (platform, shop_id, order.platform_order_id))
        if await cur.fetchone() is not None:
            return Answer(True, "")
        cur = await conn.execute(_MAP, (platform, shop_id, codes))
        mapped = dict(cast(list[tuple[str, str]], await cur.fetchall()))
        lines = tuple(replace(ln, sku=mapped.get(ln.platform_sku_id, "")) for ln in order.lines)
        order = replace(order, lines=lines)
        tags = tags_from_note(order.buyer_note)
        placement = place(order, tags, [c for c in codes if c not in mapped])
        cur = await conn.execute(
            _INSERT,
            (
                platform,
                shop_id,
                order.platform_order_id,
                order.status.value,
                placement.queue,
                json.dumps(tags),
                to_json(order),
            ),
        )
        row = await cur.fetchone()
        if row is None:  # another copy won the race: a repeat
            return Answer(True, "")
        if not holds_stock(order.status) or placement.queue == REVIEW:
            return Answer(False, placement.queue)
        want: Counter[str] = Counter()
        for sku, quantity in lines_to_hold(order):
            want[sku] += quantity
        skus = sorted(want)
        cur = await conn.execute(_LOCK, (WAREHOUSE_ID, skus))
        available = dict(cast(list[tuple[str, int]], await cur.fetchall()))
        if any(available.get(sku, 0) < n for sku, n in want.items()):
            await conn.execute(_SHORT, (row[0],))
            return Answer(False, REVIEW)
        quantities = [want[sku] for sku in skus]
        await conn.execute(_TAKE, (skus, quantities, WAREHOUSE_ID))
        await conn.execute(_RESERVE, (row[0], WAREHOUSE_ID, skus, quantities))
    return Answer(False, placement.queue)


@dataclass(frozen=True, slots=True)
class Books:
    """The baseline's tables after a run."""

    orders: Counter[str]
    reserved: dict[str, int]
    reserved_lines: int


async def books(conninfo: str) -> Books:
    """Orders per platform, reserved units per SKU, units in reservation lines."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cur = await conn.execute("SELECT platform, count(*) FROM ib_orders GROUP BY platform")
        orders = Counter(dict(cast(list[tuple[str, int]], await cur.fetchall())))
        cur = await conn.execute(
            "SELECT sku, reserved FROM ib_stock WHERE warehouse_id = %s", (WAREHOUSE_ID,)
        )
        reserved = dict(cast(list[tuple[str, int]], await cur.fetchall()))
        cur = await conn.execute("SELECT coalesce(sum(quantity), 0) FROM ib_reservations")
        row = await cur.fetchone()
    return Books(orders, reserved, int(cast(int, row[0])) if row else 0)


def expected_orders(orders: Iterable[Ingest]) -> Counter[str]:
    """Stored orders per platform for these (distinct) orders."""
    return Counter(o.platform for o in orders)
