"""Per-portfolio risk limits and the alerts their breaches raise.

Revision ID: e0e3eac5d632
Revises: bd15b837b0a6
Create Date: 2026-11-21 10:41:28.140788
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "e0e3eac5d632"
down_revision: str | None = "bd15b837b0a6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("portfolio_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("limit", sa.String(length=30), nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("triggered_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["portfolio_id"], ["portfolios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alerts_portfolio_id"), ["portfolio_id"], unique=False)

    op.create_table(
        "risk_limits",
        sa.Column("portfolio_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("max_drawdown", sa.Float(), nullable=True),
        sa.Column("value_at_risk_99", sa.Float(), nullable=True),
        sa.Column("max_position_weight", sa.Float(), nullable=True),
        sa.Column("daily_loss", sa.Float(), nullable=True),
        sa.Column("breached", sa.JSON(), nullable=False),
        sa.Column("updated_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["portfolio_id"], ["portfolios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("portfolio_id"),
    )
    with op.batch_alter_table("risk_limits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_limits_owner_id"), ["owner_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("risk_limits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_limits_owner_id"))

    op.drop_table("risk_limits")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_portfolio_id"))
        batch_op.drop_index(batch_op.f("ix_alerts_owner_id"))

    op.drop_table("alerts")
