"""carriers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:56:34.689139
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carriers",
        sa.Column("carrier_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("service_level", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("carrier_id", name=op.f("pk_carriers")),
    )


def downgrade() -> None:
    op.drop_table("carriers")
