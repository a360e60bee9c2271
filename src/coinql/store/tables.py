"""Every table, imported in one place so that `SQLModel.metadata` is complete for Alembic."""

from __future__ import annotations

from sqlmodel import SQLModel

from coinql.store.auth import RefreshToken, User

metadata = SQLModel.metadata

__all__ = ["RefreshToken", "User", "metadata"]
