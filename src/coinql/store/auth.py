"""Users and refresh tokens: tables and the queries over them. Nothing here commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, delete, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, insert, parent_key


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    email: str = Field(max_length=254, unique=True, index=True)
    password_hash: str = Field(max_length=255)
    is_admin: bool = Field(default=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class RefreshToken(SQLModel, table=True):
    """One refresh token. Tokens rotated from one login share a `family_id`.

    A token is live while it is neither used (rotated) nor revoked nor expired. Presenting a used
    token again means it was stolen or replayed, so the whole family is revoked.
    """

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID = parent_key("users.id")
    family_id: uuid.UUID = Field(index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


async def get_user(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, *, email: str) -> User | None:
    result = await session.exec(select(User).where(User.email == email))
    return result.first()


async def add_user(
    session: AsyncSession, *, email: str, password_hash: str, is_admin: bool, now: datetime
) -> User:
    user = User(email=email, password_hash=password_hash, is_admin=is_admin, created_at=now)
    return await insert(session, user)


async def add_refresh_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: str,
    now: datetime,
    expires_at: datetime,
) -> RefreshToken:
    token = RefreshToken(
        user_id=user_id,
        family_id=family_id,
        token_hash=token_hash,
        created_at=now,
        expires_at=expires_at,
    )
    return await insert(session, token)


async def get_refresh_token(session: AsyncSession, *, token_hash: str) -> RefreshToken | None:
    result = await session.exec(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
    return result.first()


@dataclass(frozen=True, slots=True)
class ClaimedToken:
    user_id: uuid.UUID
    family_id: uuid.UUID


async def claim_refresh_token(
    session: AsyncSession, *, token_hash: str, now: datetime
) -> ClaimedToken | None:
    """Mark a live, unused token used, in one statement; None when it was not (unknown,
    revoked, expired, or already used: a concurrent use that got there first included)."""
    statement = (
        update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.revoked_at).is_(None),
            col(RefreshToken.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(RefreshToken.user_id), col(RefreshToken.family_id))
    )
    row = (await session.exec(statement)).first()
    return ClaimedToken(user_id=row[0], family_id=row[1]) if row is not None else None


async def revoke_family(session: AsyncSession, *, family_id: uuid.UUID, now: datetime) -> None:
    await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


async def is_family_active(session: AsyncSession, *, family_id: uuid.UUID) -> bool:
    """Whether a login session still has a token that was not revoked."""
    statement = select(RefreshToken.id).where(
        RefreshToken.family_id == family_id, col(RefreshToken.revoked_at).is_(None)
    )
    result = await session.exec(statement.limit(1))
    return result.first() is not None


async def revoke_user_sessions(
    session: AsyncSession, *, user_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    """Revoke every live refresh token of a user; return the login sessions they were of."""
    statement = (
        update(RefreshToken)
        .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
        .returning(col(RefreshToken.family_id))
    )
    return sorted({row[0] for row in (await session.exec(statement)).all()})


async def set_password_hash(
    session: AsyncSession, *, user_id: uuid.UUID, password_hash: str
) -> None:
    await session.exec(
        update(User).where(col(User.id) == user_id).values(password_hash=password_hash)
    )


async def set_email(session: AsyncSession, *, user_id: uuid.UUID, email: str) -> None:
    await session.exec(update(User).where(col(User.id) == user_id).values(email=email))


async def delete_user(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Delete a user; what they own goes with them (ON DELETE CASCADE)."""
    await session.exec(delete(User).where(col(User.id) == user_id))
