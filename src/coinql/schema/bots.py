"""Bots: what they hold and did, their lifecycle, and the emergency stop (their orders and
fills are in `coinql.schema.orders`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Protocol, Self

import strawberry
from strawberry.types import Info

from coinql.domain.backtest_config import Sizing
from coinql.domain.bots import BotRisk
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Interval
from coinql.domain.divergence import DifferenceKind
from coinql.domain.ledger import AMOUNT_PLACES, POSITIVE_AMOUNT
from coinql.resolvers import bots as bot_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.schema.accounts import ExchangeConnection
from coinql.schema.backtest_runs import TradeStatistics
from coinql.schema.bounds import PageSizeArgument, RiskFreeRateArgument, bounded
from coinql.schema.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated
from coinql.schema.errors import NotFound as NotFoundError
from coinql.schema.nodes import Connection, OwnedNode, decode_id, keyset_before, keyset_page
from coinql.schema.orders import ORDER_CURSOR, Fill, Order
from coinql.schema.performance import Performance
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.portfolio import Portfolio, Position
from coinql.store import bots as bot_store

strawberry.enum(bot_store.BotStatus, description="CREATED -> RUNNING <-> PAUSED -> STOPPED; ERROR.")
strawberry.enum(bot_store.BotMode, description="PAPER: coinql's paper exchange; LIVE: real.")
strawberry.enum(DifferenceKind, description="Why a bot's trade differs from its backtest's.")
BOT_CURSOR = "bot"


@strawberry.type
class TradeDifference:
    index: int = strawberry.field(description="The round trip, 0 first.")
    kind: DifferenceKind
    detail: str


@strawberry.type(
    description="The bot against its strategy backtested over the candles it saw (fills at"
    " the close, its fees and slippage), round trip by round trip."
)
class Divergence:
    backtest_return: float | None
    bot_return: float | None
    trades_compared: int
    differing_trades: int
    differences: list[TradeDifference]


@strawberry.type(description="A strategy trading one symbol on closed candles of the feed.")
class Bot(OwnedNode):
    name: str
    mode: bot_store.BotMode
    status: bot_store.BotStatus
    reason: str | None = strawberry.field(description="Why it paused, stopped or failed.")
    symbol: str
    interval: Interval
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    model: strawberry.Private[bot_store.Bot]

    @classmethod
    def from_model(cls, row: bot_store.Bot) -> Self:
        return cls(
            name=row.name,
            mode=bot_store.BotMode(row.mode),
            status=bot_store.BotStatus(row.status),
            reason=row.reason,
            symbol=row.symbol,
            interval=Interval(row.interval),
            created_at=row.created_at,
            started_at=row.started_at,
            stopped_at=row.stopped_at,
            model=row,
        )

    @staticmethod
    async def load_owned(context: Context, bot_id: uuid.UUID) -> Any:
        return await bot_resolvers.get_bot(context, bot_id=bot_id)

    async def _book(self, info: Info[Context, None]) -> Any:
        key = f"bot-book:{self.model.id}"
        found = info.context.cache.get(key)
        if found is None:
            found = info.context.cache[key] = await bot_resolvers.book_of(info.context, self.model)
        return found

    @strawberry.field(description="LIVE: the exchange connection it trades on.")
    async def connection(self, info: Info[Context, None]) -> ExchangeConnection | None:
        return await ExchangeConnection.of_row(info.context, self.model.connection_id)

    @strawberry.field(
        description="The portfolio its fills are booked into (and whose risk"
        " limits pause it), if any."
    )
    async def portfolio(self, info: Info[Context, None]) -> Portfolio | None:
        return await Portfolio.of_row(info.context, self.model.portfolio_id)

    @strawberry.field(description="Cash plus the position at the last price.")
    async def value(self, info: Info[Context, None]) -> Decimal:
        return (await self._book(info)).value  # type: ignore[no-any-return]

    @strawberry.field
    async def cash(self, info: Info[Context, None]) -> Decimal:
        return (await self._book(info)).cash  # type: ignore[no-any-return]

    @strawberry.field
    async def realized_pnl(self, info: Info[Context, None]) -> Decimal:
        return (await self._book(info)).realized_pnl  # type: ignore[no-any-return]

    @strawberry.field
    async def unrealized_pnl(self, info: Info[Context, None]) -> Decimal:
        return (await self._book(info)).unrealized_pnl  # type: ignore[no-any-return]

    @strawberry.field
    async def fees_paid(self, info: Info[Context, None]) -> Decimal:
        return (await self._book(info)).fees_paid  # type: ignore[no-any-return]

    @strawberry.field(description="The open position; null when flat.")
    async def position(self, info: Info[Context, None]) -> Position | None:
        book = await self._book(info)
        for held in book.positions:
            if held.asset == self.symbol and held.quantity != 0:
                return Position.from_model(held, book)
        return None

    @strawberry.field(description="Its orders, newest first.")
    async def orders(
        self, info: Info[Context, None], first: PageSizeArgument = 20, after: str | None = None
    ) -> Connection[Order] | None:
        rows = await bot_resolvers.orders_of(
            info.context, self.model, first=first + 1, before=keyset_before(after, ORDER_CURSOR)
        )
        return keyset_page(rows, Order.from_model, first=first, after=after, kind=ORDER_CURSOR)

    @strawberry.field(description="Its newest fills, oldest first.")
    async def fills(
        self, info: Info[Context, None], first: PageSizeArgument = 20
    ) -> list[Fill] | None:
        rows = await bot_resolvers.fills_of(info.context, self.model, first=first)
        return [Fill.from_model(row) for row in rows]

    @strawberry.field(
        description="The tear sheet of its value at each close since it first acted on a"
        " candle; null before."
    )
    async def performance(
        self, info: Info[Context, None], risk_free_rate: RiskFreeRateArgument = 0.0
    ) -> Performance | None:
        stream = await bot_resolvers.return_stream_of(
            info.context, self.model, risk_free_rate=risk_free_rate
        )
        if stream is None:
            return None
        start = int(stream.timestamps[0]) if stream.timestamps.size else None
        benchmarks = benchmark_loader(info.context, interval=stream.interval, start=start, end=None)
        return Performance.from_model(stream, benchmarks)

    @strawberry.field(description="Statistics of its closed round trips (flat to flat).")
    async def trade_statistics(self, info: Info[Context, None]) -> TradeStatistics:
        found = await bot_resolvers.trade_statistics_of(info.context, self.model)
        return TradeStatistics.from_model(found)

    @strawberry.field(description="Null until it has acted on a candle.")
    async def divergence(self, info: Info[Context, None]) -> Divergence | None:
        found = await bot_resolvers.divergence_of(info.context, self.model)
        if found is None:
            return None
        return Divergence(
            backtest_return=found.backtest_return,
            bot_return=found.bot_return,
            trades_compared=found.trades_compared,
            differing_trades=found.differing_trades,
            differences=[
                TradeDifference(index=d.index, kind=d.kind, detail=d.detail)
                for d in found.differences
            ],
        )


BPS = Bounds(0, 1_000)
SHARE = Bounds(0, 1, low_open=True, places=AMOUNT_PLACES)
OPEN_ORDERS = Bounds(1, 1_000)


@strawberry.input
class BotRiskInput:
    max_order_value: Decimal | None = bounded(
        POSITIVE_AMOUNT, default=None, description="The most one order may be worth, in USDT."
    )
    max_position_fraction: Decimal | None = bounded(
        SHARE, default=None, description="The position's largest share of the bot's value."
    )
    max_open_orders: int | None = bounded(OPEN_ORDERS, default=None)
    daily_loss_limit: Decimal | None = bounded(
        Bounds(0, 1, low_open=True, high_open=True, places=AMOUNT_PLACES),
        default=None,
        description="The day's loss, as a fraction of its starting value, that pauses the bot.",
    )


@strawberry.input
class CreateBotInput:
    name: str
    strategy_id: strawberry.ID = strawberry.field(description="A saved signal strategy.")
    symbol: str
    interval: Interval
    mode: bot_store.BotMode = bot_store.BotMode.PAPER
    capital: Decimal = bounded(POSITIVE_AMOUNT, description="A paper bot's starting USDT.")
    fee_bps: float = bounded(BPS, default=10.0, description="Of each fill's value.")
    slippage_bps: float = bounded(BPS, default=5.0, description="Of each market fill's price.")
    sizing: Sizing = Sizing.ALL_IN
    fraction: float = bounded(
        Bounds(0, 1, low_open=True), default=1.0, description="FIXED_FRACTION's share."
    )
    risk: BotRiskInput | None = None
    connection_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="LIVE: the exchange connection it trades on (its portfolio"
        " is the connection's).",
    )
    portfolio_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="PAPER: a USDT portfolio of yours its capital and fills are"
        " booked into (its value, PnL and risk limits then count the bot).",
    )


class StopCounts(Protocol):
    """What a stop did (`coinql.realtime.bots.Stopped`)."""

    @property
    def bots(self) -> int: ...

    @property
    def orders_cancelled(self) -> int: ...

    @property
    def positions_closed(self) -> int: ...


@strawberry.type
class EmergencyStopResult:
    bots_stopped: int
    orders_cancelled: int
    positions_closed: int

    @classmethod
    def of(cls, stopped: StopCounts) -> EmergencyStopResult:
        return cls(
            bots_stopped=stopped.bots,
            orders_cancelled=stopped.orders_cancelled,
            positions_closed=stopped.positions_closed,
        )


BotResult = Annotated[
    Bot | InvalidInput | NotFoundError | Conflict | Forbidden | NotAuthenticated,
    strawberry.union("BotResult"),
]
EmergencyStopOutcome = Annotated[
    EmergencyStopResult | Forbidden | NotAuthenticated, strawberry.union("EmergencyStopOutcome")
]


@strawberry.type
class BotQuery:
    @strawberry.field(description="One of the caller's bots.", permission_classes=[IsAuthenticated])
    async def bot(self, info: Info[Context, None], id: strawberry.ID) -> Bot | None:
        return await Bot.owned(info, id)

    @strawberry.field(
        description="The caller's bots, newest first.", permission_classes=[IsAuthenticated]
    )
    async def bots(
        self, info: Info[Context, None], first: PageSizeArgument = 20, after: str | None = None
    ) -> Connection[Bot] | None:
        rows = await bot_resolvers.list_bots(
            info.context, first=first + 1, after=keyset_before(after, BOT_CURSOR)
        )
        return keyset_page(rows, Bot.from_model, first=first, after=after, kind=BOT_CURSOR)


def _risk(given: BotRiskInput | None) -> BotRisk:
    if given is None:
        return BotRisk()
    return BotRisk(
        max_order_value=given.max_order_value,
        max_position_fraction=given.max_position_fraction,
        max_open_orders=given.max_open_orders,
        daily_loss_limit=given.daily_loss_limit,
    )


@strawberry.type
class BotMutation:
    @strawberry.mutation(
        description="Create a bot (CREATED).", permission_classes=[IsAuthenticated]
    )
    async def create_bot(
        self, info: Info[Context, None], input: CreateBotInput
    ) -> BotResult | None:
        row = await bot_resolvers.create_bot(
            info.context,
            bot_resolvers.NewBot(
                name=input.name,
                strategy_id=decode_id(input.strategy_id, "Strategy"),
                symbol=input.symbol,
                interval=input.interval,
                mode=input.mode.value,
                capital=input.capital,
                fee_bps=input.fee_bps,
                slippage_bps=input.slippage_bps,
                sizing=input.sizing,
                fraction=input.fraction,
                risk=_risk(input.risk),
                connection_id=decode_id(input.connection_id, "ExchangeConnection")
                if input.connection_id
                else None,
                portfolio_id=decode_id(input.portfolio_id, "Portfolio")
                if input.portfolio_id
                else None,
            ),
        )
        return Bot.from_model(row)

    @strawberry.mutation(
        description="Start (or resume) a bot: it trades on the candles that close from now on.",
        permission_classes=[IsAuthenticated],
    )
    async def start_bot(self, info: Info[Context, None], id: strawberry.ID) -> BotResult | None:
        return Bot.from_model(
            await bot_resolvers.start_bot(info.context, bot_id=decode_id(id, "Bot"))
        )

    @strawberry.mutation(description="Pause a running bot.", permission_classes=[IsAuthenticated])
    async def pause_bot(self, info: Info[Context, None], id: strawberry.ID) -> BotResult | None:
        return Bot.from_model(
            await bot_resolvers.pause_bot(info.context, bot_id=decode_id(id, "Bot"))
        )

    @strawberry.mutation(
        description="Stop a bot for good: its open orders are cancelled and, with"
        " closePosition, its position sold at the live price.",
        permission_classes=[IsAuthenticated],
    )
    async def stop_bot(
        self, info: Info[Context, None], id: strawberry.ID, close_position: bool = False
    ) -> BotResult | None:
        row = await bot_resolvers.stop_bot(
            info.context, bot_id=decode_id(id, "Bot"), close_position=close_position
        )
        return Bot.from_model(row)

    @strawberry.mutation(
        description="Stop every bot of the caller, cancel their open orders and, with"
        " closePositions, sell their positions. Audited.",
        permission_classes=[IsAuthenticated],
    )
    async def emergency_stop(
        self, info: Info[Context, None], close_positions: bool = False
    ) -> EmergencyStopOutcome | None:
        found = await bot_resolvers.emergency_stop(info.context, close_positions=close_positions)
        return EmergencyStopResult.of(found)

    @strawberry.mutation(
        description="Admins: the emergency stop for every user's bots.",
        permission_classes=[IsAuthenticated],
    )
    async def emergency_stop_all(
        self, info: Info[Context, None], close_positions: bool = False
    ) -> EmergencyStopOutcome | None:
        found = await bot_resolvers.emergency_stop(
            info.context, close_positions=close_positions, everyone=True
        )
        return EmergencyStopResult.of(found)
