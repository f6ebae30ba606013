"""Shared fixtures: one Ray session, fresh databases, a running hub with its gRPC server.

PostgreSQL and NATS are the real services on this machine (ORDERHUB_TEST_DATABASE_URL,
ORDERHUB_TEST_NATS_URL). When one cannot be reached its tests are skipped, unless
ORDERHUB_TEST_REQUIRE_SERVICES=1 (as in CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
import ray
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.app import Hub
from hub.auth import Principal
from hub.server import HubServer, start_server
from hub.settings import Settings
from hub.store.db import upgrade

PG_ADMIN_URL = os.environ.get(
    "ORDERHUB_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
NATS_URL = os.environ.get("ORDERHUB_TEST_NATS_URL", "nats://127.0.0.1:4222")
REQUIRE_SERVICES = os.environ.get("ORDERHUB_TEST_REQUIRE_SERVICES") == "1"
BACKENDS = ["sqlite", "postgresql"]
#: The shops the shared end-to-end hub knows (its shops.toml).
E2E_SHOPIFY_SHOP = "e2e-shopify"
E2E_WEBHOOK_SECRET = "e2e-webhook-secret"
E2E_SHOPS = f"""
[[shop]]
platform = "shopify"
shop_id = "{E2E_SHOPIFY_SHOP}"
webhook_secret = "{E2E_WEBHOOK_SECRET}"
"""


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url.replace("postgresql+psycopg", "postgresql"))
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 1
        ):
            return True
    except OSError:
        return False


def need_service(name: str, url: str, default_port: int) -> None:
    """Skip (or, when services are required, fail) if a service is not reachable."""
    if _reachable(url, default_port):
        return
    message = f"{name} is not reachable at {url}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for the whole run: starting it costs seconds."""
    if not ray.is_initialized():
        # address="local": a Ray of our own, never some cluster already running here.
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace="tests",
        )
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def new_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, migrated databases: ``new_database("sqlite" | "postgresql")``."""
    created: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("db") / "orderhub.db"
            url = f"sqlite:///{path}"
        else:
            need_service("PostgreSQL", PG_ADMIN_URL, 5432)
            name = f"orderhub_test_{uuid.uuid4().hex[:12]}"
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            created.append(name)
            url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return url

    yield make
    if created:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def hub_settings(database_url: str, data_dir: Path, *, shards: int = 2) -> Settings:
    """Settings for a test hub on the real NATS, in its own Ray namespace."""
    need_service("NATS", NATS_URL, 4222)
    return Settings(
        data_dir=data_dir,
        grpc_addr="127.0.0.1:0",
        database_url=database_url,
        nats_url=NATS_URL,
        inventory_shards=shards,
        ray_namespace=f"test-{uuid.uuid4().hex[:10]}",
        # Its own durable consumer, starting now: other runs' events on this NATS are
        # not this hub's business.
        wms_consumer=f"test-{uuid.uuid4().hex[:10]}",
        wms_deliver="new",
        carrier_consumer=f"test-{uuid.uuid4().hex[:10]}",
        carrier_deliver="new",
        http_addr="127.0.0.1:0",
        # Tests route orders when they mean to (RouteOrder, or Router.start_background).
        auto_route=False,
    )


async def drop_consumer(settings: Settings) -> None:
    """Delete a test hub's durable WMS consumer from the shared NATS."""
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for subject, consumer in (
            ("wms.events.>", settings.wms_consumer),
            ("carrier.events.>", settings.carrier_consumer),
        ):
            with contextlib.suppress(Exception):  # never created, or gone already
                stream = await js.find_stream_name_by_subject(subject)
                await js.delete_consumer(stream, consumer)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
async def hub(
    ray_session: None,
    new_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Hub]:
    """A hub on PostgreSQL and NATS shared by the end-to-end tests."""
    url = new_database("postgresql")
    data_dir = tmp_path_factory.mktemp("hub")
    (data_dir / "shops.toml").write_text(E2E_SHOPS, encoding="utf-8")
    settings = hub_settings(url, data_dir, shards=3)
    running = Hub(settings)
    await running.start()
    yield running
    await running.stop()
    await drop_consumer(settings)


@pytest.fixture(scope="session")
async def hub_server(hub: Hub) -> AsyncIterator[HubServer]:
    """The hub's gRPC server on a free port."""
    server = await start_server(hub, "127.0.0.1:0")
    yield server
    with contextlib.suppress(Exception):
        await server.stop(1.0)


@pytest.fixture(scope="session")
def grpc_address(hub_server: HubServer) -> str:
    """Where the shared hub listens."""
    return f"127.0.0.1:{hub_server.port}"


def issue_token(hub: Hub, role: str, subject: str = "") -> str:
    """A fresh bearer token of ``role`` from the hub's own token service."""
    token, _ = hub.tokens.issue(
        role,
        subject or f"tests-{role}",
        by=Principal(subject="tests", role="admin", token_id=""),
        action="tests",
    )
    return token


@pytest.fixture(scope="session")
def admin_token(hub: Hub) -> str:
    """An admin token for the shared hub."""
    return issue_token(hub, "admin", "tests-admin")


@pytest.fixture(scope="session")
def tokens(hub: Hub) -> Callable[..., str]:
    """``tokens(role, subject="")``: a new token of that role for the shared hub."""
    return lambda role, subject="": issue_token(hub, role, subject)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def unique() -> str:
    """A short unique prefix for ids, since the shared hub outlives one test."""
    return uuid.uuid4().hex[:8].upper()


async def crash_and_wait(handle: Any, timeout_s: float = 60.0) -> None:
    """Kill an actor the hard way and wait until Ray has restarted it from the database."""
    before = (await handle.status.remote())["pid"]
    ray.kill(handle, no_restart=False)

    async def restarted() -> None:
        while True:  # Ray has no restart notification; its calls fail until it is back
            try:
                if (await handle.status.remote())["pid"] != before:
                    return
            except Exception:
                pass
            await asyncio.sleep(0.05)

    await asyncio.wait_for(restarted(), timeout_s)
