"""Per-portfolio risk limits and the alerts their breaches raised. Nothing here commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Float, ForeignKey
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.store.db import UTCDateTime, get_if_owned, insert, parent_key

LIMITS = ("max_drawdown", "value_at_risk_99", "max_position_weight", "daily_loss")


class RiskLimits(SQLModel, table=True):
    """Thresholds (positive fractions; None = no limit) and which are breached right now, so
    that an alert fires once per breach and again only after the value came back."""

    __tablename__ = "risk_limits"

    portfolio_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("portfolios.id", ondelete="CASCADE"), primary_key=True)
    )
    owner_id: uuid.UUID = Field(index=True)
    max_drawdown: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    value_at_risk_99: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    max_position_weight: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    daily_loss: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    breached: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))

    def thresholds(self) -> dict[str, float]:
        return {name: value for name in LIMITS if (value := getattr(self, name)) is not None}


class Alert(SQLModel, table=True):
    __tablename__ = "alerts"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    portfolio_id: uuid.UUID = parent_key("portfolios.id")
    owner_id: uuid.UUID = Field(index=True)
    limit: str = Field(max_length=30)
    observed: float
    threshold: float
    triggered_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


async def get_limits(
    session: AsyncSession, *, portfolio_id: uuid.UUID, owner_id: uuid.UUID
) -> RiskLimits | None:
    """The limits of a portfolio of `owner_id`'s; None for none set and for another's alike."""
    return await get_if_owned(session, RiskLimits, portfolio_id, owner_id=owner_id)


async def set_limits(
    session: AsyncSession,
    *,
    portfolio_id: uuid.UUID,
    owner_id: uuid.UUID,
    values: dict[str, float | None],
    now: datetime,
) -> RiskLimits:
    limits = await get_limits(session, portfolio_id=portfolio_id, owner_id=owner_id)
    if limits is None:
        limits = RiskLimits(portfolio_id=portfolio_id, owner_id=owner_id, updated_at=now)
        session.add(limits)
    for name, value in values.items():
        setattr(limits, name, value)
    limits.breached = [name for name in limits.breached if getattr(limits, name) is not None]
    limits.updated_at = now
    await session.flush()
    return limits


async def all_limits(session: AsyncSession) -> list[RiskLimits]:
    return list((await session.exec(select(RiskLimits))).all())


async def add_alert(session: AsyncSession, *, alert: Alert) -> Alert:
    return await insert(session, alert)


async def list_alerts(
    session: AsyncSession, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID | None, limit: int
) -> list[Alert]:
    statement = select(Alert).where(Alert.owner_id == owner_id)
    if portfolio_id is not None:
        statement = statement.where(Alert.portfolio_id == portfolio_id)
    statement = statement.order_by(col(Alert.triggered_at).desc()).limit(limit)
    return list((await session.exec(statement)).all())


def alert_payload(alert: Alert) -> dict[str, Any]:
    return {
        "portfolioId": str(alert.portfolio_id),
        "limit": alert.limit,
        "observed": alert.observed,
        "threshold": alert.threshold,
        "triggeredAt": alert.triggered_at.isoformat(),
    }
