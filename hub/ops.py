"""The hub's HTTP side for the people who run it: Prometheus metrics and the operator page.

- ``GET /metrics``: the hub's registry (:mod:`hub.metrics`) in the Prometheus text format,
  or OpenMetrics when the scraper asks. No token: it is scraped from inside the cluster and
  must not be reachable from outside (see docs/observability.md).
- ``GET /ops``: the operator page (plain HTML, CSS and JavaScript from ``hub/web/``); it holds
  no data itself. It asks for a bearer token once, keeps it in the tab's sessionStorage and
  sends it with every request for data.
- ``GET /ops/api/inventory``, ``/ops/api/lanes``, ``/ops/api/status``: the page's data as
  JSON — the inventory map, lane health, the WMS sync's and the outbox's backlog. Each needs
  ``Authorization: Bearer <token>`` of a role in
  :data:`hub.domain.access.OPS_PAGE_ROLES` (``admin``, ``ops``): a missing, forged, expired
  or revoked token is answered 401, another role 403. None of it is buyers' data: stock
  counts, places, carriers and lanes only.

The routes are served on the webhook listener (``ORDERHUB_HTTP_ADDR``), or on a listener of
their own when ``ORDERHUB_METRICS_ADDR`` is set (:class:`OpsListener`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hub import logs
from hub.auth import Principal, Unauthenticated
from hub.domain.access import OPS_PAGE_ROLES
from hub.domain.lanes import BreakerState, LaneHealth
from hub.events import rfc3339
from hub.metrics import age_seconds
from hub.store.inventory_map import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Dimension,
    MapFilters,
    MapRow,
    inventory_map,
)
from hub.webhooks import listen

if TYPE_CHECKING:
    from hub.app import Hub

log = logging.getLogger("orderhub.ops")

#: The page's files, by the name it is served under, with their content type.
STATIC = {
    "ops.js": "text/javascript; charset=utf-8",
    "ops.css": "text/css; charset=utf-8",
}
DEFAULT_GROUPING = (Dimension.PROVINCE, Dimension.CITY, Dimension.WAREHOUSE)
#: The page runs only its own script and style, talks only to this hub, and is never framed.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _web_file(name: str) -> bytes:
    return (resources.files("hub") / "web" / name).read_bytes()


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    headers.update(extra or {})
    return headers


def _refuse(status: int, code: str, message: str) -> web.Response:
    extra = {"WWW-Authenticate": 'Bearer realm="orderhub-ops"'} if status == 401 else {}
    return web.json_response(
        {"error": code, "message": message}, status=status, headers=_headers(extra)
    )


def _bad(field: str, message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "INVALID_ARGUMENT", "field": field, "message": message}),
        content_type="application/json",
        headers=_headers(),
    )


def _list(request: web.Request, name: str) -> tuple[str, ...]:
    """A query parameter given repeatedly or comma-separated, as a tuple of values."""
    values = [v.strip() for raw in request.query.getall(name, []) for v in raw.split(",")]
    return tuple(v for v in values if v)


def map_row_json(row: MapRow) -> dict[str, Any]:
    """One inventory map row as the page reads it."""
    return {
        "province": row.province,
        "city": row.city,
        "warehouse_id": row.warehouse_id,
        "category": row.category,
        "sku": row.sku,
        "on_hand": row.on_hand,
        "reserved": row.reserved,
        "safety_stock": row.safety_stock,
        "available": row.available,
        "sku_count": row.sku_count,
        "warehouse_count": row.warehouse_count,
        "out_of_stock_skus": row.out_of_stock_skus,
    }


def lane_json(h: LaneHealth) -> dict[str, Any]:
    """One lane's health as the page reads it."""
    return {
        "warehouse_id": h.lane.warehouse_id,
        "carrier": h.lane.carrier,
        "destination_province": h.lane.destination_province,
        "state": h.state.value,
        "late_ratio": h.delay_rate,
        "outcomes": h.outcomes,
        "late": h.late,
        "judged": h.judged,
        "since": rfc3339(h.since) if h.since else None,
        "reason": h.reason,
        "probes": h.probes,
        "probe_late": h.probe_late,
        "reopens_at": rfc3339(h.reopens_at) if h.reopens_at else None,
    }


class OpsPages:
    """The metrics endpoint, the operator page and its data, over one hub."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._page = _web_file("ops.html")
        self._static = {name: _web_file(name) for name in STATIC}

    def routes(self) -> list[web.RouteDef]:
        """Every route, for an aiohttp application."""
        return [
            web.get("/metrics", self.metrics),
            web.get("/ops", self.page),
            web.get("/ops/", self.page),
            web.get("/ops/static/{name}", self.static),
            web.get("/ops/api/inventory", self._guarded(self.inventory)),
            web.get("/ops/api/lanes", self._guarded(self.lanes)),
            web.get("/ops/api/status", self._guarded(self.status)),
        ]

    # ------------------------------------------------------------------ unauthenticated

    async def metrics(self, request: web.Request) -> web.Response:
        """``GET /metrics``."""
        body, content_type = await self._hub.metrics.exposition(request.headers.get("Accept", ""))
        response = web.Response(body=body, headers={"Content-Type": content_type})
        response.enable_compression()  # only when the scraper accepts it
        return response

    async def page(self, _request: web.Request) -> web.Response:
        """``GET /ops``: the page, which fetches its data itself."""
        return web.Response(
            body=self._page,
            headers=_headers(
                {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": PAGE_POLICY}
            ),
        )

    async def static(self, request: web.Request) -> web.Response:
        """``GET /ops/static/{name}``: the page's script and style sheet."""
        name = request.match_info["name"]
        body = self._static.get(name)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, headers=_headers({"Content-Type": STATIC[name]}))

    # ------------------------------------------------------------------ the page's data

    def _guarded(
        self, handler: Callable[[web.Request, Principal], Awaitable[web.Response]]
    ) -> Handler:
        """``handler`` behind the token check; it is told who calls."""

        async def checked(request: web.Request) -> web.StreamResponse:
            rid = request.headers.get("X-Request-Id", "")
            logs.request_id.set(rid if _REQUEST_ID_OK.match(rid) else uuid.uuid4().hex[:16])
            try:
                who = await self._hub.verifier.check(request.headers.get("Authorization"))
            except Unauthenticated as err:
                log.info("ops page: unauthenticated", extra={"path": request.path, "why": str(err)})
                return _refuse(401, "UNAUTHENTICATED", str(err))
            if who.role not in OPS_PAGE_ROLES:
                log.warning(
                    "ops page: permission denied",
                    extra={"path": request.path, "subject": who.subject, "role": who.role},
                )
                roles = " or ".join(sorted(OPS_PAGE_ROLES))
                message = f"the operator page needs an {roles} token, not {who.role}"
                return _refuse(403, "PERMISSION_DENIED", message)
            response = await handler(request, who)
            response.headers["X-Request-Id"] = logs.request_id.get()
            return response

        return checked

    async def inventory(self, request: web.Request, _who: Principal) -> web.Response:
        """``GET /ops/api/inventory?by=province,city,warehouse&province=…&warehouse=…``."""
        names = _list(request, "by")
        try:
            dims = tuple(Dimension(n.lower()) for n in names) or DEFAULT_GROUPING
        except ValueError:
            choices = ",".join(d.value for d in Dimension)
            raise _bad("by", f"choose from {choices}") from None
        try:
            limit = min(int(request.query.get("limit") or DEFAULT_LIMIT), MAX_LIMIT)
        except ValueError:
            raise _bad("limit", "limit must be a whole number") from None
        if limit < 1:
            raise _bad("limit", "limit must be positive")
        filters = MapFilters(
            province=request.query.get("province", "").strip(),
            city=request.query.get("city", "").strip(),
            category=request.query.get("category", "").strip(),
            warehouse_ids=_list(request, "warehouse"),
            skus=_list(request, "sku"),
        )
        as_of = datetime.now(UTC)
        found = await asyncio.to_thread(
            inventory_map, self._hub.master_data.engine, dims, filters, limit=limit
        )
        body = {
            "as_of": rfc3339(as_of),
            "group_by": [d.value for d in found.group_by],
            "rows": [map_row_json(r) for r in found.rows],
            "total": map_row_json(found.total),
            "truncated": found.truncated,
        }
        return web.json_response(body, headers=_headers())

    async def lanes(self, request: web.Request, _who: Principal) -> web.Response:
        """``GET /ops/api/lanes?warehouse=A,B&carrier=…&province=…&state=OPEN,HALF_OPEN``."""
        q = request.query
        states = {s.upper() for s in _list(request, "state")}
        if states - {s.value for s in BreakerState}:
            raise _bad("state", "choose from CLOSED,HALF_OPEN,OPEN")
        warehouses = set(_list(request, "warehouse"))
        found = await self._hub.lanes.health(
            next(iter(warehouses)) if len(warehouses) == 1 else "",
            q.get("carrier", "").strip(),
            q.get("province", "").strip(),
        )
        shown = [
            h
            for h in found
            if (not states or h.state.value in states)
            and (not warehouses or h.lane.warehouse_id in warehouses)
        ]
        # The lanes that need attention first: OPEN, then HALF_OPEN, then the worst late share.
        order = {BreakerState.OPEN: 0, BreakerState.HALF_OPEN: 1, BreakerState.CLOSED: 2}
        shown.sort(key=lambda h: (order[h.state], -h.delay_rate, h.lane))
        body = {"as_of": rfc3339(datetime.now(UTC)), "lanes": [lane_json(h) for h in shown]}
        return web.json_response(body, headers=_headers())

    async def status(self, _request: web.Request, _who: Principal) -> web.Response:
        """``GET /ops/api/status``: the sync's and the outbox's backlog, lanes by state."""
        metrics = self._hub.metrics
        await metrics.refresh()
        views, now = metrics.views, metrics.clock()
        counters = self._hub.wms.counters
        wms = views.wms
        backlog = views.backlog
        per_state = dict.fromkeys((s.value for s in BreakerState), 0)
        for h in views.lanes:
            per_state[h.state.value] += 1
        body: dict[str, Any] = {
            "as_of": rfc3339(datetime.now(UTC)),
            "wms": {
                "connected": wms.connected if wms else None,
                "pending": wms.pending if wms else None,
                "ack_pending": wms.ack_pending if wms else None,
                "lag_seconds": age_seconds(now, wms.oldest_waiting_at) if wms else None,
                "applied": counters.applied,
                "last_applied_at": rfc3339(counters.last_applied_at)
                if counters.last_applied_at
                else None,
            },
            "outbox": {
                "pending": backlog.outbox_pending if backlog else None,
                "oldest_age_seconds": age_seconds(now, backlog.outbox_oldest_at)
                if backlog
                else None,
            },
            "dead_letters_open": backlog.open_dead_letters if backlog else None,
            "lanes": per_state,
            "sources_up": views.up,
        }
        return web.json_response(body, headers=_headers())


class OpsListener:
    """A listener of its own for the metrics and the page (``ORDERHUB_METRICS_ADDR``)."""

    def __init__(self, routes: Sequence[web.AbstractRouteDef]) -> None:
        self._routes = list(routes)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, addr: str) -> int:
        """Listen on ``host:port`` (port 0 picks a free one); the bound port."""
        app = web.Application()
        app.router.add_routes(self._routes)
        app.router.add_get("/healthz", _healthy)
        self._runner, self.port = await listen(app, addr, 5.0, "metrics")
        return self.port

    async def stop(self) -> None:
        """Stop listening."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def _healthy(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
