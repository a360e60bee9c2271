"""API keys and the audit log. Nothing here commits.

An API key is kept as its SHA-256 only (a random 256-bit key needs no slow hash); its prefix
finds it, its scopes bound it, and another user's key looks exactly like one that does not
exist. The audit log is append-only: nothing here updates or deletes an entry.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime, timedelta

from sqlalchemy import JSON, Column, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, insert, parent_key

TOUCH_EVERY = timedelta(minutes=1)


class ApiKey(SQLModel, table=True):
    """A key for scripts: only its SHA-256 is kept; `prefix` finds it, `scopes` bound it."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    name: str = Field(max_length=100)
    prefix: str = Field(max_length=16, unique=True, index=True)
    key_hash: str = Field(max_length=64)
    scopes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    last_used_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime, nullable=True)
    )
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class AuditEntry(SQLModel, table=True):
    """One sensitive action: who (None for an unknown email's failed login), what, on what.

    Append-only: nothing here updates or deletes an entry, and the entries of a deleted user
    stay (`user_id` is not a foreign key). `id` increases with time, and pages follow it.
    """

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    user_id: uuid.UUID | None = Field(default=None, index=True)
    action: str = Field(max_length=40)
    target: str | None = Field(default=None, max_length=200)
    address: str | None = Field(default=None, max_length=64)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


def hash_key(key: str) -> str:
    """Return the SHA-256 of an API key (a random 256-bit key needs no slow hash)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


async def add_api_key(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    prefix: str,
    key: str,
    scopes: list[str],
    now: datetime,
) -> ApiKey:
    """Store a new key by its hash; the key itself is shown to its owner once, not stored."""
    row = ApiKey(
        owner_id=owner_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        scopes=scopes,
        created_at=now,
    )
    return await insert(session, row)


async def list_api_keys(session: AsyncSession, *, owner_id: uuid.UUID) -> list[ApiKey]:
    """Return an owner's keys that are not revoked, newest first."""
    result = await session.exec(
        select(ApiKey)
        .where(ApiKey.owner_id == owner_id, col(ApiKey.revoked_at).is_(None))
        .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id))
    )
    return list(result.all())


async def find_api_key(session: AsyncSession, *, prefix: str, key: str) -> ApiKey | None:
    """Return the live key with this prefix whose hash matches `key`, or None."""
    row = (await session.exec(select(ApiKey).where(ApiKey.prefix == prefix))).first()
    if row is None or row.revoked_at is not None:
        return None
    return row if hmac.compare_digest(hash_key(key), row.key_hash) else None


async def touch_api_key(session: AsyncSession, *, key_id: uuid.UUID, now: datetime) -> None:
    """Record a key's use, at most once a minute (a write per request would cost more)."""
    await session.exec(
        update(ApiKey)
        .where(
            col(ApiKey.id) == key_id,
            col(ApiKey.last_used_at).is_(None) | (col(ApiKey.last_used_at) < now - TOUCH_EVERY),
        )
        .values(last_used_at=now)
    )


async def revoke_api_key(
    session: AsyncSession, *, key_id: uuid.UUID, owner_id: uuid.UUID, now: datetime
) -> bool:
    """Revoke an owner's live key in one statement; False for another's, unknown or revoked."""
    statement = (
        update(ApiKey)
        .where(
            col(ApiKey.id) == key_id,
            col(ApiKey.owner_id) == owner_id,
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
        .returning(col(ApiKey.id))
    )
    return (await session.exec(statement)).first() is not None


async def record(
    session: AsyncSession,
    *,
    user_id: uuid.UUID | None,
    action: str,
    target: str | None,
    address: str | None,
    now: datetime,
) -> AuditEntry:
    """Append one entry to the audit log."""
    entry = AuditEntry(
        user_id=user_id,
        action=action,
        target=None if target is None else target[:200],
        address=None if address is None else address[:64],
        at=now,
    )
    return await insert(session, entry)


async def audit_page(
    session: AsyncSession, *, user_id: uuid.UUID | None, after: int | None, first: int
) -> list[AuditEntry]:
    """Return up to `first` entries after the id `after`, newest first; all users for None."""
    query = select(AuditEntry)
    if user_id is not None:
        query = query.where(AuditEntry.user_id == user_id)
    if after is not None:
        query = query.where(col(AuditEntry.id) < after)
    result = await session.exec(query.order_by(col(AuditEntry.id).desc()).limit(first))
    return list(result.all())
