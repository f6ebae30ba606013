"""The database tables: the source of truth that actors rebuild their state from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and read back as an aware UTC datetime."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use an aware UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

warehouses = Table(
    "warehouses",
    metadata,
    Column("warehouse_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("province", String(64), nullable=False),
    Column("city", String(64), nullable=False),
    Column("district", String(64), nullable=False, default=""),
    Column("daily_capacity", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

skus = Table(
    "skus",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("weight_grams", Integer, nullable=False),
    Column("safety_stock", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Total ATP below this raises a low-stock alert; 0 means no alert.
    Column("low_stock_threshold", BigInteger, nullable=False, server_default="0"),
    # One unit's packed size in millimetres; all 0 when unknown (routing then prices by weight).
    Column("length_mm", Integer, nullable=False, server_default="0"),
    Column("width_mm", Integer, nullable=False, server_default="0"),
    Column("height_mm", Integer, nullable=False, server_default="0"),
)

# Carriers the hub can hand parcels to (rates and lanes come with routing).
carriers = Table(
    "carriers",
    metadata,
    Column("carrier_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    # express, standard, economy, postal or same_day
    Column("service_level", String(16), nullable=False),
    Column("active", Integer, nullable=False, default=1),
    Column("updated_at", UTCDateTime, nullable=False),
)

platform_skus = Table(
    "platform_skus",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("shop_id", String(64), primary_key=True),
    Column("platform_sku", String(128), primary_key=True),
    Column("sku", String(64), ForeignKey("skus.sku"), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

stock_levels = Table(
    "stock_levels",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("safety_stock", BigInteger, nullable=True),
)

stock_ledger = Table(
    "stock_ledger",
    metadata,
    Column("entry_id", Id, primary_key=True, autoincrement=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("on_hand_delta", BigInteger, nullable=False),
    Column("on_hand_after", BigInteger, nullable=False),
    Column("order_id", String(128), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("occurred_at", UTCDateTime, nullable=False),
    # The warehouse movement applied (WMS event_id); unique, so none is applied twice.
    Column("event_id", String(128), nullable=True),
    Index("ix_stock_ledger_sku_warehouse", "sku", "warehouse_id"),
    Index("ix_stock_ledger_event_id", "event_id", unique=True),
)

reservations = Table(
    "reservations",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("reservation_id", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("primary_sku", String(64), nullable=False),
    # Every line of the reservation, across shards, as JSON.
    Column("lines", Text, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Index("ix_reservations_status", "status"),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("reservation_id", String(40), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("warehouse_id", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("primary_sku", String(64), nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Index("ix_reservation_lines_status", "status"),
    Index("ix_reservation_lines_sku_warehouse", "sku", "warehouse_id"),
)

hold_moves = Table(
    "hold_moves",
    metadata,
    Column("move_id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(128), nullable=False),
    Column("reservation_id", String(40), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("from_warehouse", String(64), nullable=False),
    Column("to_warehouse", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    # The warehouse movement that made the hold move.
    Column("event_id", String(128), nullable=False),
    Column("moved_at", UTCDateTime, nullable=False),
    Index("ix_hold_moves_order_id", "order_id"),
)

# Orders a person must look at (stock shortfalls now; order problems later).
review_items = Table(
    "review_items",
    metadata,
    Column("item_id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(128), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Column("sku", String(64), nullable=False, default=""),
    Column("warehouse_id", String(64), nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index("ix_review_items_order_id", "order_id"),
)

# Messages to publish on NATS, written in the same transaction as the change they tell
# of, and deleted once the stream has acknowledged them.
outbox = Table(
    "outbox",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("subject", String(255), nullable=False),
    Column("msg_id", String(64), nullable=False, unique=True),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Messages that could not be applied, kept with the reason until replayed or discarded.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("letter_id", Id, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("subject", String(255), nullable=False),
    # Where the message sat in its stream; a redelivered poison message is kept once.
    Column("stream", String(64), nullable=False),
    Column("stream_seq", BigInteger, nullable=False),
    Column("event_id", String(128), nullable=False, default=""),
    Column("headers", Text, nullable=False, default="{}"),
    Column("payload", LargeBinary, nullable=False),
    Column("error", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("received_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_dead_letters_source_stream_seq", "source", "stream", "stream_seq", unique=True),
    Index("ix_dead_letters_status", "status"),
)

# Orders from every channel in one shape. The whole order is kept as a JSON document;
# the columns beside it are what orders are found by.
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("platform", String(32), nullable=False),
    Column("shop_id", String(64), nullable=False),
    Column("platform_order_id", String(128), nullable=False),
    Column("status", String(24), nullable=False),
    Column("queue", String(32), nullable=False, default=""),
    Column("tags", Text, nullable=False, default="[]"),
    Column("review_reasons", Text, nullable=False, default="[]"),
    Column("document", Text, nullable=False),
    Column("platform_updated_at", UTCDateTime, nullable=True),
    Column("ingested_at", UTCDateTime, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    # The key the order's stock is held under: the order id, or the order id and a
    # generation when its lines changed (a refund before shipment) and it was held anew.
    Column("hold_key", String(64), nullable=False, default=""),
    Index(
        "ix_orders_platform_shop_id_platform_order_id",
        "platform",
        "shop_id",
        "platform_order_id",
        unique=True,
    ),
    Index("ix_orders_status", "status"),
    Index("ix_orders_queue", "queue"),
)

# Every change of an order's status, queue or after-sale, in order: who, when and why.
order_events = Table(
    "order_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("orders.order_id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("from_status", String(24), nullable=False),
    Column("to_status", String(24), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("details", Text, nullable=False, default="{}"),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_order_events_order_id", "order_id"),
)

# Where each shop's poller got to: the end of the last modified-time window it finished.
poll_cursors = Table(
    "poll_cursors",
    metadata,
    Column("platform", String(32), primary_key=True),
    Column("shop_id", String(64), primary_key=True),
    Column("window_end", UTCDateTime, nullable=False),
    Column("last_run_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("failures", Integer, nullable=False, default=0),
    Column("orders_seen", BigInteger, nullable=False, default=0),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The routing rules, one row per version; the highest version is in force.
routing_rules = Table(
    "routing_rules",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    # The rules as a JSON document.
    Column("document", Text, nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("updated_by", String(128), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Each order's current routing: one row per parcel. Replaced when the order is routed again.
routed_shipments = Table(
    "routed_shipments",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("shipment_no", Integer, primary_key=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(32), nullable=False),
    # Canonical short province name (广东), the lane's destination.
    Column("destination_province", String(32), nullable=False),
    # [[sku, quantity], ...] as JSON.
    Column("lines", Text, nullable=False),
    Column("promised_hours", Integer, nullable=False),
    Column("cost_fen", BigInteger, nullable=False),
    Column("rules_version", Integer, nullable=False),
    # The routing day (the warehouses' local date) the parcel counts against capacity.
    Column("day", String(10), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Index("ix_routed_shipments_lane", "warehouse_id", "carrier", "destination_province"),
    Index("ix_routed_shipments_day", "day", "warehouse_id"),
)

# Orders routed to each warehouse per routing day, for its daily capacity.
warehouse_load = Table(
    "warehouse_load",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("warehouse_id", String(64), primary_key=True),
    Column("orders", Integer, nullable=False),
)

# Delivery outcomes per lane, by event time: what lane health is rebuilt from.
lane_outcomes = Table(
    "lane_outcomes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("destination_province", String(32), nullable=False),
    Column("late", Integer, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    # When the parcel was handed to the carrier, when known: tells probes from stragglers.
    Column("shipped_at", UTCDateTime, nullable=True),
    Column("recorded_at", UTCDateTime, nullable=False),
    # The outcome's own id (a tracking event id); unique, so a repeat counts once.
    Column("outcome_id", String(128), nullable=True),
    Index("ix_lane_outcomes_occurred_at", "occurred_at"),
    Index("ix_lane_outcomes_outcome_id", "outcome_id", unique=True),
)

# Every breaker transition of a lane, append-only: the operations team's record.
lane_transitions = Table(
    "lane_transitions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("warehouse_id", String(64), nullable=False),
    Column("carrier", String(32), nullable=False),
    Column("destination_province", String(32), nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Column("delay_rate", Float, nullable=False),
    Column("outcomes", Integer, nullable=False),
    Index(
        "ix_lane_transitions_warehouse_id_carrier_destination_province",
        "warehouse_id",
        "carrier",
        "destination_province",
    ),
)

# Issued access tokens. The token itself is never stored: a token is a signed claim naming
# its row, and the row says whether it still counts (expiry, revocation).
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", String(64), primary_key=True),
    Column("subject", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("issued_by", String(128), nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(128), nullable=False, default=""),
    Column("revoke_reason", Text, nullable=False, default=""),
)

# Every audited write: who, when, what, and the target's state before and after. Append-only
# (the migration adds triggers that refuse UPDATE and DELETE).
audit_events = Table(
    "audit_events",
    metadata,
    Column("audit_id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("token_id", String(64), nullable=False, default=""),
    Column("action", String(128), nullable=False),
    Column("target", String(256), nullable=False, default=""),
    Column("request", Text, nullable=False, default=""),
    Column("before", Text, nullable=False, default=""),
    Column("after", Text, nullable=False, default=""),
    Column("outcome", String(32), nullable=False),
    Column("error", Text, nullable=False, default=""),
    Column("request_id", String(64), nullable=False, default=""),
    Index("ix_audit_events_at", "at"),
    Index("ix_audit_events_actor_at", "actor", "at"),
    Index("ix_audit_events_target", "target"),
)
