"""The hub's metrics without a hub: the guard's RPC series, reservation and hold-event
counters, refreshed sources, and the Grafana dashboard and alert rules against the
registry's own names."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import grpc
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub.api.guard import Guard
from hub.auth import Principal, Unauthenticated
from hub.consuming import Position
from hub.domain.inventory import (
    Changes,
    InsufficientStock,
    InvalidRequest,
    StockUndecided,
    UnknownSku,
)
from hub.domain.lanes import BreakerState, Lane, LaneHealth
from hub.domain.movements import HoldEvent, HoldEventKind
from hub.events import messages_for
from hub.inventory import ShardUnavailable
from hub.metrics import Backlog, HubMetrics, Sources, method_label, reserve_outcome
from hub.relay import Pending
from hub.store.inventory_map import MapRow
from orderhub.v1 import stock_pb2
from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "orderhub-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "orderhub-alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GET = "/orderhub.v1.StockService/GetAvailability"
RESERVE = "/orderhub.v1.StockService/Reserve"
WATCH = "/orderhub.v1.StockService/WatchAvailability"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: HubMetrics) -> Samples:
    text = generate_latest(metrics.registry).decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


# ------------------------------------------------------------------------ the guard


class Aborted(Exception):
    pass


class Context:
    """Enough of a grpc.aio servicer context for the guard."""

    def __init__(self, token: str = "") -> None:
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self._code = code
        raise Aborted(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> Any:
        return self._code if self._code is not None else 0  # what grpc.aio answers unset

    def time_remaining(self) -> float | None:
        return None


class Verifier:
    """Tokens are their roles."""

    async def check(self, authorization: str | None) -> Principal:
        if not authorization:
            raise Unauthenticated("no bearer token")
        role = authorization.removeprefix("Bearer ")
        return Principal(subject=f"test-{role}", role=role, token_id="t")


def wrapped(guard: Guard, method: str, handler: grpc.RpcMethodHandler) -> Any:
    """The guard's behaviour for ``method`` (unary or server streaming)."""
    out = guard.wrap(method, handler)
    return out.unary_unary or out.unary_stream


def make_guard(metrics: HubMetrics) -> Guard:
    return Guard(Verifier(), auditor=None, metrics=metrics.rpc)  # type: ignore[arg-type]


async def test_the_guard_counts_every_call_with_the_code_its_caller_got() -> None:
    metrics = HubMetrics(process=False)
    guard = make_guard(metrics)

    async def answer(_request: Any, _context: Any) -> stock_pb2.GetAvailabilityResponse:
        return stock_pb2.GetAvailabilityResponse()

    async def short(_request: Any, context: Any) -> stock_pb2.ReserveResponse:
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)  # as hub.api.errors.refuse does
        return stock_pb2.ReserveResponse()

    async def broken(_request: Any, _context: Any) -> NoReturn:
        raise RuntimeError("a bug")

    get = wrapped(guard, GET, grpc.unary_unary_rpc_method_handler(answer))
    await get(None, Context("admin"))
    await get(None, Context("admin"))
    with pytest.raises(Aborted):
        await get(None, Context())  # no token
    reserve = wrapped(guard, RESERVE, grpc.unary_unary_rpc_method_handler(short))
    await reserve(None, Context("integration"))
    with pytest.raises(Aborted):
        await reserve(None, Context("finance"))  # may not reserve
    failing = wrapped(guard, GET, grpc.unary_unary_rpc_method_handler(broken))
    with pytest.raises(RuntimeError):
        await failing(None, Context("ops"))

    found = samples(metrics)
    get_label, reserve_label = "StockService/GetAvailability", "StockService/Reserve"
    counts = {
        (labels[1][1], labels[0][1]): v
        for (name, labels), v in found.items()
        if name == "orderhub_rpc_requests_total"
    }
    assert counts == {
        (get_label, "OK"): 2,
        (get_label, "UNAUTHENTICATED"): 1,
        (get_label, "UNKNOWN"): 1,
        (reserve_label, "OK"): 0,
        (reserve_label, "FAILED_PRECONDITION"): 1,
        (reserve_label, "PERMISSION_DENIED"): 1,
    }
    assert value(found, "orderhub_rpc_duration_seconds_count", method=get_label) == 4
    assert value(found, "orderhub_rpc_duration_seconds_count", method=reserve_label) == 2
    fast = value(found, "orderhub_rpc_duration_seconds_bucket", method=get_label, le="0.01")
    assert fast == 4  # a handler that does nothing answers within 10 ms


async def test_the_guard_counts_streams_when_they_end_and_what_they_sent() -> None:
    metrics = HubMetrics(process=False)
    guard = make_guard(metrics)
    gate = asyncio.Event()

    async def three(
        _request: Any, _context: Any
    ) -> AsyncIterator[stock_pb2.WatchAvailabilityResponse]:
        for _ in range(3):
            yield stock_pb2.WatchAvailabilityResponse()
        await gate.wait()

    watch = wrapped(guard, WATCH, grpc.unary_stream_rpc_method_handler(three))
    label = "StockService/WatchAvailability"
    finished: list[Any] = []
    three_in = asyncio.Event()

    async def consume() -> None:
        async for message in watch(None, Context("integration")):
            finished.append(message)
            if len(finished) == 3:
                three_in.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three_in.wait(), 5)
    assert value(samples(metrics), "orderhub_rpc_streams_open", method=label) == 1
    task.cancel()  # the caller goes away
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    ended = watch(None, Context("integration"))
    assert len([m async for m in ended]) == 3

    found = samples(metrics)
    assert value(found, "orderhub_rpc_streams_open", method=label) == 0
    assert value(found, "orderhub_rpc_stream_messages_sent_total", method=label) == 6
    assert value(found, "orderhub_rpc_requests_total", method=label, code="CANCELLED") == 1
    assert value(found, "orderhub_rpc_requests_total", method=label, code="OK") == 1
    # A stream's length is the watcher's choice, not latency: no histogram for it.
    assert value(found, "orderhub_rpc_duration_seconds_count", method=label) is None


def test_method_labels_are_short_and_bounded() -> None:
    assert method_label("/orderhub.v1.StockService/Reserve") == "StockService/Reserve"
    assert (
        method_label("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        == "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )


# ----------------------------------------------------------- reservations and holds


def test_reservation_outcomes_start_at_zero_and_count_refusals_by_kind() -> None:
    metrics = HubMetrics(process=False)
    r = metrics.reservations
    r.reserved(True)
    r.reserved(True)
    r.reserved(False)
    r.refused(InsufficientStock("short", field="TEE"))
    r.refused(InvalidRequest("bad", field="lines"))
    r.refused(UnknownSku("who", field="sku"))
    r.refused(ShardUnavailable("restarting"))
    r.decided("committed")
    found = samples(metrics)
    outcomes = {
        labels[0][1]: v
        for (name, labels), v in found.items()
        if name == "orderhub_reservations_total"
    }
    assert outcomes == {
        "held": 2,
        "repeated": 1,
        "insufficient_stock": 1,
        "rejected": 2,
        "unavailable": 1,
    }
    assert value(found, "orderhub_reservation_decisions_total", decision="committed") == 1
    assert value(found, "orderhub_reservation_decisions_total", decision="released") == 0
    assert reserve_outcome(TimeoutError()) == "unavailable"
    assert reserve_outcome(StockUndecided("spoken for", field="TEE")) == "insufficient_stock"
    assert value(found, "orderhub_reservation_retries_total") == 0
    r.asked_again()
    r.asked_again()
    assert value(samples(metrics), "orderhub_reservation_retries_total") == 2


def test_hold_events_are_counted_per_line_from_the_published_messages() -> None:
    at = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)

    def event(kind: HoldEventKind, order: str, wh: str, line_no: int = 1) -> HoldEvent:
        return HoldEvent(kind, order, f"rsv-{order}", line_no, "TEE", wh, 1, at)

    changes = Changes(
        holds=[
            event(HoldEventKind.HELD, "o1", "WH-A"),
            event(HoldEventKind.HELD, "o1", "WH-A", 2),
            event(HoldEventKind.EXPIRED, "o2", "WH-A"),
            event(HoldEventKind.EXPIRED, "o3", "WH-B"),
            event(HoldEventKind.COMMITTED, "o4", "WH-B"),
        ]
    )
    published = [
        Pending(n, m.subject, m.msg_id, m.payload)
        for n, m in enumerate(messages_for(changes, at), start=1)
    ]
    published.append(Pending(99, "oms.orders.paid", "x", b'{"events": []}'))
    metrics = HubMetrics(process=False)
    metrics.outbox.published(published)
    found = samples(metrics)
    kinds = {
        labels[0][1]: v
        for (name, labels), v in found.items()
        if name == "orderhub_hold_events_total"
    }
    assert kinds == {
        "held": 2,
        "released": 0,
        "committed": 1,
        "expired": 2,
        "moved_out": 0,
        "moved_in": 0,
    }
    assert value(found, "orderhub_outbox_published_messages_total", topic="stock.holds") == 2
    assert value(found, "orderhub_outbox_published_messages_total", topic="orders.paid") == 1


# --------------------------------------------------------------- refreshed sources


def lane_health(state: BreakerState, late: float) -> LaneHealth:
    return LaneHealth(
        lane=Lane("WH-A", "zto", "广东"),
        state=state,
        delay_rate=late,
        outcomes=40,
        late=int(40 * late),
        judged=True,
        since=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        reason="late share above 15%",
        probes=0,
        probe_late=0,
        reopens_at=None,
    )


async def test_refreshed_sources_show_their_values_and_keep_the_last_good_one() -> None:
    now = 1_800_000_000.0
    metrics = HubMetrics(process=False, clock=lambda: now)
    calls = {"inventory": 0}
    healthy = {"lanes": True}

    async def warehouses() -> list[MapRow]:
        calls["inventory"] += 1
        await asyncio.sleep(0.01)
        return [
            MapRow(
                province="广东省",
                city="广州市",
                warehouse_id="WH-A",
                on_hand=50,
                reserved=5,
                safety_stock=3,
                available=42,
                out_of_stock_skus=1,
            )
        ]

    async def lanes() -> list[LaneHealth]:
        if not healthy["lanes"]:
            raise ConnectionError("lane actor restarting")
        return [lane_health(BreakerState.OPEN, 0.31)]

    async def wms() -> Position:
        oldest = datetime.fromtimestamp(now - 12.5, UTC)
        return Position(True, pending=7, ack_pending=3, oldest_waiting_at=oldest)

    async def backlog() -> Backlog:
        return Backlog(4, datetime.fromtimestamp(now - 2, UTC), 1)

    metrics.watch(Sources(warehouses=warehouses, lanes=lanes, wms=wms, backlog=backlog))
    # Concurrent scrapes share one refresh.
    await asyncio.gather(metrics.refresh(), metrics.refresh(), metrics.refresh())
    assert calls["inventory"] == 1
    found = samples(metrics)
    place = {"warehouse_id": "WH-A", "province": "广东省", "city": "广州市"}
    assert value(found, "orderhub_available_units", **place) == 42
    assert value(found, "orderhub_reserved_units", **place) == 5
    assert value(found, "orderhub_out_of_stock_skus", **place) == 1
    lane = {"warehouse_id": "WH-A", "carrier": "zto", "destination_province": "广东"}
    assert value(found, "orderhub_lane_breaker_state", **lane) == 2
    assert value(found, "orderhub_lane_late_ratio", **lane) == 0.31
    assert value(found, "orderhub_lanes", state="OPEN") == 1
    assert value(found, "orderhub_lanes", state="CLOSED") == 0
    assert value(found, "orderhub_wms_lag_seconds") == 12.5
    assert value(found, "orderhub_wms_pending_events") == 7
    assert value(found, "orderhub_outbox_pending_messages") == 4
    assert value(found, "orderhub_outbox_oldest_pending_age_seconds") == 2
    assert value(found, "orderhub_dead_letters_open") == 1
    assert value(found, "orderhub_metrics_source_up", source="lanes") == 1

    # Within the minimum interval nothing is asked again; after it, a failing source keeps
    # its last good values and says so.
    await metrics.refresh()
    assert calls["inventory"] == 1
    healthy["lanes"] = False
    await metrics.refresh(max_age_s=0)
    assert calls["inventory"] == 2
    found = samples(metrics)
    assert value(found, "orderhub_metrics_source_up", source="lanes") == 0
    assert value(found, "orderhub_metrics_source_up", source="inventory") == 1
    assert value(found, "orderhub_lane_breaker_state", **lane) == 2


async def test_a_slow_source_does_not_hold_up_the_scrape() -> None:
    metrics = HubMetrics(process=False, source_timeout_s=0.05)

    async def stuck() -> list[LaneHealth]:
        await asyncio.Event().wait()
        return []

    metrics.watch(Sources(lanes=stuck))
    body, content_type = await asyncio.wait_for(metrics.exposition(), 2)
    assert content_type.startswith("text/plain")
    assert b'orderhub_metrics_source_up{source="lanes"} 0.0' in body


def test_every_series_is_named_by_the_conventions() -> None:
    metrics = HubMetrics()
    ours = [f for f in metrics.registry.collect() if f.name.startswith("orderhub_")]
    assert len(ours) >= 25
    for family in ours:
        assert re.fullmatch(r"orderhub_[a-z0-9_]+", family.name), family.name
        assert family.documentation, family.name
        if family.type == "counter":
            assert not family.name.endswith("_total")  # the client adds it to the samples
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
    names = metrics.names()
    assert "orderhub_rpc_requests_total" in names
    assert "orderhub_rpc_duration_seconds_bucket" in names
    assert "process_cpu_seconds_total" in names
    # A registry per hub: two hubs in one process do not share series.
    HubMetrics().reservations.reserved(True)
    assert value(samples(metrics), "orderhub_reservations_total", outcome="held") == 0


# ------------------------------------------------------------ dashboards and alerts

#: Series Prometheus makes itself, which the hub cannot export.
PROMETHEUS_OWN = {"up"}
METRIC = re.compile(r"\b((?:orderhub|process|python)_[a-z0-9_]+|up(?=\{))")


def named_metrics(expr: str) -> set[str]:
    """The series an expression reads (the hub's prefixes, and ``up``)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return {m.group(1) for m in METRIC.finditer(without_strings)}


def panels_of(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def test_the_dashboard_reads_only_series_the_hub_exports() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exported = HubMetrics().names()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in panels_of(dashboard) if p["type"] != "row"]
    assert len({p["id"] for p in panels_of(dashboard)}) == len(panels_of(dashboard))
    titles = " | ".join(p["title"] for p in panels).lower()
    for topic in (
        "requests",
        "errors",
        "p50",
        "p99",
        "reservation",
        "hold events",
        "available",
        "wms lag",
        "breaker",
        "late ratio",
        "outbox",
    ):
        assert topic in titles, topic
    used: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            names = named_metrics(target["expr"])
            assert names, target["expr"]
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    for variable in variables.values():
        if variable["type"] == "query":
            assert named_metrics(variable["definition"]) <= exported
    # Every family of the hub's own is on the dashboard.
    for required in (
        "orderhub_rpc_requests_total",
        "orderhub_rpc_duration_seconds_bucket",
        "orderhub_reservations_total",
        "orderhub_hold_events_total",
        "orderhub_available_units",
        "orderhub_wms_lag_seconds",
        "orderhub_lane_breaker_state",
        "orderhub_lane_late_ratio",
        "orderhub_outbox_pending_messages",
    ):
        assert required in used, required


def test_the_alert_rules_are_sound_and_read_only_exported_series() -> None:
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    exported = HubMetrics().names() | PROMETHEUS_OWN
    [group] = rules["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert {
        "OrderHubRpcErrorRatioHigh",
        "OrderHubReservationLatencyHigh",
        "OrderHubWmsLagHigh",
        "OrderHubLaneOpen",
        "OrderHubOutboxBacklogGrowing",
    } <= set(alerts)
    for name, rule in alerts.items():
        expr = rule["expr"]
        assert expr.count("(") == expr.count(")"), name
        names = named_metrics(expr)
        assert names and names <= exported, (name, names - exported)
        assert rule["labels"]["severity"] in ("page", "warning", "ticket"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name
    assert "> 30" in alerts["OrderHubWmsLagHigh"]["expr"]
    assert "== 2" in alerts["OrderHubLaneOpen"]["expr"]
    scrape = yaml.safe_load(PROMETHEUS.read_text(encoding="utf-8"))
    assert scrape["rule_files"] == [ALERTS.name]
    [job] = scrape["scrape_configs"]
    assert job["job_name"] == "orderhub" and job["metrics_path"] == "/metrics"


def test_expressions_name_what_they_read() -> None:
    expr = 'sum by (method) (rate(orderhub_rpc_requests_total{code="OK"}[5m])) / up{job="x"}'
    assert named_metrics(expr) == {"orderhub_rpc_requests_total", "up"}
    assert named_metrics("max(orderhub_wms_lag_seconds) > 30") == {"orderhub_wms_lag_seconds"}


def test_the_alert_rules_pass_their_promtool_tests() -> None:
    """deploy/prometheus/orderhub-alerts.test.yml: each alert fires when it should, not before."""
    promtool = shutil.which("promtool")
    if promtool is None:
        message = "promtool is not installed (Debian: apt-get install prometheus)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    checked = subprocess.run(
        [promtool, "test", "rules", ALERTS.with_suffix(".test.yml").name],
        cwd=ALERTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
