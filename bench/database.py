"""The benchmark's PostgreSQL database: create it fresh, reset it, check its books."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url

from bench.workload import WAREHOUSE_ID, Result, Workload
from hub.store.db import upgrade

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/orderhub_bench"
URL_ENV = "ORDERHUB_BENCH_DATABASE_URL"
_PROTECTED = {"postgres", "template0", "template1"}
_DATA_TABLES = (
    "stock_ledger",
    "reservation_lines",
    "reservations",
    "stock_levels",
    "platform_skus",
    "skus",
    "warehouses",
)


def bench_url(database: str | None = None) -> str:
    """The SQLAlchemy URL of the benchmark database (psycopg 3 driver).

    ``database`` replaces the default database name (not one set in the environment),
    so benchmarks that may run at the same time do not drop each other's database.
    """
    configured = os.environ.get(URL_ENV)
    url = make_url(configured or DEFAULT_URL)
    if database and not configured:
        url = url.set(database=database)
    if url.get_backend_name() != "postgresql":
        raise SystemExit(f"{URL_ENV} must point at PostgreSQL, got {url.get_backend_name()}")
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same database as a libpq connection string, for psycopg directly."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _admin_url(url: URL) -> str:
    return url.set(database="postgres").render_as_string(hide_password=False)


def recreate(url: str) -> None:
    """Drop the benchmark database, create it again and migrate it to the newest schema."""
    parsed = make_url(url)
    name = parsed.database or ""
    if not name or name in _PROTECTED:
        raise SystemExit(f"refusing to drop database {name!r}; use a dedicated benchmark database")
    admin = create_engine(_admin_url(parsed), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            quoted = conn.dialect.identifier_preparer.quote(name)
            conn.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()
    upgrade(url)


def reset(engine: Engine) -> None:
    """Empty every data table (the schema stays), so the next engine starts clean."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_DATA_TABLES)} RESTART IDENTITY"))


@dataclass(frozen=True, slots=True)
class Books:
    """The database's view of one workload's SKUs after a run."""

    reserved: int
    held_line_units: int
    held_reservations: int
    min_available: int
    min_reserved: int


def books(engine: Engine, sku_prefix: str) -> Books:
    """Sum the stock and the live holds of the SKUs starting with ``sku_prefix``."""
    like = sku_prefix.replace("_", r"\_").replace("%", r"\%") + "%"
    with engine.connect() as conn:
        levels = conn.execute(
            text(
                "SELECT coalesce(sum(reserved), 0), coalesce(min(on_hand - reserved), 0), "
                "coalesce(min(reserved), 0) FROM stock_levels WHERE sku LIKE :p"
            ),
            {"p": like},
        ).one()
        lines = conn.execute(
            text(
                "SELECT coalesce(sum(quantity), 0) FROM reservation_lines "
                "WHERE sku LIKE :p AND status = 'HELD'"
            ),
            {"p": like},
        ).scalar_one()
        held = conn.execute(
            text("SELECT count(*) FROM reservations WHERE primary_sku LIKE :p AND status = 'HELD'"),
            {"p": like},
        ).scalar_one()
    return Books(int(levels[0]), int(lines), int(held), int(levels[1]), int(levels[2]))


def check_books(engine: Engine, result: Result) -> None:
    """The database agrees with what clients were told; nothing is negative."""
    w = result.workload
    b = books(engine, w.sku_prefix)
    name = f"{result.engine}/{w.scenario}"
    problems = []
    if b.reserved != result.tally.granted_units:
        problems.append(f"reserved {b.reserved} != granted {result.tally.granted_units}")
    if b.held_line_units != result.tally.granted_units:
        problems.append(f"held line units {b.held_line_units} != granted")
    if b.held_reservations != result.tally.reserved:
        problems.append(f"held reservations {b.held_reservations} != {result.tally.reserved}")
    if b.min_available < 0 or b.min_reserved < 0:
        problems.append(
            f"negative stock: min available {b.min_available}, min reserved {b.min_reserved}"
        )
    if problems:
        raise AssertionError(f"{name}: database books disagree: " + "; ".join(problems))
    result.checked = (
        f"DB: reserved {b.reserved} = granted, {b.held_reservations} held reservations, "
        f"min available {b.min_available}"
    )


def insert_master_data(engine: Engine, workloads: list[Workload], *, with_stock: bool) -> None:
    """Store the warehouse and every workload's SKUs (and, if asked, their stock rows)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    skus = {sku for w in workloads for sku in w.stock}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO warehouses (warehouse_id, name, province, city, district, "
                "daily_capacity, updated_at) VALUES (:w, 'Flash-sale warehouse', '上海市', "
                "'上海市', '青浦区', 100000, :now) ON CONFLICT DO NOTHING"
            ),
            {"w": WAREHOUSE_ID, "now": now},
        )
        conn.execute(
            text(
                "INSERT INTO skus (sku, name, category, weight_grams, safety_stock, updated_at) "
                "VALUES (:sku, :sku, 'flash-sale', 250, 0, :now)"
            ),
            [{"sku": sku, "now": now} for sku in sorted(skus)],
        )
        if with_stock:
            conn.execute(
                text(
                    "INSERT INTO stock_levels (sku, warehouse_id, on_hand, reserved) "
                    "VALUES (:sku, :w, :n, 0)"
                ),
                [
                    {"sku": sku, "w": WAREHOUSE_ID, "n": n}
                    for w in workloads
                    for sku, n in w.stock.items()
                ],
            )
