"""Market data: assets, markets, candles and ingestion states.

Revision ID: 8de49267c577
Revises: 3a74f13382aa
Create Date: 2026-11-21 09:57:32.769057
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "8de49267c577"
down_revision: str | None = "3a74f13382aa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("stablecoin", sa.Boolean(), nullable=False),
        sa.Column("data_source", sa.String(length=40), nullable=False),
        sa.Column("market_cap", sa.Float(), nullable=True),
        sa.Column("circulating_supply", sa.Float(), nullable=True),
        sa.Column("quote_volume_24h", sa.Float(), nullable=True),
        sa.Column("last_price", sa.Float(), nullable=True),
        sa.Column("last_price_at", sa.BigInteger(), nullable=True),
        sa.Column("change_24h", sa.Float(), nullable=True),
        sa.Column("updated_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_symbol"), ["symbol"], unique=True)

    op.create_table(
        "ingestion_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("interval", sa.String(length=3), nullable=False),
        sa.Column("last_attempt_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failing_since", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("candles_added", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("exchange", "symbol", "interval"),
    )
    op.create_table(
        "markets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("asset_id", sa.Integer(), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("pair", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["assets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asset_id", "exchange", "pair"),
    )
    with op.batch_alter_table("markets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_markets_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "candles",
        sa.Column("market_id", sa.Integer(), nullable=False),
        sa.Column("interval", sa.String(length=3), nullable=False),
        sa.Column("open_time", sa.BigInteger(), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=True),
        sa.Column("quote_volume", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["market_id"], ["markets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("market_id", "interval", "open_time"),
    )


def downgrade() -> None:
    op.drop_table("candles")
    with op.batch_alter_table("markets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_markets_asset_id"))

    op.drop_table("markets")
    op.drop_table("ingestion_states")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_symbol"))

    op.drop_table("assets")
