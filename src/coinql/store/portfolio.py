"""Portfolios, their transactions, and saved strategies. Every read is scoped to an owner:
someone else's portfolio looks exactly like one that does not exist. Nothing here commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, func
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.ledger import CostBasis, Transaction, TransactionKind, replay
from coinql.store.db import DecimalType, UTCDateTime, insert, parent_key


class Portfolio(SQLModel, table=True):
    __tablename__ = "portfolios"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    name: str = Field(max_length=100)
    base_currency: str = Field(max_length=20)
    cost_basis: str = Field(max_length=10, default="FIFO")
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class LedgerEntry(SQLModel, table=True):
    """One transaction. `seq` keeps the order of transactions that share a time.

    `exchange_trade_id` is set on a trade an account sync booked: unique per portfolio, so an
    exchange trade is never booked twice whatever the syncs' interleaving.
    """

    __tablename__ = "transactions"
    __table_args__ = (
        UniqueConstraint(
            "portfolio_id", "exchange_trade_id", name="uq_transactions_exchange_trade"
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    portfolio_id: uuid.UUID = parent_key("portfolios.id")
    seq: int
    kind: str = Field(max_length=20)
    asset: str = Field(max_length=20)
    quantity: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    price: Decimal | None = Field(default=None, sa_column=Column(DecimalType, nullable=True))
    fee: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    time: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    note: str | None = Field(default=None, max_length=200)
    exchange_trade_id: str | None = Field(default=None, max_length=100)

    def transaction(self) -> Transaction:
        """The entry as the ledger's domain record (what replay and valuation read)."""
        return Transaction(
            kind=TransactionKind(self.kind),
            asset=self.asset,
            quantity=self.quantity,
            time=self.time,
            price=self.price,
            fee=self.fee,
        )


class Strategy(SQLModel, table=True):
    __tablename__ = "strategies"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    name: str = Field(max_length=100)
    family: str = Field(max_length=20)  # "signal" or "allocation"
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


async def add_portfolio(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    base_currency: str,
    cost_basis: str,
    now: datetime,
) -> Portfolio:
    portfolio = Portfolio(
        owner_id=owner_id,
        name=name,
        base_currency=base_currency,
        cost_basis=cost_basis,
        created_at=now,
    )
    return await insert(session, portfolio)


async def get_portfolio(
    session: AsyncSession, *, owner_id: uuid.UUID, portfolio_id: uuid.UUID
) -> Portfolio | None:
    statement = select(Portfolio).where(
        Portfolio.id == portfolio_id, Portfolio.owner_id == owner_id
    )
    return (await session.exec(statement)).first()


async def get_portfolios(
    session: AsyncSession, *, owner_id: uuid.UUID, portfolio_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Portfolio]:
    statement = select(Portfolio).where(
        col(Portfolio.id).in_(portfolio_ids), Portfolio.owner_id == owner_id
    )
    return {portfolio.id: portfolio for portfolio in (await session.exec(statement)).all()}


async def list_portfolios(
    session: AsyncSession, *, owner_id: uuid.UUID, offset: int, limit: int
) -> list[Portfolio]:
    statement = (
        select(Portfolio)
        .where(Portfolio.owner_id == owner_id)
        .order_by(col(Portfolio.created_at), col(Portfolio.id))
        .offset(offset)
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


async def count_portfolios(session: AsyncSession, *, owner_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Portfolio).where(Portfolio.owner_id == owner_id)
    return int((await session.exec(statement)).one())


async def entries_of(
    session: AsyncSession, *, portfolio_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[LedgerEntry]]:
    """Every transaction of these portfolios in one statement, in ledger order."""
    statement = (
        select(LedgerEntry)
        .where(col(LedgerEntry.portfolio_id).in_(portfolio_ids))
        .order_by(col(LedgerEntry.time), col(LedgerEntry.seq))
    )
    found: dict[uuid.UUID, list[LedgerEntry]] = {portfolio_id: [] for portfolio_id in portfolio_ids}
    for entry in (await session.exec(statement)).all():
        found[entry.portfolio_id].append(entry)
    return found


async def exchange_trade_ids(session: AsyncSession, *, portfolio_id: uuid.UUID) -> set[str]:
    """The exchange trade ids a portfolio's ledger has booked."""
    statement = select(LedgerEntry.exchange_trade_id).where(
        LedgerEntry.portfolio_id == portfolio_id, col(LedgerEntry.exchange_trade_id).is_not(None)
    )
    return {str(trade_id) for trade_id in (await session.exec(statement)).all()}


async def next_seq(session: AsyncSession, *, portfolio_id: uuid.UUID) -> int:
    statement = select(func.coalesce(func.max(LedgerEntry.seq), 0)).where(
        LedgerEntry.portfolio_id == portfolio_id
    )
    return int((await session.exec(statement)).one()) + 1


async def add_entries(session: AsyncSession, *, entries: Sequence[LedgerEntry]) -> None:
    session.add_all(entries)
    await session.flush()


@dataclass(frozen=True, slots=True)
class NewEntry:
    """A transaction to append, with its note and (booked by a sync) its exchange trade id."""

    transaction: Transaction
    note: str | None = None
    exchange_trade_id: str | None = None


async def append_to_ledger(
    session: AsyncSession, *, portfolio: Portfolio, new: Sequence[NewEntry]
) -> None:
    """Append `new` once the whole ledger replays with it; the `LedgerError` of the first new
    transaction that breaks it otherwise (selling more than is held, ...)."""
    existing = (await entries_of(session, portfolio_ids=[portfolio.id]))[portfolio.id]
    history = [entry.transaction() for entry in existing]
    replay(
        [*history, *(entry.transaction for entry in new)],
        base_currency=portfolio.base_currency,
        method=CostBasis(portfolio.cost_basis),
        first_new=len(history),
    )
    seq = await next_seq(session, portfolio_id=portfolio.id)
    await add_entries(
        session,
        entries=[
            LedgerEntry(
                portfolio_id=portfolio.id,
                seq=seq + index,
                kind=entry.transaction.kind.value,
                asset=entry.transaction.asset,
                quantity=entry.transaction.quantity,
                price=entry.transaction.price,
                fee=entry.transaction.fee,
                time=entry.transaction.time,
                note=entry.note,
                exchange_trade_id=entry.exchange_trade_id,
            )
            for index, entry in enumerate(new)
        ],
    )


async def add_strategy(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    name: str,
    family: str,
    spec: dict[str, Any],
    now: datetime,
) -> Strategy:
    strategy = Strategy(
        owner_id=owner_id, name=name, family=family, spec=spec, created_at=now, updated_at=now
    )
    return await insert(session, strategy)


async def get_strategy(
    session: AsyncSession, *, owner_id: uuid.UUID, strategy_id: uuid.UUID
) -> Strategy | None:
    statement = select(Strategy).where(Strategy.id == strategy_id, Strategy.owner_id == owner_id)
    return (await session.exec(statement)).first()


async def list_strategies(
    session: AsyncSession, *, owner_id: uuid.UUID, offset: int, limit: int
) -> list[Strategy]:
    statement = (
        select(Strategy)
        .where(Strategy.owner_id == owner_id)
        .order_by(col(Strategy.created_at), col(Strategy.id))
        .offset(offset)
        .limit(limit)
    )
    return list((await session.exec(statement)).all())
