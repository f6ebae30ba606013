"""History import into SQLite and PostgreSQL: whole orders, once, resumable, holding no stock.

Each test imports real export files (``tests/fixtures/imports``) or a generated one into a
fresh, migrated database through the real order store. Crashes are real: a transaction that
raises before its commit, a process that exits mid-batch.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DataError

import hub.store.orders as order_store
from adapters.history import Code, OpenOrders, Options
from hub.api.orders import order_message
from hub.cli import main
from hub.domain.intake import REVIEW, Placement
from hub.domain.orders import OrderStatus
from hub.importing import Importer, ImportJob, Summary, open_database
from hub.store import schema
from hub.store.access import AccessStore, AuditQuery
from hub.store.db import make_engine
from hub.store.master_data import MasterData, PlatformSku, Sku
from hub.store.orders import OrderStore
from hub.store.routing import RoutingStore
from tests.conftest import BACKENDS

FIXTURES = Path(__file__).parents[1] / "fixtures" / "imports"
NOW = datetime.now(UTC)
TABLES = ("orders", "order_events", "outbox", "reservations", "reservation_lines", "stock_ledger")

#: What the Taobao fixture holds: orders imported (their rows), rows rejected and why.
TAOBAO_IMPORTED = {
    "T202305010001": [2],
    "T202305010002": [3, 4],
    "T202305020003": [5],
    "T202305020004": [6],
    "T202305030005": [7],
    "T202305060012": [16],
}
TAOBAO_REJECTED = {
    (9, "手机", "invalid"),
    (10, "付款时间", "invalid"),
    (11, "单价", "invalid"),
    (11, "实付金额", "negative"),
    (12, "", "with_order"),
    (13, "订单状态", "conflict"),
    (14, "收货人", "missing"),
    (15, "订单状态", "open_order"),
    (17, "订单号", "missing"),
    (18, "实付金额", "totals"),
}


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, new_database: Callable[[str], str]) -> str:
    """A fresh, migrated database of each backend."""
    return new_database(request.param)


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    engine = make_engine(database)
    yield engine
    engine.dispose()


def copy_fixture(name: str, into: Path) -> Path:
    """A fixture in a scratch directory (the report is written beside it)."""
    target = into / name
    shutil.copyfile(FIXTURES / name, target)
    return target


def job(path: Path, tmp_path: Path, **changes: Any) -> ImportJob:
    return ImportJob(
        path=path,
        options=changes.pop("options", Options(now=NOW)),
        checkpoints=tmp_path / "data" / "imports",
        actor="import:test-operator",
        **changes,
    )


def run(url: str, import_job: ImportJob) -> Summary:
    """One import as the command runs it: open the database, import, close."""
    engine, no_database = open_database(url, dry_run=import_job.dry_run)
    try:
        return Importer(import_job, engine).run(no_database)
    finally:
        if engine is not None:
            engine.dispose()


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(
                conn.execute(
                    select(func.count()).select_from(schema.metadata.tables[name])
                ).scalar_one()
            )
            for name in TABLES
        }


def write_export(path: Path, orders: int, *, start: int = 0) -> None:
    """A Taobao-style export of ``orders`` delivered orders, one row per line (1-3 lines)."""
    names = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴刚"]
    places = [
        ("广东省", "深圳市", "南山区", "科技园南区深南大道9988号"),
        ("浙江省", "杭州市", "西湖区", "文三路478号华星时代广场A座"),
        ("北京", "", "海淀区", "中关村大街27号"),
        ("四川省", "成都市", "武侯区", "天府大道中段1号"),
    ]
    skus = [("TEE-01-BLK-L", "纯棉T恤 黑色 L", "59.90"), ("MUG-03-WHT", "陶瓷马克杯 白", "35.00")]
    skus.append(("PB-04-20K", "充电宝 20000mAh", "129.00"))
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        header = "订单号,平台,店铺,订单状态,付款时间,收货人,手机,省,市,区,详细地址,子订单号,"
        header += "商家编码,商品名称,数量,单价,运费,实付金额"
        out.writerow(header.split(","))
        paid = datetime(2023, 1, 1, 9, 0)
        for n in range(start, start + orders):
            lines = [skus[(n + i) % 3] for i in range(1 + n % 3)]
            total = sum(int(price.replace(".", "")) for _, _, price in lines)
            province, city, district, address = places[n % len(places)]
            for i, (sku, title, price) in enumerate(lines, start=1):
                out.writerow(
                    [
                        f"TB{n:08}", "淘宝", "tb-flagship", "交易成功",
                        (paid + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S"),
                        names[n % len(names)], f"139{n:08}", province, city, district,
                        address, f"TB{n:08}-{i}", sku, title, "1", price, "0.00",
                        f"{total / 100:.2f}",
                    ]
                )  # fmt: skip


def report_rows(summary: Summary) -> list[dict[str, str]]:
    assert summary.report is not None
    with summary.report.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------- importing


def test_an_export_becomes_ordinary_orders_that_hold_no_stock(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    master = MasterData(engine)
    master.upsert_sku(Sku("TEE-01-BLK-L", "纯棉T恤 黑色 L", "apparel", 220, 0))
    master.map_platform_sku(PlatformSku("taobao", "tb-flagship", "TEE-01-BLK-L", "TEE-01-BLK-L"))
    path = copy_fixture("taobao_history.csv", tmp_path)

    summary = run(database, job(path, tmp_path))

    c = summary.counts
    assert (c.rows, c.orders) == (17, 13)
    assert (c.imported_orders, c.imported_rows) == (6, 7)
    assert (c.rejected_orders, c.rejected_rows, c.repeated_rows) == (7, 9, 1)
    assert c.rows == c.imported_rows + c.in_hub_rows + c.rejected_rows + c.repeated_rows
    assert summary.exit_code == 1 and summary.finished
    store = OrderStore(engine)
    imported = store.listing(tag="imported")
    assert sorted(o.order.platform_order_id for o in imported) == sorted(TAOBAO_IMPORTED)
    two_lines = store.find("taobao", "tb-flagship", "T202305010002")
    assert two_lines is not None and two_lines.queue == ""
    assert [(ln.platform_sku_id, ln.sku) for ln in two_lines.order.lines] == [
        ("MUG-03-WHT", ""),  # no mapping: left empty, as intake leaves it
        ("TEE-01-BLK-L", "TEE-01-BLK-L"),
    ]
    assert two_lines.order.recipient.phone == "13912345679"
    history = store.history(two_lines.order_id)
    assert [(e.kind, e.actor) for e in history] == [
        ("received", "platform:taobao"),
        ("imported", "import:test-operator"),
    ]
    assert history[1].details["by"] == "import:test-operator"
    assert history[1].details["rows"] == [3, 4]
    assert history[1].details["sha256"] == summary.sha256
    assert "taobao_history.csv" in history[1].reason
    # GetOrder's message, like any order's.
    message = order_message(two_lines)
    assert message.platform_order_id == "T202305010002" and "imported" in message.tags
    masked = store.find("taobao", "tb-flagship", "T202305020004")
    assert masked is not None and masked.order.recipient.pii_protected
    # History holds and takes no stock, and routing has nothing to pick up.
    after = counts(engine)
    assert (after["reservations"], after["reservation_lines"], after["stock_ledger"]) == (0, 0, 0)
    assert RoutingStore(engine).unrouted(["PAID", "ALLOCATED", "ON_HOLD"], REVIEW, 100) == []
    assert after["order_events"] == 2 * len(TAOBAO_IMPORTED)


def test_running_the_same_file_again_imports_nothing_new(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    path = copy_fixture("taobao_history.csv", tmp_path)
    first = run(database, job(path, tmp_path))
    before = counts(engine)

    again = run(database, job(path, tmp_path))

    assert (again.counts.imported_orders, again.counts.in_hub_orders) == (0, 6)
    assert again.counts.in_hub_rows == first.counts.imported_rows
    assert counts(engine) == before


def test_a_dry_run_writes_nothing_and_says_what_would_happen(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    path = copy_fixture("taobao_history.csv", tmp_path)
    empty = counts(engine)

    dry = run(database, job(path, tmp_path, dry_run=True))

    assert dry.dry_run and dry.counts.imported_orders == 6 and dry.counts.rejected_rows == 9
    assert counts(engine) == empty
    assert not (tmp_path / "data" / "imports").exists()
    assert {(int(r["row"]), r["field"], r["problem"]) for r in report_rows(dry)} == TAOBAO_REJECTED
    run(database, job(path, tmp_path))
    after_import = counts(engine)

    second = run(database, job(path, tmp_path, dry_run=True))

    assert (second.counts.imported_orders, second.counts.in_hub_orders) == (0, 6)
    assert counts(engine) == after_import


def test_a_dry_run_does_not_create_a_database(tmp_path: Path) -> None:
    path = copy_fixture("taobao_history.csv", tmp_path)
    missing = tmp_path / "nowhere" / "orderhub.db"

    dry = run(f"sqlite:///{missing}", job(path, tmp_path, dry_run=True))

    assert dry.counts.imported_orders == 6 and "no database" in dry.no_database
    assert not missing.exists()


def test_rejected_rows_are_reported_with_their_row_numbers(database: str, tmp_path: Path) -> None:
    path = copy_fixture("taobao_history.csv", tmp_path)
    report = tmp_path / "reports" / "rejected.csv"

    summary = run(database, job(path, tmp_path, report=report))

    assert summary.report == report
    rows = report_rows(summary)
    assert {(int(r["row"]), r["field"], r["problem"]) for r in rows} == TAOBAO_REJECTED
    bad_phone = next(r for r in rows if r["row"] == "9")
    assert (bad_phone["order_id"], bad_phone["platform"]) == ("T202305040006", "taobao")
    assert "1391234567" in bad_phone["reason"]
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
    assert summary.counts.reasons[("手机", "invalid")] == 1


def test_gbk_csv_json_and_json_lines_exports_are_read(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    jd = run(
        database,
        job(
            copy_fixture("jd_erp_gbk.csv", tmp_path),
            tmp_path,
            options=Options(platform="jd", now=NOW),
        ),
    )
    douyin = run(database, job(copy_fixture("douyin_history.json", tmp_path), tmp_path))
    shopify = run(database, job(copy_fixture("shopify_history.jsonl", tmp_path), tmp_path))

    assert (jd.encoding, jd.counts.imported_orders, jd.counts.rejected_rows) == ("gb18030", 3, 1)
    assert (douyin.counts.imported_orders, douyin.counts.repeated_rows) == (2, 1)
    assert shopify.counts.imported_orders == 2
    store = OrderStore(engine)
    landline = store.find("jd", "jd-pop-1", "JD88000002")
    assert landline is not None and landline.order.recipient.phone == "021-54321098"
    encrypted = store.find("douyin", "dy-1", "6920000000000000001")
    assert encrypted is not None and encrypted.order.recipient.pii_protected
    assert "直播间" in encrypted.tags
    in_fen = store.find("douyin", "dy-1", "6920000000000000003")
    assert in_fen is not None and in_fen.order.total_paid_fen == 2990
    dollars = store.find("shopify", "us-store", "5001")
    assert dollars is not None
    assert (dollars.order.currency, dollars.order.total_paid_fen) == ("USD", 4498)
    assert dollars.order.recipient.phone == "+14155552671"


def test_open_orders_can_wait_in_review_holding_nothing(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    options = Options(open_orders=OpenOrders.REVIEW, now=NOW)

    run(database, job(copy_fixture("douyin_history.json", tmp_path), tmp_path, options=options))

    waiting = OrderStore(engine).find("douyin", "dy-1", "6920000000000000005")
    assert waiting is not None
    assert (waiting.order.status, waiting.queue) == (OrderStatus.PAID, REVIEW)
    assert waiting.review_reasons[0].startswith("IMPORTED_OPEN")
    assert [e.kind for e in OrderStore(engine).history(waiting.order_id)] == [
        "received",
        "queued",
        "imported",
    ]
    assert RoutingStore(engine).unrouted(["PAID", "ALLOCATED"], REVIEW, 100) == []
    assert counts(engine)["reservations"] == 0


def test_a_later_copy_from_the_platform_moves_an_imported_order_on(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    run(database, job(copy_fixture("taobao_history.csv", tmp_path), tmp_path))
    store = OrderStore(engine)
    shipped = store.find("taobao", "tb-flagship", "T202305020003")
    assert shipped is not None and shipped.order.status is OrderStatus.SHIPPED
    newer = replace(
        shipped.order,
        status=OrderStatus.DELIVERED,
        platform_status="TRADE_FINISHED",
        updated_at=datetime(2023, 5, 6, tzinfo=UTC),
    )

    saved = store.save(newer, [], Placement("", ()))

    assert saved.stored.order_id == shipped.order_id and saved.duplicate
    assert (saved.stored.order.status, saved.stored.version) == (OrderStatus.DELIVERED, 2)
    kinds = [e.kind for e in store.history(shipped.order_id)]
    assert kinds == ["received", "imported", "delivered"]


# ---------------------------------------------------------------------- failures


def test_a_crash_mid_run_then_resume_gives_exactly_the_whole_file(
    database: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "orders.csv"
    write_export(path, 1_000)
    real = order_store.write_outbox
    calls = 0

    def power_cut(conn: Any, messages: Any) -> None:
        nonlocal calls
        calls += 1
        real(conn, messages)  # the batch's orders and events are written …
        if calls == 4:
            raise RuntimeError("power cut")  # … and never committed

    monkeypatch.setattr(order_store, "write_outbox", power_cut)
    with pytest.raises(RuntimeError, match="power cut"):
        run(database, job(path, tmp_path, batch_size=100))
    monkeypatch.undo()
    assert counts(engine)["orders"] == 300
    assert counts(engine)["order_events"] == 600  # whole orders only: no event without its order
    checkpoint = json.loads(next((tmp_path / "data" / "imports").glob("*.json")).read_text())
    assert checkpoint["done"] == 300

    resumed = run(database, job(path, tmp_path, batch_size=100, resume=True))

    assert resumed.resumed_from == 300 and resumed.finished
    assert (resumed.counts.imported_orders, resumed.counts.in_hub_orders) == (1_000, 0)
    assert resumed.counts.rows == resumed.counts.imported_rows == 1_999
    after = counts(engine)
    assert (after["orders"], after["order_events"]) == (1_000, 2_000)
    with engine.connect() as conn:
        ids = conn.execute(select(schema.orders.c.platform_order_id)).scalars().all()
        imported_events = conn.execute(
            select(func.count())
            .select_from(schema.order_events)
            .where(schema.order_events.c.kind == "imported")
        ).scalar_one()
    assert sorted(ids) == [f"TB{n:08}" for n in range(1_000)]
    assert imported_events == 1_000
    assert not list((tmp_path / "data" / "imports").glob("*.json"))  # finished: forgotten


def test_a_killed_process_resumes_from_its_checkpoint(
    database: str, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "orders.csv"
    write_export(path, 450)
    data_dir = tmp_path / "data"
    args = ["import", str(path), "--data-dir", str(data_dir), "--database-url", database]
    args += ["--batch-size", "100", "--no-progress"]
    dies_in_third_batch = textwrap.dedent(
        """
        import os, sys
        import hub.store.orders as orders
        real, calls = orders.write_outbox, []
        def dying(conn, messages):
            calls.append(1)
            real(conn, messages)
            if len(calls) == 3:
                os._exit(137)  # killed inside the transaction, before its commit
        orders.write_outbox = dying
        from hub.cli import main
        sys.exit(main(sys.argv[1:]))
        """
    )

    killed = subprocess.run(
        [sys.executable, "-c", dies_in_third_batch, *args], capture_output=True, timeout=120
    )

    assert killed.returncode == 137, killed.stderr.decode()
    assert counts(engine)["orders"] == 200
    assert main([*args, "--resume"]) == 0
    after = counts(engine)
    assert (after["orders"], after["order_events"]) == (450, 900)


def test_ctrl_c_stops_cleanly_and_the_command_resumes(
    database: str,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "orders.csv"
    write_export(path, 250)
    args = ["import", str(path), "--data-dir", str(tmp_path / "data"), "--database-url", database]
    args += ["--batch-size", "100", "--no-progress", "--json"]
    real = order_store.write_outbox
    calls = 0

    def interrupted(conn: Any, messages: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # Ctrl-C while the second batch is being written
            raise KeyboardInterrupt
        real(conn, messages)

    monkeypatch.setattr(order_store, "write_outbox", interrupted)
    assert main(args) == 130
    monkeypatch.undo()
    stopped = json.loads(capsys.readouterr().out)
    assert (stopped["finished"], stopped["counts"]["imported_orders"]) == (False, 100)
    assert counts(engine)["orders"] == 100

    assert main([*args, "--resume"]) == 0

    done = json.loads(capsys.readouterr().out)
    assert (done["finished"], done["resumed_from"]) == (True, 100)
    assert (done["counts"]["imported_orders"], done["counts"]["rejected_rows"]) == (250, 0)
    assert counts(engine)["orders"] == 250


def test_the_command_exits_1_when_rows_are_rejected_and_0_when_none_are(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean.csv"
    write_export(clean, 5)
    rejected = copy_fixture("taobao_history.csv", tmp_path)
    common = ["--data-dir", str(tmp_path / "data"), "--database-url", database, "--no-progress"]

    assert main(["import", str(clean), *common]) == 0
    assert main(["import", str(rejected), *common, "--dry-run"]) == 1
    assert main(["import", str(rejected), *common]) == 1
    assert main(["import", str(tmp_path / "missing.csv"), *common]) == 2
    runs = AccessStore(make_engine(database)).audit(AuditQuery(action="orderhub import"))
    # Each run that wrote is audited (the dry run and the failed one are not), newest first.
    assert [(e.target, e.outcome) for e in runs] == [
        ("import:taobao_history.csv", "REJECTED_ROWS"),
        ("import:clean.csv", "OK"),
    ]
    assert json.loads(runs[1].after)["counts"]["imported_orders"] == 5
    text = capsys.readouterr()
    assert "already in the hub" in text.out and "rejected rows with their reasons" in text.out
    assert "no such file" in text.err


def test_an_order_the_database_refuses_is_reported_and_the_rest_are_stored(
    database: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "orders.csv"
    write_export(path, 40)
    real = OrderStore.insert_many

    def refuses_one(self: OrderStore, new: Any) -> Any:
        if any(n.order.platform_order_id == "TB00000017" for n in new):
            raise DataError("INSERT …", {}, Exception("value too long for type character varying"))
        return real(self, new)

    monkeypatch.setattr(OrderStore, "insert_many", refuses_one)

    summary = run(database, job(path, tmp_path, batch_size=16))

    assert (summary.counts.imported_orders, summary.counts.rejected_orders) == (39, 1)
    assert counts(engine)["orders"] == 39
    refused = [r for r in report_rows(summary) if r["order_id"] == "TB00000017"]
    assert refused and refused[0]["problem"] == Code.DATABASE.value
    assert "value too long" in refused[0]["reason"]
