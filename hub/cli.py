"""The `orderhub` command."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hub import cli_import, logs
from hub.cli_reconcile import add_arguments as add_reconcile_arguments
from hub.cli_token import add_arguments as add_token_arguments
from hub.settings import Settings

log = logging.getLogger("orderhub.cli")


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env()
    if getattr(args, "data_dir", None):
        s.data_dir = Path(args.data_dir)
    for name in ("grpc_addr", "database_url", "nats_url", "ray_address", "http_addr", "shops_file"):
        value = getattr(args, name, None)
        if value or (name == "http_addr" and value == ""):  # --http-addr '' turns it off
            setattr(s, name, value)
    if getattr(args, "shards", None):
        s.inventory_shards = args.shards
    if getattr(args, "log_format", None):
        s.log_format = args.log_format
    return s


async def _up(settings: Settings, demo: bool) -> int:
    if not settings.ray_address:
        # Ray reads these when it is imported, so they are set before the first import.
        from hub.embedded import EmbeddedRay

        os.environ.update(EmbeddedRay.environment())
    from hub.app import Hub
    from hub.cli_token import ensure_admin_token
    from hub.demo import load_demo
    from hub.server import start_server

    hub = Hub(settings)
    await hub.start()
    server = None
    try:
        written = await asyncio.to_thread(ensure_admin_token, settings, hub.tokens, hub.access)
        if written:
            log.info("admin token written", extra={"path": written})
            print(
                f"An admin token is in {written} (the orderhub command-line tools read it)",
                file=sys.stderr,
                flush=True,
            )
        if demo:
            await load_demo(hub)
            log.info("demo data loaded")
        server = await start_server(hub, settings.grpc_addr)
        # What starting made (modules, protos, master data, Ray's and SQLAlchemy's state)
        # lives as long as the hub: keep it out of the collector's full passes, which
        # otherwise walked ~180,000 objects and paused every request for up to 150 ms.
        gc.freeze()
        host = settings.grpc_addr.rsplit(":", 1)[0]
        log.info("serving", extra={"grpc_addr": f"{host}:{server.port}"})
        print(f"OrderHub serving on {host}:{server.port}", file=sys.stderr, flush=True)
        if hub.webhooks is not None:
            web_host = settings.http_addr.rsplit(":", 1)[0]
            print(
                f"Webhooks on http://{web_host}:{hub.http_port}/webhooks/<platform>/<shop_id>",
                file=sys.stderr,
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down: finishing in-flight requests")
    finally:
        if server is not None:
            await server.stop()
        await hub.stop()
    return 0


def _db_upgrade(settings: Settings) -> int:
    from hub.store.db import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url())
    print("database is at the newest schema")
    return 0


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Run the hub's event loop: uvloop where installed (less CPU per RPC), else asyncio."""
    if os.environ.get("ORDERHUB_EVENT_LOOP", "uvloop") == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


STOCK_DIMENSIONS = ("province", "city", "warehouse", "category", "sku")


def _dimension_list(text: str) -> list[str]:
    """``--by province,category``: the names, checked; no heavy imports at parse time."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STOCK_DIMENSIONS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose from {','.join(STOCK_DIMENSIONS)} (comma-separated)"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="state directory (ORDERHUB_DATA_DIR, .orderhub/)")
    common.add_argument("--log-format", choices=["json", "text"], help="log format")
    parser = argparse.ArgumentParser(prog="orderhub", description="OrderHub order hub")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser(
        "up", parents=[common], help="run the hub (embedded SQLite, NATS and Ray by default)"
    )
    up.add_argument("--demo", action="store_true", help="load demo warehouses, SKUs and stock")
    up.add_argument("--grpc-addr", help="listen address (ORDERHUB_GRPC_ADDR, 127.0.0.1:50051)")
    up.add_argument("--database-url", help="SQLAlchemy URL (ORDERHUB_DATABASE_URL)")
    up.add_argument("--nats-url", help="NATS server to use (ORDERHUB_NATS_URL)")
    up.add_argument("--ray-address", help="Ray cluster to join (ORDERHUB_RAY_ADDRESS)")
    up.add_argument("--shards", type=int, help="inventory shard actors (ORDERHUB_INVENTORY_SHARDS)")
    up.add_argument(
        "--http-addr",
        help="webhook listen address (ORDERHUB_HTTP_ADDR, 127.0.0.1:8080; '' turns it off)",
    )
    up.add_argument("--shops-file", help="shops file (ORDERHUB_SHOPS_FILE, <data-dir>/shops.toml)")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_up = db_sub.add_parser("upgrade", parents=[common], help="apply migrations")
    db_up.add_argument("--database-url", help="SQLAlchemy URL (ORDERHUB_DATABASE_URL)")

    stock = sub.add_parser(
        "stock",
        help="print the live inventory map of a running hub (ATP by place, warehouse, category)",
    )
    stock.add_argument(
        "--addr",
        default=os.environ.get("ORDERHUB_GRPC_ADDR") or "127.0.0.1:50051",
        help="the hub's gRPC address (ORDERHUB_GRPC_ADDR, 127.0.0.1:50051)",
    )
    stock.add_argument(
        "--by",
        type=_dimension_list,
        metavar="KEYS",
        help=f"group by these, comma-separated: {','.join(STOCK_DIMENSIONS)} "
        "(default province,city)",
    )
    stock.add_argument("--province", help="only warehouses in this province")
    stock.add_argument("--city", help="only warehouses in this city")
    stock.add_argument("--category", help="only SKUs of this category")
    stock.add_argument(
        "--warehouse", action="append", metavar="ID", help="only this warehouse (repeatable)"
    )
    stock.add_argument("--sku", action="append", help="only this SKU (repeatable)")
    stock.add_argument("--limit", type=int, help="at most this many rows (hub default 5000)")
    stock.add_argument(
        "--format", choices=["table", "json"], default="table", help="output (table)"
    )

    shops = sub.add_parser(
        "shops", help="list a running hub's shops and where pulling their orders stands"
    )
    shops.add_argument(
        "--addr",
        default=os.environ.get("ORDERHUB_GRPC_ADDR") or "127.0.0.1:50051",
        help="the hub's gRPC address (ORDERHUB_GRPC_ADDR, 127.0.0.1:50051)",
    )
    shops.add_argument(
        "--format", choices=["table", "json"], default="table", help="output (table)"
    )

    reconcile = sub.add_parser(
        "reconcile", help="compare a platform statement with a running hub's orders (对账)"
    )
    add_reconcile_arguments(reconcile)
    cli_import.add_command(sub)
    add_token_arguments(sub, common)
    for client in (stock, shops, reconcile):
        client.add_argument(
            "--token",
            help="bearer token (ORDERHUB_TOKEN; default: <data dir>/admin.token of orderhub up)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `orderhub` command."""
    args = build_parser().parse_args(argv)
    if args.command == "stock":
        # A client of a running hub: no settings, and logging is left as the caller has it.
        from hub.cli_stock import run

        return run(args)
    if args.command == "shops":
        from hub.cli_shops import run as shops

        return shops(args)
    if args.command == "reconcile":
        from hub.cli_reconcile import run as reconcile

        return reconcile(args)
    settings = _settings(args)
    logs.configure(settings.log_format)
    if args.command == "up":
        return _run(_up(settings, args.demo))
    if args.command == "db":
        return _db_upgrade(settings)
    if args.command == "import":
        return cli_import.run(args, settings)
    if args.command == "token":
        from hub.cli_token import run as token

        for name in ("database_url",):
            if getattr(args, name, None):
                setattr(settings, name, getattr(args, name))
        return token(args, settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
