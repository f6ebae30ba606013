"""Settings from flags or environment (ORDERHUB_*), with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


@dataclass(slots=True)
class Settings:
    """Where the hub keeps state and which services it uses.

    An empty ``database_url``, ``nats_url`` or ``ray_address`` means: run the embedded
    one (SQLite in the data directory, a local nats-server, a local Ray).
    """

    data_dir: Path = field(default_factory=lambda: Path(".orderhub"))
    grpc_addr: str = "127.0.0.1:50051"
    database_url: str = ""
    nats_url: str = ""
    ray_address: str = ""
    # One shard per core by default: more shards than cores only adds contention.
    inventory_shards: int = field(default_factory=lambda: os.cpu_count() or 2)
    ray_namespace: str = "orderhub"
    log_format: str = "json"
    # WMS sync: the stream created for wms.events.> when none stores it, the durable
    # consumer all hub processes of one deployment share, and where a new consumer starts
    # ("all": everything in the stream; "new": from now on).
    wms_stream: str = "WMS"
    wms_consumer: str = "orderhub-wms"
    wms_deliver: str = "all"
    wms_batch: int = 500
    # Seconds before JetStream redelivers an unacknowledged batch (e.g. after a crash).
    wms_ack_wait_s: float = 10.0
    # The stream created for the hub's own events (oms.>) when none stores them.
    oms_stream: str = "OMS"
    # The shops file (platform credentials, webhook secrets, polling); empty means
    # shops.toml in the data directory.
    shops_file: str = ""
    # The HTTP listener for platform webhooks (POST /webhooks/<platform>/<shop_id>);
    # empty turns it off.
    http_addr: str = "127.0.0.1:8080"
    # A listener of its own for /metrics and the operator page (/ops), kept apart from the
    # webhooks, which face the platforms; empty: they are served on http_addr.
    metrics_addr: str = ""
    # Routing: the time zone whose calendar day warehouse capacity counts against, the
    # durable consumer of carrier tracking events (carrier.events.>), its stream and where
    # a new one starts ("all" or "new", as for the WMS),
    # whether paid orders are routed as soon as their stock is held, and the breaker
    # policy of the lanes (JSON of BreakerPolicy fields; empty: the defaults).
    routing_day_tz: str = "Asia/Shanghai"
    carrier_stream: str = "CARRIER"
    carrier_consumer: str = "orderhub-carrier"
    carrier_deliver: str = "all"
    auto_route: bool = True
    lane_policy: str = ""
    # Lane health actors; lanes are few and cheap, one is plenty for most deployments.
    lane_shards: int = 1
    # Access: the key bearer tokens are signed with (every replica needs the same one; empty:
    # a random key kept in <data-dir>/token.key), and TLS for the gRPC port: the server's
    # certificate chain and key (PEM files), and a CA whose client certificates are then
    # required (mutual TLS). Empty: plaintext.
    # A Ray custom resource the inventory and lane actors ask for (a sliver of), so that
    # they run only on the nodes that offer it; empty: any node.
    actor_resource: str = ""
    token_secret: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment, defaults elsewhere."""
        return cls(
            data_dir=Path(os.environ.get("ORDERHUB_DATA_DIR", ".orderhub")),
            grpc_addr=os.environ.get("ORDERHUB_GRPC_ADDR", "127.0.0.1:50051"),
            database_url=os.environ.get("ORDERHUB_DATABASE_URL", ""),
            nats_url=os.environ.get("ORDERHUB_NATS_URL", ""),
            ray_address=os.environ.get("ORDERHUB_RAY_ADDRESS", ""),
            inventory_shards=_env_int("ORDERHUB_INVENTORY_SHARDS", os.cpu_count() or 2),
            ray_namespace=os.environ.get("ORDERHUB_RAY_NAMESPACE", "orderhub"),
            log_format=os.environ.get("ORDERHUB_LOG_FORMAT", "json"),
            wms_stream=os.environ.get("ORDERHUB_WMS_STREAM", "WMS"),
            wms_consumer=os.environ.get("ORDERHUB_WMS_CONSUMER", "orderhub-wms"),
            wms_deliver=os.environ.get("ORDERHUB_WMS_DELIVER", "all"),
            wms_batch=_env_int("ORDERHUB_WMS_BATCH", 500),
            wms_ack_wait_s=float(os.environ.get("ORDERHUB_WMS_ACK_WAIT_S") or 10.0),
            oms_stream=os.environ.get("ORDERHUB_OMS_STREAM", "OMS"),
            shops_file=os.environ.get("ORDERHUB_SHOPS_FILE", ""),
            http_addr=os.environ.get("ORDERHUB_HTTP_ADDR", "127.0.0.1:8080"),
            metrics_addr=os.environ.get("ORDERHUB_METRICS_ADDR", ""),
            routing_day_tz=os.environ.get("ORDERHUB_ROUTING_DAY_TZ", "Asia/Shanghai"),
            carrier_stream=os.environ.get("ORDERHUB_CARRIER_STREAM", "CARRIER"),
            carrier_consumer=os.environ.get("ORDERHUB_CARRIER_CONSUMER", "orderhub-carrier"),
            carrier_deliver=os.environ.get("ORDERHUB_CARRIER_DELIVER", "all"),
            auto_route=os.environ.get("ORDERHUB_AUTO_ROUTE", "1").lower()
            not in ("0", "false", "no", "off"),
            lane_policy=os.environ.get("ORDERHUB_LANE_POLICY", ""),
            lane_shards=_env_int("ORDERHUB_LANE_SHARDS", 1),
            actor_resource=os.environ.get("ORDERHUB_ACTOR_RESOURCE", ""),
            token_secret=os.environ.get("ORDERHUB_TOKEN_SECRET", ""),
            tls_cert=os.environ.get("ORDERHUB_TLS_CERT", ""),
            tls_key=os.environ.get("ORDERHUB_TLS_KEY", ""),
            tls_client_ca=os.environ.get("ORDERHUB_TLS_CLIENT_CA", ""),
        )

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'orderhub.db').resolve()}"

    def resolved_shops_file(self) -> Path:
        """The shops file, defaulting to shops.toml in the data directory."""
        return Path(self.shops_file) if self.shops_file else self.data_dir / "shops.toml"
