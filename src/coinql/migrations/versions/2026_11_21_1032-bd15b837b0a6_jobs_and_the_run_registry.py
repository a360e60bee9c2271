"""Jobs and the run registry: backtest, study and simulation results.

Revision ID: bd15b837b0a6
Revises: 4227191c9c76
Create Date: 2026-11-21 10:32:22.183282
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "bd15b837b0a6"
down_revision: str | None = "4227191c9c76"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("timestamps", sa.LargeBinary(), nullable=False),
        sa.Column("equity", sa.LargeBinary(), nullable=False),
        sa.Column("positions", sa.LargeBinary(), nullable=True),
        sa.Column("trades", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(length=80), nullable=False),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_backtest_runs_input_hash"), ["input_hash"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_backtest_runs_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=100), nullable=False),
        sa.Column("error", sa.String(length=2000), nullable=True),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result_id", sa.Uuid(), nullable=True),
        sa.Column("runner", sa.String(length=80), nullable=True),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", coinql.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "simulation_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("statistics", sa.JSON(), nullable=False),
        sa.Column("bands", sa.LargeBinary(), nullable=False),
        sa.Column("band_timestamps", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("simulation_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_simulation_runs_owner_id"), ["owner_id"], unique=False)

    op.create_table(
        "study_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("input", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("study_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_study_runs_owner_id"), ["owner_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("study_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_study_runs_owner_id"))

    op.drop_table("study_runs")
    with op.batch_alter_table("simulation_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_simulation_runs_owner_id"))

    op.drop_table("simulation_runs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_owner_id"))

    op.drop_table("jobs")
    with op.batch_alter_table("backtest_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backtest_runs_owner_id"))
        batch_op.drop_index(batch_op.f("ix_backtest_runs_input_hash"))

    op.drop_table("backtest_runs")
