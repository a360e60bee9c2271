"""[5/8] Exchange connections, account snapshots, paper books, API keys and the audit log;
transactions booked by a sync carry their exchange trade id, unique per portfolio.

Revision ID: 6371390b0024
Revises: 088640a15438
Create Date: 2026-12-02 17:26:50.665578
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "6371390b0024"
down_revision: str | None = "088640a15438"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_user_id"), ["user_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_prefix"), ["prefix"], unique=True)

    op.create_table(
        "exchange_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("portfolio_id", sa.Uuid(), nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("api_key_token", sa.Text(), nullable=False),
        sa.Column("secret_token", sa.Text(), nullable=False),
        sa.Column("passphrase_token", sa.Text(), nullable=True),
        sa.Column("api_key_mask", sa.String(length=4), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=True),
        sa.Column("can_trade", sa.Boolean(), nullable=True),
        sa.Column("can_withdraw", sa.Boolean(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_sync_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("sync_started_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["portfolio_id"], ["portfolios.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("exchange_connections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_connections_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_connections_portfolio_id"), ["portfolio_id"], unique=False
        )

    op.create_table(
        "account_snapshots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("taken_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("balances", sa.JSON(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["exchange_connections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_snapshots_connection_id"), ["connection_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_account_snapshots_taken_at"), ["taken_at"], unique=False
        )

    op.create_table(
        "paper_accounts",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("book", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["exchange_connections.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id"),
    )
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exchange_trade_id", sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(
            "uq_transactions_exchange_trade", ["portfolio_id", "exchange_trade_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("transactions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_transactions_exchange_trade", type_="unique")
        batch_op.drop_column("exchange_trade_id")

    op.drop_table("paper_accounts")
    with op.batch_alter_table("account_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_snapshots_taken_at"))
        batch_op.drop_index(batch_op.f("ix_account_snapshots_connection_id"))

    op.drop_table("account_snapshots")
    with op.batch_alter_table("exchange_connections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_connections_portfolio_id"))
        batch_op.drop_index(batch_op.f("ix_exchange_connections_owner_id"))

    op.drop_table("exchange_connections")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_prefix"))
        batch_op.drop_index(batch_op.f("ix_api_keys_owner_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_user_id"))
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
