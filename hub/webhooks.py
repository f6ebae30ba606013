"""The HTTP webhook receiver: platform pushes in, the same order pipeline as the API.

``POST /webhooks/<platform>/<shop_id>`` checks the platform's signature over the raw body
(:mod:`adapters.webhooks`), then hands each order to :class:`hub.orders.OrderIntake`.
``GET /healthz`` answers while the listener runs. The hub may add routes of its own to the
same listener (``routes``: the metrics and the operator page, :mod:`hub.ops`).

Replies, and why (a platform retries a non-2xx reply and in time disables the webhook):

- a forged or unsigned push: 401, and nothing is stored, not even a dead letter;
- an unknown platform or shop: 404; a shop without the secret to check it: 401;
- a body over the size cap: 413;
- an order stored (or a repeat): 200 ``{"order_id", "duplicate"}``;
- a genuine push the hub cannot use (an untranslatable order, a deletion, a Douyin order
  whose detail could not be fetched): kept as a dead letter, answered 202 saying so, so
  the platform does not resend what the hub already keeps;
- a failure inside the hub (the database is down): 500 without details, so the platform
  sends it again later.

Douyin is always answered ``{"code": 0, "msg": "success"}`` when its push was handled.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from adapters import registry
from adapters import webhooks as wh
from hub.domain.inventory import InvalidRequest
from hub.domain.orders import TranslationError
from hub.orders import OrderIntake
from hub.shops import Shop, Shops
from hub.store.dead_letters import DeadLetters, NewLetter

log = logging.getLogger("orderhub.webhooks")

#: Fetches a platform order's full JSON by its platform order id.
FetchOrder = Callable[[Shop, str], Awaitable[str]]

SOURCE = "webhook"
MAX_BODY = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one order of a push."""

    order_id: str = ""
    duplicate: bool = False
    note: str = ""
    dead_letter: str = ""  # the error it is kept under, when it is kept
    message: str = ""


class WebhookReceiver:
    """An aiohttp listener that verifies platform pushes and ingests their orders."""

    def __init__(
        self,
        intake: OrderIntake,
        shops: Shops,
        dead_letters: DeadLetters,
        fetch_order: FetchOrder | None = None,
        *,
        max_body: int = MAX_BODY,
        fetch_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        routes: Sequence[web.AbstractRouteDef] = (),
    ) -> None:
        self._intake = intake
        self._routes = list(routes)
        self._shops = shops
        self._dead = dead_letters
        self._fetch = fetch_order
        self._max_body = max_body
        self._fetch_timeout_s = fetch_timeout_s
        self._clock = clock
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        """The aiohttp application (routes only; :meth:`start` serves it)."""
        # One byte over the cap so a body of exactly the cap is still read whole.
        app = web.Application(client_max_size=self._max_body + 1)
        app.router.add_post("/webhooks/{platform}/{shop_id}", self.receive)
        app.router.add_get("/healthz", self.health)
        app.router.add_routes(self._routes)
        return app

    async def start(self, addr: str) -> int:
        """Listen on ``host:port`` (port 0 picks a free one); the bound port."""
        self._runner, self.port = await listen(self.app(), addr, 10.0, "webhook")
        return self.port

    async def stop(self) -> None:
        """Stop listening; requests under way finish first."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def health(self, _request: web.Request) -> web.Response:
        """``GET /healthz``."""
        return web.json_response({"status": "ok"})

    async def receive(self, request: web.Request) -> web.Response:
        """``POST /webhooks/{platform}/{shop_id}``."""
        platform = request.match_info["platform"].strip().lower()
        shop_id = request.match_info["shop_id"].strip()
        if platform not in registry.platforms():
            return _error(404, "UNKNOWN_PLATFORM", f"no platform or channel {platform!r}")
        shop = self._shops.get(platform, shop_id)
        if shop is None:
            return _error(404, "UNKNOWN_SHOP", f"shop {platform}/{shop_id} is not configured")
        if request.content_length is not None and request.content_length > self._max_body:
            return _too_large(self._max_body)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _too_large(self._max_body)
        if len(body) > self._max_body:
            return _too_large(self._max_body)

        scheme = wh.scheme_for(platform)
        headers = {k.lower(): v for k, v in request.headers.items()}
        if wh.is_unsigned_ping(scheme, headers, body):
            return web.json_response({"ping": "ok"})
        try:
            wh.verify(scheme, credentials(shop), headers, body, now=self._clock())
        except wh.WebhookError as err:
            log.warning(
                "webhook refused: %s",
                err,
                extra={"platform": platform, "shop_id": shop_id, "error": err.code},
            )
            return _error(401, err.code, str(err))
        if not body.strip():
            return _error(400, "EMPTY_BODY", "the push has no body")

        push = wh.parse_push(scheme, headers, body)
        try:
            outcomes = await self._carry_out(shop, push)
        except Exception:
            log.exception(
                "a webhook push could not be handled; the platform may send it again",
                extra={"platform": platform, "shop_id": shop_id},
            )
            return _error(500, "INTERNAL", "the push could not be handled; send it again later")
        for reason in push.skipped:
            log.info(
                "webhook: no work: %s", reason, extra={"platform": platform, "shop_id": shop_id}
            )
        if scheme is wh.Scheme.DOUYIN:
            return web.json_response(dict(wh.DOUYIN_SUCCESS))
        return _reply(push, outcomes)

    async def _carry_out(self, shop: Shop, push: wh.Push) -> list[Outcome]:
        outcomes = [await self._ingest(shop, order) for order in push.orders]
        for notice in push.notices:
            outcomes.append(await self._fetch_and_ingest(shop, notice))
        for item in push.unusable:
            await self._keep(shop, item, topic=push.topic)
            outcomes.append(Outcome(dead_letter=item.error, message=item.reason))
        return outcomes

    async def _ingest(self, shop: Shop, payload: str | bytes) -> Outcome:
        try:
            saved = await self._intake.ingest(shop.platform, shop.shop_id, payload)
        except InvalidRequest as err:
            log.warning(
                "webhook: order refused: %s",
                err,
                extra={"platform": shop.platform, "shop_id": shop.shop_id},
            )
            if isinstance(err.__cause__, TranslationError):
                # The intake kept the payload as a dead letter before refusing it.
                return Outcome(dead_letter="UNTRANSLATABLE", message=str(err))
            data = payload.encode() if isinstance(payload, str) else payload
            await self._keep(shop, wh.Unusable("REFUSED", str(err), data))
            return Outcome(dead_letter="REFUSED", message=str(err))
        stored = saved.stored
        return Outcome(order_id=stored.order_id, duplicate=saved.duplicate, note=saved.note)

    async def _fetch_and_ingest(self, shop: Shop, notice: wh.OrderNotice) -> Outcome:
        events = ",".join(notice.events)
        if self._fetch is None:
            reason = (
                f"{shop.platform} named order {notice.order_id} ({events}) by id only and "
                "no order fetcher is configured"
            )
            return await self._keep_notice(shop, notice, "NO_FETCHER", reason)
        try:
            async with asyncio.timeout(self._fetch_timeout_s):
                detail = await self._fetch(shop, notice.order_id)
        except Exception as err:  # any failure of the platform call keeps the push
            reason = f"fetching {shop.platform} order {notice.order_id} ({events}) failed: {err!r}"
            return await self._keep_notice(shop, notice, "FETCH_FAILED", reason)
        if not detail or not detail.strip():
            reason = f"fetching {shop.platform} order {notice.order_id} ({events}) returned nothing"
            return await self._keep_notice(shop, notice, "FETCH_FAILED", reason)
        return await self._ingest(shop, detail)

    async def _keep_notice(
        self, shop: Shop, notice: wh.OrderNotice, error: str, reason: str
    ) -> Outcome:
        log.warning(
            "webhook: order kept as a dead letter: %s",
            reason,
            extra={"platform": shop.platform, "shop_id": shop.shop_id, "error": error},
        )
        item = wh.Unusable(error, reason, notice.payload, ",".join(m for m in notice.msg_ids if m))
        await self._keep(shop, item, order_id=notice.order_id)
        return Outcome(dead_letter=error, message=reason)

    async def _keep(
        self, shop: Shop, item: wh.Unusable, *, topic: str = "", order_id: str = ""
    ) -> None:
        headers = {"platform": shop.platform, "shop_id": shop.shop_id}
        if topic:
            headers["topic"] = topic
        if order_id:
            headers["platform_order_id"] = order_id
        subject = f"webhooks.{shop.platform}.{shop.shop_id}"[:255]
        letter = NewLetter(
            source=SOURCE,
            subject=subject,
            stream=SOURCE,
            stream_seq=_position(subject, item.error, item.payload),
            event_id=item.event_id[:128],
            headers=headers,
            payload=item.payload,
            error=item.error,
            reason=item.reason,
        )
        await asyncio.to_thread(self._dead.keep, [letter])


def _position(subject: str, error: str, payload: bytes) -> int:
    """A stand-in stream position for a dead letter: the same push kept twice is kept once.

    A push has no stream position; hashing what it held means a push the platform sends
    again (after a 500 part-way through a Douyin batch) does not pile up copies.
    """
    digest = hashlib.sha256(f"{subject}\0{error}\0".encode() + payload).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # fits a signed BIGINT


def credentials(shop: Shop) -> wh.Credentials:
    """The secrets of a shop that checking its pushes needs."""
    return wh.Credentials(
        webhook_secret=shop.webhook_secret, app_key=shop.app_key, app_secret=shop.app_secret
    )


def split_addr(addr: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) → (host, port)."""
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {addr!r} is not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


async def listen(
    app: web.Application, addr: str, shutdown_timeout: float, what: str
) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` (port 0 picks a free one): its runner and bound port."""
    host, port = split_addr(addr)
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1])
    log.info("%s listener started", what, extra={"addr": f"{host}:{bound}"})
    return runner, bound


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def _too_large(limit: int) -> web.Response:
    return _error(413, "TOO_LARGE", f"the push is larger than {limit} bytes")


def _reply(push: wh.Push, outcomes: list[Outcome]) -> web.Response:
    """One order per push (Shopify, WooCommerce, configured channels): say what became of it."""
    if not outcomes:
        return web.json_response({"ignored": push.topic, "reason": "; ".join(push.skipped)})
    first = outcomes[0]
    if first.dead_letter:
        body: dict[str, Any] = {
            "dead_lettered": True,
            "error": first.dead_letter,
            "message": first.message,
        }
        return web.json_response(body, status=202)
    answer: Mapping[str, Any] = {"order_id": first.order_id, "duplicate": first.duplicate}
    if first.note:
        answer = {**answer, "note": first.note}
    return web.json_response(dict(answer))
