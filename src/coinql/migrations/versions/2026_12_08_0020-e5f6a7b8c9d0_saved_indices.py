"""[8/8] Saved indices: an allocation rule kept live under a name, with its benchmark.

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2026-12-08 00:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import coinql.store.db

revision: str = "e5f6a7b8c9d0"
down_revision: str | None = "d4e5f6a7b8c9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "indices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("benchmark", sa.String(length=20), nullable=True),
        sa.Column("created_at", coinql.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("indices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_indices_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("indices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_indices_owner_id"))
    op.drop_table("indices")
