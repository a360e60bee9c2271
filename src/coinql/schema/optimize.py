"""Optimization: target weights for an objective under constraints, and the efficient frontier."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry.types import Info

from coinql.domain import optimize as opt
from coinql.domain.bounds import Bounds
from coinql.resolvers import optimize as optimize_resolvers
from coinql.resolvers.context import Context
from coinql.schema.bounds import (
    ANNUAL_RATE,
    CONFIDENCE,
    EWMA_DECAY,
    SIGNED_WEIGHT,
    WEIGHT,
    bounded,
    bounded_argument,
)
from coinql.schema.enums import CovarianceMethod, Interval, Objective
from coinql.schema.scalars import finite, to_millis

TARGET_RETURN = Bounds(-1, 100, low_open=True)  # annual: -100 % to +10,000 %
TARGET_VOLATILITY = Bounds(0, 100, low_open=True)
L2_GAMMA = Bounds(0, 1_000)


@strawberry.type
class Weight:
    symbol: str
    weight: float


@strawberry.type
class RiskShare:
    symbol: str
    contribution: float = strawberry.field(description="Sums to volatility.")


@strawberry.type(description="Annualised: mu = mean return x P, volatility from cov x P.")
class OptimizationResult:
    weights: list[Weight]
    expected_return: float
    volatility: float
    sharpe: float | None
    risk_contributions: list[RiskShare]
    observations: int
    expected_shortfall: float | None = strawberry.field(
        description="Historical CVaR at cvarLevel of the per-period returns over the window"
        " (not annualised), a positive loss: the mean of the worst (1 - cvarLevel) periods."
    )
    conditional_drawdown_at_risk: float | None = strawberry.field(
        description="Historical CDaR at cvarLevel: the same tail mean of the drawdowns of the"
        " uncompounded cumulative return."
    )

    @classmethod
    def from_model(cls, symbols: list[str], found: opt.Portfolio, observations: int) -> Self:
        return cls(
            weights=[
                Weight(symbol=s, weight=float(w))
                for s, w in zip(symbols, found.weights, strict=True)
            ],
            expected_return=found.expected_return,
            volatility=found.volatility,
            sharpe=None if found.sharpe != found.sharpe else found.sharpe,
            risk_contributions=[
                RiskShare(symbol=s, contribution=float(c))
                for s, c in zip(symbols, found.risk_contributions, strict=True)
            ],
            observations=observations,
            expected_shortfall=finite(found.expected_shortfall),
            conditional_drawdown_at_risk=finite(found.conditional_drawdown),
        )


@strawberry.input(description="A cap and/or a floor on the summed weight of some symbols.")
class GroupCapInput:
    name: str
    symbols: list[str]
    max_weight: float | None = bounded(WEIGHT, default=None)
    min_weight: float | None = bounded(WEIGHT, default=None)


@strawberry.input(description="One symbol's bounds, in place of minWeight and maxWeight.")
class AssetBoundInput:
    symbol: str
    min: float | None = bounded(SIGNED_WEIGHT, default=None, description="minWeight if omitted.")
    max: float | None = bounded(SIGNED_WEIGHT, default=None, description="maxWeight if omitted.")


@strawberry.input
class ConstraintsInput:
    min_weight: float = bounded(SIGNED_WEIGHT, default=0.0)
    max_weight: float = bounded(SIGNED_WEIGHT, default=1.0)
    long_only: bool = True
    groups: list[GroupCapInput] | None = None
    asset_bounds: list[AssetBoundInput] | None = None
    l2_gamma: float = bounded(
        L2_GAMMA,
        default=0.0,
        description="PyPortfolioOpt's L2_reg: gamma x sum(w^2) added to the objective, for"
        " MIN_VOLATILITY, MAX_SHARPE, TARGET_RETURN and TARGET_VOLATILITY.",
    )


@strawberry.input
class OptimizeInput:
    symbols: list[str]
    objective: Objective = Objective.MAX_SHARPE
    interval: Interval = Interval.D1
    start: datetime | None = None
    end: datetime | None = None
    covariance: CovarianceMethod = CovarianceMethod.SAMPLE
    ewma_decay: float = bounded(EWMA_DECAY, default=0.94)
    risk_free_rate: float = bounded(ANNUAL_RATE, default=0.0, description="Annual.")
    target_return: float | None = bounded(
        TARGET_RETURN, default=None, description="Annual, for TARGET_RETURN."
    )
    target_volatility: float | None = bounded(
        TARGET_VOLATILITY, default=None, description="Annual, for TARGET_VOLATILITY."
    )
    constraints: ConstraintsInput | None = None
    cvar_level: float = bounded(
        CONFIDENCE,
        default=0.95,
        description="For MIN_CVAR and MIN_CDAR, and the level of expectedShortfall.",
    )

    def to_model(self) -> optimize_resolvers.OptimizeRequest:
        limits = self.constraints or ConstraintsInput()
        return optimize_resolvers.OptimizeRequest(
            symbols=[symbol.upper() for symbol in self.symbols],
            objective=self.objective,
            interval=self.interval,
            start=to_millis(self.start),
            end=to_millis(self.end),
            covariance=self.covariance,
            ewma_decay=self.ewma_decay,
            risk_free_rate=self.risk_free_rate,
            target_return=self.target_return,
            target_volatility=self.target_volatility,
            min_weight=limits.min_weight,
            max_weight=limits.max_weight,
            long_only=limits.long_only,
            groups=[
                optimize_resolvers.GroupCap(g.name, g.symbols, g.max_weight, g.min_weight)
                for g in limits.groups or []
            ],
            asset_bounds=[
                optimize_resolvers.AssetLimit(b.symbol, b.min, b.max)
                for b in limits.asset_bounds or []
            ],
            l2_gamma=limits.l2_gamma,
            cvar_level=self.cvar_level,
        )


@strawberry.type
class OptimizeQuery:
    @strawberry.field(description="Target weights for an objective under constraints.")
    async def optimize(
        self, info: Info[Context, None], input: OptimizeInput
    ) -> OptimizationResult | None:
        found = await optimize_resolvers.optimize(info.context, input.to_model())
        return OptimizationResult.from_model(found.symbols, found.portfolios[0], found.observations)

    @strawberry.field(description="Efficient portfolios from minimum volatility to maximum return.")
    async def efficient_frontier(
        self,
        info: Info[Context, None],
        input: OptimizeInput,
        points: Annotated[int, bounded_argument(Bounds(2, optimize_resolvers.MAX_POINTS))] = 20,
    ) -> list[OptimizationResult] | None:
        found = await optimize_resolvers.frontier(info.context, input.to_model(), points)
        return [
            OptimizationResult.from_model(found.symbols, p, found.observations)
            for p in found.portfolios
        ]
