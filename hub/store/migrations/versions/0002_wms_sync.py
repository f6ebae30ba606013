"""wms sync: movements in the ledger, outbox, dead letters, hold moves, review items

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 00:03:56.266453
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column(
            "letter_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("error", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("letter_id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            "ix_dead_letters_source_stream_seq", ["source", "stream", "stream_seq"], unique=True
        )
        batch_op.create_index("ix_dead_letters_status", ["status"], unique=False)

    op.create_table(
        "hold_moves",
        sa.Column(
            "move_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("reservation_id", sa.String(length=40), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("from_warehouse", sa.String(length=64), nullable=False),
        sa.Column("to_warehouse", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("moved_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("move_id", name=op.f("pk_hold_moves")),
    )
    with op.batch_alter_table("hold_moves", schema=None) as batch_op:
        batch_op.create_index("ix_hold_moves_order_id", ["order_id"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("msg_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("msg_id", name=op.f("uq_outbox_msg_id")),
    )
    op.create_table(
        "review_items",
        sa.Column(
            "item_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("warehouse_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_review_items")),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index("ix_review_items_order_id", ["order_id"], unique=False)

    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("low_stock_threshold", sa.BigInteger(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_id", sa.String(length=128), nullable=True))
        batch_op.create_index("ix_stock_ledger_event_id", ["event_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_stock_ledger_event_id")
        batch_op.drop_column("event_id")

    with op.batch_alter_table("skus", schema=None) as batch_op:
        batch_op.drop_column("low_stock_threshold")

    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index("ix_review_items_order_id")

    op.drop_table("review_items")
    op.drop_table("outbox")
    with op.batch_alter_table("hold_moves", schema=None) as batch_op:
        batch_op.drop_index("ix_hold_moves_order_id")

    op.drop_table("hold_moves")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index("ix_dead_letters_status")
        batch_op.drop_index("ix_dead_letters_source_stream_seq")

    op.drop_table("dead_letters")
