"""Portfolio optimization over stored returns, and saved strategies."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from coinql.domain import optimize as opt
from coinql.domain import risk
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    SignalKind,
    StrategySpec,
    UniverseRank,
    validate_allocation,
    validate_signal,
    validate_universe,
)
from coinql.resolvers.analytics import Basket, basket_covariance, load_basket, offload
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.store import portfolio as portfolio_store
from coinql.store.portfolio import Strategy

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
    covariance: risk.CovarianceMethod = risk.CovarianceMethod.SAMPLE
    ewma_decay: float = risk.EWMA_DEFAULT_DECAY
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


def _constraints(request: OptimizeRequest, symbols: list[str]) -> opt.Constraints:
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
            opt.Group(
                group.name,
                tuple(symbols.index(s.upper()) for s in group.symbols),
                group.max_weight,
            )
        )
    return opt.Constraints(request.min_weight, request.max_weight, tuple(groups))


async def _inputs(
    context: Context, request: OptimizeRequest
) -> tuple[Basket, np.ndarray, np.ndarray]:
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
    mu = np.nanmean(basket.returns, axis=0) * periods
    cov = await basket_covariance(basket, request.covariance, request.ewma_decay) * periods
    return basket, mu, cov


async def optimize(context: Context, request: OptimizeRequest) -> Optimized:
    """Weights for the objective; mu is the arithmetic mean return x P, cov x P."""
    basket, mu, cov = await _inputs(context, request)
    constraints = _constraints(request, basket.symbols)
    rf = request.risk_free_rate
    objective = request.objective
    if objective is opt.Objective.MIN_VOLATILITY:
        weights = opt.min_volatility(cov, constraints)
    elif objective is opt.Objective.MAX_SHARPE:
        weights = opt.max_sharpe(mu, cov, constraints, rf)
    elif objective is opt.Objective.TARGET_RETURN:
        if request.target_return is None:
            raise InvalidInput("targetReturn", "TARGET_RETURN needs targetReturn")
        weights = opt.efficient_return(mu, cov, request.target_return, constraints)
    elif objective is opt.Objective.TARGET_VOLATILITY:
        if request.target_volatility is None:
            raise InvalidInput("targetVolatility", "TARGET_VOLATILITY needs targetVolatility")
        weights = opt.efficient_risk(mu, cov, request.target_volatility, constraints)
    elif objective is opt.Objective.RISK_PARITY:
        weights = opt.risk_parity(cov, constraints)
    elif objective is opt.Objective.HRP:
        weights = opt.hrp(cov, constraints)
    elif objective is opt.Objective.EQUAL_WEIGHT:
        weights = opt.equal_weight(len(basket.symbols), constraints)
    elif objective is opt.Objective.INVERSE_VOLATILITY:
        weights = opt.inverse_volatility(cov, constraints)
    else:
        assets = await context.loaders.assets.load_many(basket.symbols)
        caps = np.array([a.market_cap if a and a.market_cap else np.nan for a in assets])
        weights = opt.market_cap_weight(caps, constraints)
    portfolio = opt.describe(weights, mu, cov, rf)
    return Optimized(basket.symbols, [portfolio], int(basket.returns.shape[0]))


async def frontier(context: Context, request: OptimizeRequest, points: int) -> Optimized:
    if not 2 <= points <= MAX_POINTS:
        raise InvalidInput("points", f"points must be between 2 and {MAX_POINTS}")
    basket, mu, cov = await _inputs(context, request)
    constraints = _constraints(request, basket.symbols)
    found = await offload(points * 10_000, opt.frontier, mu, cov, constraints, points)
    rf = request.risk_free_rate
    return Optimized(
        basket.symbols,
        [opt.describe(weights, mu, cov, rf) for weights in found],
        int(basket.returns.shape[0]),
    )


@dataclass(frozen=True)
class StrategyInput:
    name: str
    kind: str
    params: dict[str, object]
    symbols: list[str] = field(default_factory=list)
    universe_top: int | None = None
    constraints: AllocationConstraints | None = None
    rebalance: Rebalance | None = None
    universe_by: UniverseRank = UniverseRank.QUOTE_VOLUME


def validate_strategy(item: StrategyInput) -> StrategySpec:
    name = item.name.strip()
    if not 0 < len(name) <= 100:
        raise InvalidInput("name", "name must have 1 to 100 characters")
    symbols = validate_universe(item.symbols, item.universe_top)
    if item.kind in SignalKind._value2member_map_:
        if item.constraints is not None or item.rebalance is not None:
            raise InvalidInput(
                "constraints", "constraints and rebalance apply to allocation strategies"
            )
        params = validate_signal(SignalKind(item.kind), dict(item.params))
        return StrategySpec(item.kind, params, symbols, item.universe_top)  # signals: one symbol
    constraints = item.constraints or AllocationConstraints()
    params = validate_allocation(AllocationKind(item.kind), dict(item.params), constraints)
    return StrategySpec(
        item.kind,
        params,
        symbols,
        item.universe_top,
        constraints,
        item.rebalance or Rebalance.MONTHLY,
        item.universe_by,
    )


async def create_strategy(context: Context, item: StrategyInput) -> Strategy:
    owner = (await require_user(context)).id
    spec = validate_strategy(item)
    async with context.services.transaction() as session:
        return await portfolio_store.add_strategy(
            session,
            owner_id=owner,
            name=item.name.strip(),
            family=spec.family,
            spec=spec.to_json(),
            now=context.services.now(),
        )


async def get_strategy(context: Context, *, strategy_id: uuid.UUID) -> Strategy:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        found = await portfolio_store.get_strategy(session, owner_id=owner, strategy_id=strategy_id)
    if found is None:
        raise NotFound(f"no strategy {strategy_id}")
    return found


async def list_strategies(context: Context, *, first: int, offset: int) -> list[Strategy]:
    if not 0 < first <= 501:  # the connection asks for one more to see if there is a next
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await portfolio_store.list_strategies(
            session, owner_id=owner, offset=offset, limit=first
        )


async def delete_strategy(context: Context, *, strategy_id: uuid.UUID) -> uuid.UUID:
    owner = (await require_user(context)).id
    async with context.services.transaction() as session:
        found = await portfolio_store.get_strategy(session, owner_id=owner, strategy_id=strategy_id)
        if found is None:
            raise NotFound(f"no strategy {strategy_id}")
        await portfolio_store.delete_strategy(session, strategy=found)
    return strategy_id
