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
    EWMA_DECAY,
    SIGNED_WEIGHT,
    WEIGHT,
    bounded,
    bounded_argument,
)
from coinql.schema.enums import CovarianceMethod, Interval, Objective
from coinql.schema.scalars import to_millis

TARGET_RETURN = Bounds(-1, 100, low_open=True)  # annual: -100 % to +10,000 %
TARGET_VOLATILITY = Bounds(0, 100, low_open=True)


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
        )


@strawberry.input
class GroupCapInput:
    name: str
    symbols: list[str]
    max_weight: float = bounded(WEIGHT)


@strawberry.input
class ConstraintsInput:
    min_weight: float = bounded(SIGNED_WEIGHT, default=0.0)
    max_weight: float = bounded(SIGNED_WEIGHT, default=1.0)
    long_only: bool = True
    groups: list[GroupCapInput] | None = None


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
                optimize_resolvers.GroupCap(g.name, g.symbols, g.max_weight)
                for g in limits.groups or []
            ],
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
