"""Saved strategies: signal strategies and allocation strategies, validated."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Self

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from coinql.domain.bounds import Bounds
from coinql.domain.strategies import MAX_WINDOW, AllocationConstraints
from coinql.resolvers import strategies as strategy_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import SIGNED_WEIGHT, PageSizeArgument, bounded
from coinql.schema.enums import Rebalance, UniverseRank
from coinql.schema.errors import InvalidInput, NotAuthenticated
from coinql.schema.nodes import (
    Connection,
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_id,
    offset_after,
)
from coinql.schema.permissions import IsAuthenticated
from coinql.store import portfolio as portfolio_store

# Periods: a fast average of one period is the price itself; anything slower needs two.
FAST_WINDOW = Bounds(1, MAX_WINDOW)
WINDOW = Bounds(2, MAX_WINDOW)
RSI_LEVEL = Bounds(0, 100, low_open=True, high_open=True)
MOMENTUM_THRESHOLD = Bounds(-1, 10, low_open=True, high_open=True)  # a return
MAX_UNIVERSE = 200


@strawberry.input
class CrossInput:
    fast: int = bounded(FAST_WINDOW, description="Periods; shorter than slow.")
    slow: int = bounded(WINDOW, description="Periods.")


@strawberry.input
class RsiReversionInput:
    window: int = bounded(WINDOW, default=14, description="Periods.")
    lower: float = bounded(RSI_LEVEL, default=30.0, description="Buy below; under upper.")
    upper: float = bounded(RSI_LEVEL, default=70.0, description="Sell above.")


@strawberry.input
class DonchianInput:
    entry: int = bounded(WINDOW, default=20, description="Periods of the breakout channel.")
    exit: int = bounded(WINDOW, default=10, description="Periods of the exit channel.")


@strawberry.input
class MomentumInput:
    lookback: int = bounded(WINDOW, description="Periods.")
    threshold: float = bounded(
        MOMENTUM_THRESHOLD, default=0.0, description="The lookback's return to be long above."
    )


@strawberry.input
class AllocationInput:
    lookback: int = bounded(WINDOW, default=90, description="Periods of history to estimate on.")


@strawberry.input(
    description="A signal written over the indicators, never run as code: e.g. entry"
    ' "crossover(ema(close, 12), ema(close, 26)) and rsi(close, 14) < 70". The functions,'
    " operators and conventions are in docs/metrics.md; $1, $2, ... are `parameters`."
)
class ExpressionInput:
    entry: str = strawberry.field(description="When to buy (flat): a condition.")
    exit: str = strawberry.field(description="When to sell (long): a condition.")
    parameters: list[float] | None = bounded(
        Bounds(-MAX_WINDOW, MAX_WINDOW),
        default=None,
        description="The values of $1, $2, ... in order (a sweep's grid: p1, p2).",
    )

    def params(self) -> dict[str, Any]:
        numbered = {f"p{index}": value for index, value in enumerate(self.parameters or [], 1)}
        return {"entry": self.entry, "exit": self.exit, **numbered}


@strawberry.input(
    one_of=True, description="Exactly one strategy, e.g. {smaCross: {fast: 20, slow: 50}}."
)
class StrategyKindInput:
    sma_cross: CrossInput | None = strawberry.UNSET
    ema_cross: CrossInput | None = strawberry.UNSET
    rsi_reversion: RsiReversionInput | None = strawberry.UNSET
    donchian_breakout: DonchianInput | None = strawberry.UNSET
    momentum: MomentumInput | None = strawberry.UNSET
    expression: ExpressionInput | None = strawberry.UNSET
    equal_weight: AllocationInput | None = strawberry.UNSET
    market_cap_weight: AllocationInput | None = strawberry.UNSET
    inverse_volatility: AllocationInput | None = strawberry.UNSET
    min_volatility: AllocationInput | None = strawberry.UNSET
    max_sharpe: AllocationInput | None = strawberry.UNSET
    risk_parity: AllocationInput | None = strawberry.UNSET
    hierarchical_risk_parity: AllocationInput | None = strawberry.UNSET

    def chosen(self) -> tuple[str, dict[str, Any]]:
        for name, value in vars(self).items():
            if value is not None and value is not strawberry.UNSET:
                camel = "".join(
                    part if i == 0 else part.title() for i, part in enumerate(name.split("_"))
                )
                if isinstance(value, ExpressionInput):
                    return camel, value.params()
                return camel, dict(vars(value))
        raise AssertionError("@oneOf guarantees one option")  # pragma: no cover


@strawberry.input
class AllocationConstraintsInput:
    min_weight: float = bounded(SIGNED_WEIGHT, default=0.0)
    max_weight: float = bounded(SIGNED_WEIGHT, default=1.0)
    long_only: bool = True
    max_assets: int | None = bounded(Bounds(1, MAX_UNIVERSE), default=None)
    turnover_cap: float | None = bounded(
        Bounds(0, 2, low_open=True),
        default=None,
        description="Largest one-way turnover per rebalance, a fraction.",
    )


@strawberry.input
class StrategyInput:
    name: str
    kind: StrategyKindInput
    symbols: list[str] | None = None
    universe_top: int | None = bounded(
        Bounds(1, MAX_UNIVERSE),
        default=None,
        description="Or the top N candidates at each rebalance, ranked by universeBy.",
    )
    universe_by: UniverseRank = strawberry.field(
        default=UniverseRank.QUOTE_VOLUME, description="How universeTop ranks."
    )
    constraints: AllocationConstraintsInput | None = None
    rebalance: Rebalance | None = None


@strawberry.type(description="A saved strategy; `definition` is its validated specification.")
class Strategy(OwnedNode):
    name: str
    family: str = strawberry.field(description='"signal" or "allocation".')
    kind: str
    definition: JSON
    created_at: datetime
    model: strawberry.Private[portfolio_store.Strategy]

    @classmethod
    def from_model(cls, strategy: portfolio_store.Strategy) -> Self:
        return cls(
            name=strategy.name,
            family=strategy.family,
            kind=str(strategy.spec["kind"]),
            definition=JSON(strategy.spec),
            created_at=strategy.created_at,
            model=strategy,
        )

    @staticmethod
    async def load_owned(context: Context, strategy_id: uuid.UUID) -> Any:
        return await strategy_resolvers.get_strategy(context, strategy_id=strategy_id)


CreateStrategyResult = Annotated[
    Strategy | InvalidInput | NotAuthenticated, strawberry.union("CreateStrategyResult")
]


@strawberry.type
class StrategyQuery:
    @strawberry.field(description="The caller's strategies.", permission_classes=[IsAuthenticated])
    async def strategies(
        self, info: Info[Context, None], first: PageSizeArgument = 50, after: str | None = None
    ) -> Connection[Strategy] | None:
        offset = offset_after(after)
        found = await strategy_resolvers.list_strategies(
            info.context, first=first + 1, offset=offset
        )
        return Connection[Strategy].from_rows(
            found, Strategy.from_model, first=first, offset=offset
        )

    @strawberry.field(
        description="One of the caller's strategies; null if absent or someone else's.",
        permission_classes=[IsAuthenticated],
    )
    async def strategy(self, info: Info[Context, None], id: strawberry.ID) -> Strategy | None:
        return await Strategy.owned(info, id)


@strawberry.type
class StrategyMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_strategy(
        self, info: Info[Context, None], input: StrategyInput
    ) -> CreateStrategyResult | None:
        kind, params = input.kind.chosen()
        limits = input.constraints
        created = await strategy_resolvers.create_strategy(
            info.context,
            strategy_resolvers.StrategyInput(
                name=input.name,
                kind=kind,
                params=params,
                symbols=input.symbols or [],
                universe_top=input.universe_top,
                constraints=AllocationConstraints(
                    limits.min_weight,
                    limits.max_weight,
                    limits.long_only,
                    limits.max_assets,
                    limits.turnover_cap,
                )
                if limits
                else None,
                rebalance=input.rebalance,
                universe_by=input.universe_by,
            ),
        )
        return Strategy.from_model(created)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_strategy(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await strategy_resolvers.delete_strategy(
            info.context, strategy_id=decode_id(id, "Strategy")
        )
        return Deleted(id=id)
