"""[6/8] A bot may book its fills into a portfolio of its owner's; a fill is recorded once
per order and execution (two followers of one exchange report cannot both record it); an
order cancelled before its exchange answered for it is remembered as such.

Revision ID: c3d4e5f6a7b8
Revises: b07a1c2d3e4f
Create Date: 2026-12-03 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c3d4e5f6a7b8"
down_revision: str | None = "b07a1c2d3e4f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.add_column(sa.Column("portfolio_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_bots_portfolio_id"), ["portfolio_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_bots_portfolio_id", "portfolios", ["portfolio_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("bot_fills", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_bot_fills_order_trade", ["order_id", "trade_id"])
    with op.batch_alter_table("bot_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("bot_orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
    with op.batch_alter_table("bot_fills", schema=None) as batch_op:
        batch_op.drop_constraint("uq_bot_fills_order_trade", type_="unique")
    with op.batch_alter_table("bots", schema=None) as batch_op:
        batch_op.drop_constraint("fk_bots_portfolio_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_bots_portfolio_id"))
        batch_op.drop_column("portfolio_id")
