"""Portfolio optimization over stored returns: weights for an objective, and the frontier."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

from coinql.domain import cvar
from coinql.domain import mean_variance as mv
from coinql.domain import optimize as opt
from coinql.domain.basket import Basket
from coinql.domain.candles import Interval
from coinql.domain.constraints import ASSET_BOUNDS, AssetBound, Constraints, Group
from coinql.domain.covariance import EWMA_DEFAULT_DECAY, CovarianceMethod
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray
from coinql.resolvers.context import Context
from coinql.resolvers.performance import offload
from coinql.resolvers.risk import basket_covariance, load_basket

MAX_POINTS = 200
TAIL_OBJECTIVES = (opt.Objective.MIN_CVAR, opt.Objective.MIN_CDAR)
# The linear programs of the tail objectives grow with their scenarios (one variable and one
# constraint per period, two per period for CDaR): a bound on the work one request asks for.
MAX_SCENARIOS = 5_000


@dataclass(frozen=True)
class GroupCap:
    name: str
    symbols: list[str]
    max_weight: float | None = None
    min_weight: float | None = None


@dataclass(frozen=True)
class AssetLimit:
    """One symbol's bounds; None keeps the request's minWeight or maxWeight."""

    symbol: str
    min_weight: float | None = None
    max_weight: float | None = None


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
    asset_bounds: list[AssetLimit] = field(default_factory=list)
    l2_gamma: float = 0.0
    cvar_level: float = 0.95


@dataclass(frozen=True)
class Optimized:
    symbols: list[str]
    portfolios: list[opt.Portfolio]
    observations: int


@dataclass(frozen=True)
class Inputs:
    basket: Basket
    mu: FloatArray
    cov: FloatArray
    scenarios: FloatArray  # the periods where every asset has a return


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
        named = [s.upper() for s in group.symbols]
        if len(set(named)) != len(named):  # it would count twice towards the cap or floor
            raise InvalidInput(f"constraints.groups.{group.name}", "a symbol is named twice")
        if group.max_weight is None and group.min_weight is None:
            raise InvalidInput(
                f"constraints.groups.{group.name}", "give a maxWeight, a minWeight or both"
            )
        groups.append(
            Group(
                group.name,
                tuple(symbols.index(s.upper()) for s in group.symbols),
                group.max_weight,
                group.min_weight,
            )
        )
    return Constraints(
        request.min_weight,
        request.max_weight,
        tuple(groups),
        tuple(_asset_bound(request, limit, symbols) for limit in request.asset_bounds),
    )


def _asset_bound(request: OptimizeRequest, limit: AssetLimit, symbols: list[str]) -> AssetBound:
    symbol = limit.symbol.upper()
    if symbol not in symbols:
        raise InvalidInput(ASSET_BOUNDS, f"{limit.symbol} is not among the symbols")
    low = request.min_weight if limit.min_weight is None else limit.min_weight
    high = request.max_weight if limit.max_weight is None else limit.max_weight
    if request.long_only and low < 0:
        raise InvalidInput(ASSET_BOUNDS, f"{symbol}: min must be >= 0 when longOnly")
    return AssetBound(symbol, symbols.index(symbol), low, high)


async def _inputs(context: Context, request: OptimizeRequest) -> Inputs:
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
    return Inputs(basket, mu, cov, cvar.complete_periods(basket.returns))


async def optimize(context: Context, request: OptimizeRequest) -> Optimized:
    """Weights for the objective; mu is the arithmetic mean return x P, cov x P."""
    found = await _inputs(context, request)
    basket, mu, cov = found.basket, found.mu, found.cov
    if request.objective in TAIL_OBJECTIVES and found.scenarios.shape[0] > MAX_SCENARIOS:
        raise InvalidInput(
            "start",
            f"{request.objective.value} solves one program over every period: at most"
            f" {MAX_SCENARIOS:,}, here {found.scenarios.shape[0]:,}; narrow start and end, or"
            " take a longer interval",
        )
    constraints = _constraints(request, basket.symbols)
    caps = None
    if request.objective is opt.Objective.MARKET_CAP:
        assets = await context.loaders.assets.load_many(basket.symbols)
        caps = [a.market_cap if a and a.market_cap else math.nan for a in assets]
    rf = request.risk_free_rate
    weights = await offload(
        found.scenarios.size * 100 if request.objective in TAIL_OBJECTIVES else 0,
        partial(
            opt.optimal_weights,
            request.objective,
            mu,
            cov,
            constraints,
            risk_free=rf,
            target_return=request.target_return,
            target_volatility=request.target_volatility,
            market_caps=caps,
            l2_gamma=request.l2_gamma,
            scenarios=found.scenarios,
            cvar_level=request.cvar_level,
        ),
    )
    portfolio = opt.describe(weights, mu, cov, rf, found.scenarios, request.cvar_level)
    return Optimized(basket.symbols, [portfolio], int(basket.returns.shape[0]))


async def frontier(context: Context, request: OptimizeRequest, points: int) -> Optimized:
    if not 2 <= points <= MAX_POINTS:
        raise InvalidInput("points", f"points must be between 2 and {MAX_POINTS}")
    if request.l2_gamma:
        raise InvalidInput(mv.L2_GAMMA, "the efficient frontier takes no l2Gamma")
    inputs = await _inputs(context, request)
    basket, mu, cov = inputs.basket, inputs.mu, inputs.cov
    constraints = _constraints(request, basket.symbols)
    found = await offload(points * 10_000, mv.frontier, mu, cov, constraints, points)
    rf = request.risk_free_rate
    return Optimized(
        basket.symbols,
        [
            opt.describe(weights, mu, cov, rf, inputs.scenarios, request.cvar_level)
            for weights in found
        ],
        int(basket.returns.shape[0]),
    )
