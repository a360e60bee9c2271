"""Derivatives: perpetual contracts, their funding rates, and their open interest, mark and
index price per bar.

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2026-12-07 23:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d4e5f6a7b8c9"
down_revision: str | None = "c3d4e5f6a7b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "perpetuals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("contract", sa.String(length=60), nullable=False),
        sa.Column("data_source", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asset_id", "exchange", "contract"),
    )
    with op.batch_alter_table("perpetuals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_perpetuals_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "funding_rates",
        sa.Column("perpetual_id", sa.Integer(), nullable=False),
        sa.Column("funding_time", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["perpetual_id"], ["perpetuals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("perpetual_id", "funding_time"),
    )
    op.create_table(
        "perpetual_bars",
        sa.Column("perpetual_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(length=3), nullable=False),
        sa.Column("open_time", sa.BigInteger(), nullable=False),
        sa.Column("open_interest", sa.Float(), nullable=True),
        sa.Column("mark_price", sa.Float(), nullable=True),
        sa.Column("index_price", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["perpetual_id"], ["perpetuals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("perpetual_id", "interval", "open_time"),
    )


def downgrade() -> None:
    op.drop_table("perpetual_bars")
    op.drop_table("funding_rates")
    with op.batch_alter_table("perpetuals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_perpetuals_asset_id"))
    op.drop_table("perpetuals")
