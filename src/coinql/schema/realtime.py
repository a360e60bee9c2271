"""Subscriptions, risk limits and alerts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

import strawberry
from strawberry.types import Info

from coinql.domain.bounds import Bounds
from coinql.resolvers import realtime as realtime_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import PageSizeArgument, bounded
from coinql.schema.enums import Interval, JobStatus
from coinql.schema.errors import InvalidInput, NotAuthenticated, NotFound, naming
from coinql.schema.nodes import decode_id, global_id
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.scalars import moment
from coinql.store import risk as risk_store


@strawberry.type
class PriceTick:
    symbol: str
    price: float
    timestamp: datetime
    source: str = strawberry.field(description='"demo" for the synthetic feed, else the exchange.')


@strawberry.type(description="The forming candle; a last update with closed: true ends it.")
class CandleUpdate:
    symbol: str
    interval: Interval
    timestamp: datetime = strawberry.field(description="Open time.")
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


@strawberry.type
class PortfolioValueUpdate:
    timestamp: datetime
    value: Decimal
    unrealized_pnl: Decimal
    day_change: Decimal = strawberry.field(description="Value now minus at the last daily close.")


@strawberry.type
class JobProgressUpdate:
    job_id: strawberry.ID
    status: JobStatus
    progress: float
    stage: str


@strawberry.type
class RiskAlert:
    portfolio_id: strawberry.ID
    limit: str = strawberry.field(
        description="max_drawdown, value_at_risk_99, max_position_weight or daily_loss."
    )
    observed: float
    threshold: float
    triggered_at: datetime

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Self:
        return cls(
            portfolio_id=global_id("Portfolio", payload["portfolioId"]),
            limit=payload["limit"],
            observed=payload["observed"],
            threshold=payload["threshold"],
            triggered_at=datetime.fromisoformat(payload["triggeredAt"]),
        )

    @classmethod
    def from_model(cls, alert: risk_store.Alert) -> Self:
        return cls.from_payload(risk_store.alert_payload(alert))


@strawberry.type(description="Limits are positive fractions; null means no limit.")
class RiskLimits:
    max_drawdown: float | None
    value_at_risk_99: float | None = strawberry.field(description="1-day historical VaR 99.")
    max_position_weight: float | None
    daily_loss: float | None
    breached: list[str]

    @classmethod
    def from_model(cls, limits: risk_store.RiskLimits) -> Self:
        return cls(
            max_drawdown=limits.max_drawdown,
            value_at_risk_99=limits.value_at_risk_99,
            max_position_weight=limits.max_position_weight,
            daily_loss=limits.daily_loss,
            breached=list(limits.breached),
        )


# Each limit is a loss or a weight as a fraction: breached above it.
RISK_LIMIT = Bounds(0, 1, low_open=True)


@strawberry.input
class RiskLimitsInput:
    max_drawdown: float | None = bounded(RISK_LIMIT, default=None)
    value_at_risk_99: float | None = bounded(
        RISK_LIMIT, default=None, description="1-day historical VaR 99."
    )
    max_position_weight: float | None = bounded(RISK_LIMIT, default=None)
    daily_loss: float | None = bounded(RISK_LIMIT, default=None)


SetRiskLimitsResult = Annotated[
    RiskLimits | InvalidInput | NotFound | NotAuthenticated, strawberry.union("SetRiskLimitsResult")
]


@strawberry.type
class RealtimeQuery:
    @strawberry.field(
        description="Alerts raised by risk limits, newest first.",
        permission_classes=[IsAuthenticated],
    )
    async def alerts(
        self,
        info: Info[Context, None],
        portfolio_id: strawberry.ID | None = None,
        first: PageSizeArgument = 50,
    ) -> list[RiskAlert] | None:
        with naming("portfolioId"):
            found = await realtime_resolvers.list_alerts(
                info.context,
                portfolio_id=decode_id(portfolio_id, "Portfolio") if portfolio_id else None,
                first=first,
            )
        return [RiskAlert.from_model(alert) for alert in found]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def risk_limits(
        self, info: Info[Context, None], portfolio_id: strawberry.ID
    ) -> RiskLimits | None:
        with naming("portfolioId"):
            found = await realtime_resolvers.risk_limits(
                info.context, decode_id(portfolio_id, "Portfolio")
            )
        return RiskLimits.from_model(found) if found else None


@strawberry.type
class RealtimeMutation:
    @strawberry.mutation(
        description="Set (or clear, with null) a portfolio's risk limits.",
        permission_classes=[IsAuthenticated],
    )
    async def set_risk_limits(
        self, info: Info[Context, None], portfolio_id: strawberry.ID, limits: RiskLimitsInput
    ) -> SetRiskLimitsResult | None:
        found = await realtime_resolvers.set_risk_limits(
            info.context,
            portfolio_id=decode_id(portfolio_id, "Portfolio"),
            values={
                "max_drawdown": limits.max_drawdown,
                "value_at_risk_99": limits.value_at_risk_99,
                "max_position_weight": limits.max_position_weight,
                "daily_loss": limits.daily_loss,
            },
        )
        return RiskLimits.from_model(found)


@strawberry.interface(description="Something a bot did.")
class BotEvent:
    bot_id: strawberry.ID
    timestamp: datetime


@strawberry.type(description="An order was written, sent, filled, cancelled or refused.")
class OrderEvent(BotEvent):
    order_id: strawberry.ID
    side: str
    status: str
    price: Decimal | None = strawberry.field(description="The average fill price, once filled.")
    quantity: Decimal


@strawberry.type(description="An order filled.")
class FillEvent(BotEvent):
    order_id: strawberry.ID
    side: str
    # Always set; nullable as OrderEvent's price is, so that both can be selected together.
    price: Decimal | None
    quantity: Decimal
    fee: Decimal


@strawberry.type(description="The bot started, paused, stopped or failed (with why).")
class BotStatusEvent(BotEvent):
    status: str
    reason: str | None


@strawberry.type(description="The bot's value at the latest price.")
class BotValueEvent(BotEvent):
    value: Decimal
    unrealized_pnl: Decimal


BOT_EVENT_TYPES = [OrderEvent, FillEvent, BotStatusEvent, BotValueEvent]


def bot_event(event: dict[str, Any]) -> BotEvent:
    """The typed event of a payload the bot engine published (coinql.realtime.bots)."""
    bot_id = global_id("Bot", event["botId"])
    at = datetime.fromisoformat(event["timestamp"])
    kind = event["kind"]
    if kind == "order":
        return OrderEvent(
            bot_id=bot_id,
            timestamp=at,
            order_id=global_id("Order", event["orderId"]),
            side=event["side"],
            status=event["status"],
            price=None if event["price"] is None else Decimal(event["price"]),
            quantity=Decimal(event["quantity"]),
        )
    if kind == "fill":
        return FillEvent(
            bot_id=bot_id,
            timestamp=at,
            order_id=global_id("Order", event["orderId"]),
            side=event["side"],
            price=Decimal(event["price"]),
            quantity=Decimal(event["quantity"]),
            fee=Decimal(event["fee"]),
        )
    if kind == "value":
        return BotValueEvent(
            bot_id=bot_id,
            timestamp=at,
            value=Decimal(event["value"]),
            unrealized_pnl=Decimal(event["unrealizedPnl"]),
        )
    return BotStatusEvent(
        bot_id=bot_id, timestamp=at, status=event["status"], reason=event.get("reason")
    )


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Live prices (the latest, for slow clients).")
    async def prices(
        self, info: Info[Context, None], symbols: list[str]
    ) -> AsyncGenerator[PriceTick, None]:
        async for tick in realtime_resolvers.prices(info.context, symbols):
            yield PriceTick(
                symbol=tick["symbol"],
                price=tick["price"],
                timestamp=moment(tick["timestamp"]),
                source=tick["source"],
            )

    @strawberry.subscription(description="The forming candle, and closed: true once it ends.")
    async def candles(
        self, info: Info[Context, None], symbol: str, interval: Interval = Interval.M1
    ) -> AsyncGenerator[CandleUpdate, None]:
        async for candle in realtime_resolvers.candles(info.context, symbol, interval):
            yield CandleUpdate(
                symbol=candle["symbol"],
                interval=Interval(candle["interval"]),
                timestamp=moment(candle["timestamp"]),
                open=candle["open"],
                high=candle["high"],
                low=candle["low"],
                close=candle["close"],
                volume=candle["volume"],
                closed=candle["closed"],
            )

    @strawberry.subscription(description="Value and PnL of one of your portfolios, throttled.")
    async def portfolio_value(
        self, info: Info[Context, None], portfolio_id: strawberry.ID
    ) -> AsyncGenerator[PortfolioValueUpdate, None]:
        async for update in realtime_resolvers.portfolio_values(
            info.context, decode_id(portfolio_id, "Portfolio")
        ):
            yield PortfolioValueUpdate(
                timestamp=moment(update["timestamp"]),
                value=update["value"],
                unrealized_pnl=update["unrealizedPnl"],
                day_change=update["dayChange"],
            )

    @strawberry.subscription(description="A job's progress, ending after its final status.")
    async def job_progress(
        self, info: Info[Context, None], job_id: strawberry.ID
    ) -> AsyncGenerator[JobProgressUpdate, None]:
        async for update in realtime_resolvers.job_progress(info.context, decode_id(job_id, "Job")):
            yield JobProgressUpdate(
                job_id=global_id("Job", update["jobId"]),
                status=JobStatus(update["status"]),
                progress=update["progress"],
                stage=update["stage"],
            )

    @strawberry.subscription(
        description="One of your bots' orders, fills, status changes and value, as they happen."
    )
    async def bot_events(
        self, info: Info[Context, None], bot_id: strawberry.ID
    ) -> AsyncGenerator[BotEvent, None]:
        async for event in realtime_resolvers.bot_events(info.context, decode_id(bot_id, "Bot")):
            yield bot_event(event)

    @strawberry.subscription(
        description="Breaches of your risk limits (all portfolios if omitted)."
    )
    async def risk_alerts(
        self, info: Info[Context, None], portfolio_id: strawberry.ID | None = None
    ) -> AsyncGenerator[RiskAlert, None]:
        async for alert in realtime_resolvers.alerts(
            info.context, decode_id(portfolio_id, "Portfolio") if portfolio_id else None
        ):
            yield RiskAlert.from_payload(alert)
