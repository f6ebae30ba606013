"""routing and lane health

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 03:42:11.673388
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lane_outcomes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("warehouse_id", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("destination_province", sa.String(length=32), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("shipped_at", sa.DateTime(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("outcome_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lane_outcomes")),
    )
    with op.batch_alter_table("lane_outcomes", schema=None) as batch_op:
        batch_op.create_index("ix_lane_outcomes_occurred_at", ["occurred_at"], unique=False)
        batch_op.create_index("ix_lane_outcomes_outcome_id", ["outcome_id"], unique=True)

    op.create_table(
        "lane_transitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("warehouse_id", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("destination_province", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=False),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("delay_rate", sa.Float(), nullable=False),
        sa.Column("outcomes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lane_transitions")),
    )
    with op.batch_alter_table("lane_transitions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_lane_transitions_warehouse_id_carrier_destination_province",
            ["warehouse_id", "carrier", "destination_province"],
            unique=False,
        )

    op.create_table(
        "routed_shipments",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("shipment_no", sa.Integer(), nullable=False),
        sa.Column("warehouse_id", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("destination_province", sa.String(length=32), nullable=False),
        sa.Column("lines", sa.Text(), nullable=False),
        sa.Column("promised_hours", sa.Integer(), nullable=False),
        sa.Column("cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("order_id", "shipment_no", name=op.f("pk_routed_shipments")),
    )
    with op.batch_alter_table("routed_shipments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_routed_shipments_lane",
            ["warehouse_id", "carrier", "destination_province"],
            unique=False,
        )
        batch_op.create_index("ix_routed_shipments_day", ["day", "warehouse_id"], unique=False)

    op.create_table(
        "routing_rules",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_routing_rules")),
    )
    op.create_table(
        "warehouse_load",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("warehouse_id", sa.String(length=64), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "warehouse_id", name=op.f("pk_warehouse_load")),
    )


def downgrade() -> None:
    op.drop_table("warehouse_load")
    op.drop_table("routing_rules")
    with op.batch_alter_table("routed_shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_routed_shipments_day")
        batch_op.drop_index("ix_routed_shipments_lane")

    op.drop_table("routed_shipments")
    with op.batch_alter_table("lane_transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_lane_transitions_warehouse_id_carrier_destination_province")

    op.drop_table("lane_transitions")
    with op.batch_alter_table("lane_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_lane_outcomes_outcome_id")
        batch_op.drop_index("ix_lane_outcomes_occurred_at")

    op.drop_table("lane_outcomes")
