"""Portfolio optimization over stored returns: weights for an objective, and the frontier."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from coinql.domain import mean_variance as mv
from coinql.domain import optimize as opt
from coinql.domain.basket import Basket
from coinql.domain.candles import Interval
from coinql.domain.constraints import Constraints, Group
from coinql.domain.covariance import EWMA_DEFAULT_DECAY, CovarianceMethod
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray
from coinql.resolvers.context import Context
from coinql.resolvers.performance import offload
from coinql.resolvers.risk import basket_covariance, load_basket

MAX_POINTS = 200


@dataclass(frozen=True)
class GroupCap:
    name: str
    symbols: list[str]
    max_weight: float


@dataclass(frozen=True)
class OptimizeRequest:
    symbols: list[str]
    objective: opt.Objective
    interval: Interval = Interval.D1
    start: int | None = None
    end: int | None = None
    covariance: CovarianceMethod = CovarianceMethod.SAMPLE
    ewma_decay: float = EWMA_DEFAULT_DECAY
    risk_free_rate: float = 0.0
    target_return: float | None = None
    target_volatility: float | None = None
    min_weight: float = 0.0
    max_weight: float = 1.0
    long_only: bool = True
    groups: list[GroupCap] = field(default_factory=list)


@dataclass(frozen=True)
class Optimized:
    symbols: list[str]
    portfolios: list[opt.Portfolio]
    observations: int


def _constraints(request: OptimizeRequest, symbols: list[str]) -> Constraints:
    if request.long_only and request.min_weight < 0:
        raise InvalidInput("constraints.minWeight", "minWeight must be >= 0 when longOnly")
    groups = []
    for group in request.groups:
        unknown = [s for s in group.symbols if s.upper() not in symbols]
        if unknown:
            raise InvalidInput(
                f"constraints.groups.{group.name}", f"not among the symbols: {', '.join(unknown)}"
            )
        groups.append(
            Group(
                group.name,
                tuple(symbols.index(s.upper()) for s in group.symbols),
                group.max_weight,
            )
        )
    return Constraints(request.min_weight, request.max_weight, tuple(groups))


async def _inputs(
    context: Context, request: OptimizeRequest
) -> tuple[Basket, FloatArray, FloatArray]:
    if len(request.symbols) < 2:
        raise InvalidInput("symbols", "give at least two symbols")
    basket = await load_basket(
        context,
        symbols=request.symbols,
        weights=None,
        interval=request.interval,
        start=request.start,
        end=request.end,
    )
    periods = basket.periods_per_year
    mu = opt.expected_returns(basket.returns, periods)
    cov = await basket_covariance(basket, request.covariance, request.ewma_decay) * periods
    return basket, mu, cov


async def optimize(context: Context, request: OptimizeRequest) -> Optimized:
    """Weights for the objective; mu is the arithmetic mean return x P, cov x P."""
    basket, mu, cov = await _inputs(context, request)
    constraints = _constraints(request, basket.symbols)
    caps = None
    if request.objective is opt.Objective.MARKET_CAP:
        assets = await context.loaders.assets.load_many(basket.symbols)
        caps = [a.market_cap if a and a.market_cap else math.nan for a in assets]
    rf = request.risk_free_rate
    weights = opt.optimal_weights(
        request.objective,
        mu,
        cov,
        constraints,
        risk_free=rf,
        target_return=request.target_return,
        target_volatility=request.target_volatility,
        market_caps=caps,
    )
    portfolio = opt.describe(weights, mu, cov, rf)
    return Optimized(basket.symbols, [portfolio], int(basket.returns.shape[0]))


async def frontier(context: Context, request: OptimizeRequest, points: int) -> Optimized:
    if not 2 <= points <= MAX_POINTS:
        raise InvalidInput("points", f"points must be between 2 and {MAX_POINTS}")
    basket, mu, cov = await _inputs(context, request)
    constraints = _constraints(request, basket.symbols)
    found = await offload(points * 10_000, mv.frontier, mu, cov, constraints, points)
    rf = request.risk_free_rate
    return Optimized(
        basket.symbols,
        [opt.describe(weights, mu, cov, rf) for weights in found],
        int(basket.returns.shape[0]),
    )
