"""[6/8] Bots, their orders (written before they are sent, by a unique client order id) and
their fills.

Revision ID: b07a1c2d3e4f
Revises: 6371390b0024
Create Date: 2026-12-03 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "b07a1c2d3e4f"
down_revision: str | None = "6371390b0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("strategy_id", sa.Uuid(), nullable=True),
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("symbol", sa.String(length=20), nullable=False),
        sa.Column("interval", sa.String(length=4), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("book", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("first_live_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_bar_ms", sa.BigInteger(), nullable=True),
        sa.Column("day_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("day_start_value", coinql.store.db.DecimalType(length=80), nullable=True),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stopped_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["strategy_id"], ["strategies.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["exchange_connections.id"], ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bots_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bots_strategy_id"), ["strategy_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bots_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bots_status"), ["status"], unique=False)

    op.create_table(
        "bot_orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("client_order_id", sa.String(length=64), nullable=False),
        sa.Column("exchange_order_id", sa.String(length=100), nullable=True),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("quantity", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("price", coinql.store.db.DecimalType(length=80), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("filled_quantity", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("average_price", coinql.store.db.DecimalType(length=80), nullable=True),
        sa.Column("fee", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bot_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bot_orders_bot_id"), ["bot_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bot_orders_client_order_id"), ["client_order_id"], unique=True
        )
        batch_op.create_index(batch_op.f("ix_bot_orders_status"), ["status"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_bot_orders_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "bot_fills",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("trade_id", sa.String(length=100), nullable=False),
        sa.Column("side", sa.String(length=4), nullable=False),
        sa.Column("price", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("quantity", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("fee", coinql.store.db.DecimalType(length=80), nullable=False),
        sa.Column("time", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["bot_orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["bot_id"], ["bots.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("bot_fills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bot_fills_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bot_fills_bot_id"), ["bot_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bot_fills_time"), ["time"], unique=False)


def downgrade() -> None:
    op.drop_table("bot_fills")
    op.drop_table("bot_orders")
    op.drop_table("bots")
