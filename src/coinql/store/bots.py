"""Bots, their orders and fills. Nothing here commits.

Every read is scoped to an owner (another user's bot looks like none), except `running_bots`,
which the bot runner reads for every user. A status changes in one statement from the states
it may come from (`move`), so a start, a pause and an emergency stop that race cannot both
win. An order is written (`add_order`, status NEW, `sent_at` null) before it is sent, under a
client order id unique across the store: after a crash the runner asks the exchange about the
orders it never heard back on by that id. A paper bot's book (`coinql.domain.paper.PaperBook`)
is stored with a version, changed only by whoever read the version it replaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, UniqueConstraint, func, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.executions import OrderState
from coinql.store.db import DecimalType, UTCDateTime, get_if_owned, insert, parent_key


class BotStatus(StrEnum):
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class BotMode(StrEnum):
    PAPER = "PAPER"
    LIVE = "LIVE"


OrderStatus = OrderState  # an order's states, as coinql.domain.executions reads them

OPEN_ORDER_STATUSES = (OrderStatus.NEW.value, OrderStatus.PARTIALLY_FILLED.value)
# Not stopped: what a stop (and the emergency stop) stops.
ACTIVE_STATUSES = (BotStatus.CREATED, BotStatus.RUNNING, BotStatus.PAUSED, BotStatus.ERROR)


class Bot(SQLModel, table=True):
    """A strategy trading one symbol. `config` holds the backtest config it trades by, its
    capital and risk settings; `book` a paper bot's account (`PaperBook.to_json`)."""

    __tablename__ = "bots"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID = parent_key("users.id")
    # The strategy it was made from (its spec is copied into `config`: deleting the strategy
    # leaves the bot trading as it was).
    strategy_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            ForeignKey("strategies.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    connection_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            ForeignKey("exchange_connections.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    # A paper bot's fills are booked into this portfolio of its owner's too (a LIVE bot's
    # reach its connection's portfolio through the account sync); its risk limits pause it.
    portfolio_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            ForeignKey("portfolios.id", ondelete="SET NULL"), nullable=True, index=True
        ),
    )
    name: str = Field(max_length=100)
    symbol: str = Field(max_length=20)
    interval: str = Field(max_length=4)
    mode: str = Field(max_length=10)
    status: str = Field(default=BotStatus.CREATED.value, max_length=10, index=True)
    reason: str | None = Field(default=None, max_length=300)
    config: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    book: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    version: int = Field(default=0)
    # The open time of the first candle it traded on, and of the last it acted on.
    first_live_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    last_bar_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # The (UTC) day its daily loss limit counts from, and its value when that day began.
    day_start_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    day_start_value: Decimal | None = Field(
        default=None, sa_column=Column(DecimalType, nullable=True)
    )
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    stopped_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class BotOrder(SQLModel, table=True):
    """An order of a bot's, written before it is sent. `origin` says who asked: SIGNAL,
    MANUAL, CLOSE (a stop that flattens) or EMERGENCY."""

    __tablename__ = "bot_orders"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    bot_id: uuid.UUID = parent_key("bots.id")
    client_order_id: str = Field(max_length=64, unique=True, index=True)
    exchange_order_id: str | None = Field(default=None, max_length=100)
    side: str = Field(max_length=4)
    kind: str = Field(max_length=12)
    origin: str = Field(max_length=10)
    quantity: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    price: Decimal | None = Field(default=None, sa_column=Column(DecimalType, nullable=True))
    status: str = Field(default=OrderStatus.NEW.value, max_length=20, index=True)
    filled_quantity: Decimal = Field(
        default=Decimal(0), sa_column=Column(DecimalType, nullable=False)
    )
    average_price: Decimal | None = Field(
        default=None, sa_column=Column(DecimalType, nullable=True)
    )
    fee: Decimal = Field(default=Decimal(0), sa_column=Column(DecimalType, nullable=False))
    error: str | None = Field(default=None, max_length=300)
    # Cancelled by its owner before the exchange had answered for it: cancelled once found.
    cancel_requested: bool = Field(default=False)
    created_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


class BotFillRow(SQLModel, table=True):
    """One fill of an order."""

    __tablename__ = "bot_fills"
    # One row per execution: two followers of one exchange report cannot both record it.
    __table_args__ = (UniqueConstraint("order_id", "trade_id", name="uq_bot_fills_order_trade"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    order_id: uuid.UUID = parent_key("bot_orders.id")
    bot_id: uuid.UUID = parent_key("bots.id")
    trade_id: str = Field(max_length=100)  # the exchange's (or the paper book's) trade id
    side: str = Field(max_length=4)
    price: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    quantity: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    fee: Decimal = Field(sa_column=Column(DecimalType, nullable=False))
    time: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


async def add_bot(session: AsyncSession, bot: Bot) -> Bot:
    return await insert(session, bot)


async def get_bot(session: AsyncSession, *, bot_id: uuid.UUID, owner_id: uuid.UUID) -> Bot | None:
    """Return an owner's bot; None for another's and for none alike."""
    return await get_if_owned(session, Bot, bot_id, owner_id=owner_id)


async def list_bots(
    session: AsyncSession, *, owner_id: uuid.UUID, after: datetime | None, first: int
) -> list[Bot]:
    """An owner's bots, newest first, `first` of them after the cursor's creation time."""
    statement = select(Bot).where(Bot.owner_id == owner_id)
    if after is not None:
        statement = statement.where(col(Bot.created_at) < after)
    statement = statement.order_by(col(Bot.created_at).desc(), col(Bot.id)).limit(first)
    return list((await session.exec(statement)).all())


async def running_bots(session: AsyncSession) -> list[Bot]:
    """Every user's RUNNING bots, for the runner."""
    statement = select(Bot).where(Bot.status == BotStatus.RUNNING.value).order_by(col(Bot.id))
    return list((await session.exec(statement)).all())


async def move(
    session: AsyncSession,
    *,
    bot_ids: Collection[uuid.UUID],
    owner_id: uuid.UUID | None,
    from_statuses: Collection[BotStatus],
    to: BotStatus,
    reason: str | None,
    now: datetime,
) -> list[uuid.UUID]:
    """Move the bots that are in one of `from_statuses` to `to`, in one statement; return
    those moved (the owner's only, unless `owner_id` is None: the admin's kill switch)."""
    values: dict[str, Any] = {"status": to.value, "reason": reason}
    if to is BotStatus.RUNNING:
        values |= {"started_at": now, "stopped_at": None}
    if to in (BotStatus.STOPPED, BotStatus.ERROR):
        values["stopped_at"] = now
    statement = update(Bot).where(
        col(Bot.id).in_(list(bot_ids)),
        col(Bot.status).in_([status.value for status in from_statuses]),
    )
    if owner_id is not None:
        statement = statement.where(col(Bot.owner_id) == owner_id)
    result = await session.exec(statement.values(**values).returning(col(Bot.id)))
    return [row[0] for row in result.all()]


async def owners_bots(
    session: AsyncSession, *, owner_id: uuid.UUID | None, statuses: Collection[BotStatus]
) -> list[Bot]:
    """The owner's bots (everyone's with None) in one of `statuses`."""
    statement = select(Bot).where(col(Bot.status).in_([status.value for status in statuses]))
    if owner_id is not None:
        statement = statement.where(Bot.owner_id == owner_id)
    return list((await session.exec(statement)).all())


async def live_bots_to_follow(session: AsyncSession) -> list[Bot]:
    """LIVE bots not running (paused, stopped, failed) that still have open orders: the
    runner follows those orders too."""
    has_open = (
        select(BotOrder.id)
        .where(
            col(BotOrder.bot_id) == col(Bot.id),
            col(BotOrder.status).in_(list(OPEN_ORDER_STATUSES)),
        )
        .exists()
    )
    statement = select(Bot).where(
        Bot.mode == BotMode.LIVE.value, Bot.status != BotStatus.RUNNING.value, has_open
    )
    return list((await session.exec(statement)).all())


async def bots_of_portfolio(
    session: AsyncSession, *, portfolio_id: uuid.UUID, statuses: Collection[BotStatus]
) -> list[Bot]:
    """The bots booking into a portfolio (a LIVE bot's is its connection's), in `statuses`."""
    statement = select(Bot).where(
        col(Bot.portfolio_id) == portfolio_id,
        col(Bot.status).in_([status.value for status in statuses]),
    )
    return list((await session.exec(statement)).all())


async def save_book(
    session: AsyncSession,
    *,
    bot_id: uuid.UUID,
    version: int,
    book: dict[str, Any],
    last_bar_ms: int | None = None,
) -> bool:
    """Store a paper bot's book if nobody changed it since `version`; False when someone did."""
    values: dict[str, Any] = {"book": book, "version": version + 1}
    if last_bar_ms is not None:
        values["last_bar_ms"] = last_bar_ms
    statement = (
        update(Bot)
        .where(col(Bot.id) == bot_id, col(Bot.version) == version)
        .values(**values)
        .returning(col(Bot.id))
    )
    return (await session.exec(statement)).first() is not None


async def take_turn(session: AsyncSession, *, bot_id: uuid.UUID, version: int) -> bool:
    """Move a bot's version on from `version`; False when someone moved it first."""
    statement = (
        update(Bot)
        .where(col(Bot.id) == bot_id, col(Bot.version) == version)
        .values(version=version + 1)
        .returning(col(Bot.id))
    )
    return (await session.exec(statement)).first() is not None


async def add_order(session: AsyncSession, order: BotOrder) -> BotOrder:
    """Write an order before it is sent (NEW, not yet `sent_at`)."""
    return await insert(session, order)


async def get_order(
    session: AsyncSession, *, order_id: uuid.UUID, owner_id: uuid.UUID
) -> BotOrder | None:
    """Return an owner's order (through its bot); None for another's and for none alike."""
    statement = (
        select(BotOrder)
        .join(Bot, col(Bot.id) == col(BotOrder.bot_id))
        .where(col(BotOrder.id) == order_id, col(Bot.owner_id) == owner_id)
    )
    return (await session.exec(statement)).first()


async def orders_of(
    session: AsyncSession,
    *,
    bot_id: uuid.UUID,
    statuses: Collection[str] | None = None,
    before: datetime | None = None,
    first: int | None = None,
) -> list[BotOrder]:
    """A bot's orders, newest first; only those in `statuses` when given."""
    statement = select(BotOrder).where(BotOrder.bot_id == bot_id)
    if statuses is not None:
        statement = statement.where(col(BotOrder.status).in_(list(statuses)))
    if before is not None:
        statement = statement.where(col(BotOrder.created_at) < before)
    statement = statement.order_by(col(BotOrder.created_at).desc(), col(BotOrder.id))
    if first is not None:
        statement = statement.limit(first)
    return list((await session.exec(statement)).all())


async def add_fills(session: AsyncSession, fills: Sequence[BotFillRow]) -> None:
    session.add_all(fills)
    await session.flush()


async def fills_of(
    session: AsyncSession, *, bot_id: uuid.UUID, first: int | None = None
) -> list[BotFillRow]:
    """A bot's fills, oldest first (the first `first` of the newest, when given)."""
    statement = select(BotFillRow).where(BotFillRow.bot_id == bot_id)
    if first is not None:
        statement = statement.order_by(col(BotFillRow.time).desc(), col(BotFillRow.id)).limit(first)
        return sorted((await session.exec(statement)).all(), key=lambda fill: fill.time)
    statement = statement.order_by(col(BotFillRow.time), col(BotFillRow.id))
    return list((await session.exec(statement)).all())


async def fills_of_order(session: AsyncSession, *, order_id: uuid.UUID) -> list[BotFillRow]:
    """An order's fills, oldest first."""
    statement = (
        select(BotFillRow)
        .where(BotFillRow.order_id == order_id)
        .order_by(col(BotFillRow.time), col(BotFillRow.id))
    )
    return list((await session.exec(statement)).all())


async def latest_fill_time(session: AsyncSession, *, bot_id: uuid.UUID) -> datetime | None:
    """The time of a bot's newest fill."""
    statement = select(func.max(BotFillRow.time)).where(BotFillRow.bot_id == bot_id)
    return (await session.exec(statement)).first()


async def mark_bar(
    session: AsyncSession, *, bot_id: uuid.UUID, last_bar_ms: int, first_live_ms: int
) -> None:
    """Record the candle a bot acted on last (and the first it ever acted on)."""
    await session.exec(
        update(Bot)
        .where(col(Bot.id) == bot_id)
        .values(last_bar_ms=last_bar_ms, first_live_ms=first_live_ms)
    )


async def start_day(
    session: AsyncSession, *, bot_id: uuid.UUID, day_start_ms: int, value: Decimal
) -> None:
    """Record the value a bot begins a (UTC) day with."""
    await session.exec(
        update(Bot)
        .where(col(Bot.id) == bot_id)
        .values(day_start_ms=day_start_ms, day_start_value=value)
    )
