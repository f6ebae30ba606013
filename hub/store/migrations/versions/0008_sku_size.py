"""sku size

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 09:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SIZE = ("length_mm", "width_mm", "height_mm")


def upgrade() -> None:
    with op.batch_alter_table("skus", schema=None) as batch_op:
        for name in _SIZE:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("skus", schema=None) as batch_op:
        for name in reversed(_SIZE):
            batch_op.drop_column(name)
