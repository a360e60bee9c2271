"""Backtests of allocation strategies: a multi-asset book with shared cash, rebalanced.

The book is rebalanced on a schedule to weights computed from past data only.

At each rebalance bar t (the first bar of each week, month or quarter, UTC), the weights come
from the `lookback` returns that end at t's close; trades fill at t's close with `fee_bps` on
the traded notional. `universe_top` keeps the N symbols ranked first by `universe_by`: the
quote volume over the lookback, or the market cap at t (t's close times the circulating
supply; a history of supplies is not stored, so today's stands in, which moves slowly).
`max_assets` keeps the N largest weights; `turnover_cap` scales the move from current to target
weights so that one-way turnover stays under the cap. Between rebalances the units are held
and the weights drift with prices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from coinql.domain import mean_variance as mv
from coinql.domain import optimize as opt
from coinql.domain.candles import Candles
from coinql.domain.constraints import Constraints, Infeasible
from coinql.domain.errors import InvalidInput
from coinql.domain.metrics import (
    Metrics,
    equity_returns,
    regime_labels,
    regime_stats,
    summarize,
)
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    StrategySpec,
    UniverseRank,
)
from coinql.domain.typing import BoolArray, FloatArray, IntArray, Progress


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """equity : (n_bars,); weights : (n_bars, n_symbols) held after each bar's close."""

    symbols: list[str]
    timestamps: IntArray
    equity: FloatArray
    weights: FloatArray
    rebalance_bars: IntArray
    turnover: FloatArray  # one-way turnover at each rebalance
    fees: float
    closes: FloatArray  # (n_bars, n_symbols), aligned


def rebalance_bars(timestamps: IntArray, schedule: Rebalance) -> BoolArray:
    """Mark the first bar of each period of the schedule.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_bars,)
        Milliseconds since the epoch, ascending; periods are UTC days, weeks starting on
        Monday, months or quarters.
    schedule : Rebalance

    Returns
    -------
    ndarray of bool of shape (n_bars,)
        True on the first bar of each period (the first bar is always True).
    """
    days = timestamps.astype("datetime64[ms]").astype("datetime64[D]")
    if schedule is Rebalance.DAILY:
        period = days.astype(np.int64)
    elif schedule is Rebalance.WEEKLY:
        period = (days.astype(np.int64) + 3) // 7  # weeks starting on Monday
    else:
        months = days.astype("datetime64[M]").astype(np.int64)
        period = months if schedule is Rebalance.MONTHLY else months // 3
    return np.concatenate([[True], period[1:] != period[:-1]])


def target_weights(
    kind: AllocationKind,
    returns: FloatArray,
    caps: FloatArray,
    constraints: AllocationConstraints,
    periods_per_year: float,
) -> FloatArray:
    """Weights for one rebalance from past returns of shape (lookback, n_assets)."""
    n = returns.shape[1]
    limits = Constraints(constraints.min_weight, constraints.max_weight)
    usable = returns[~np.isnan(returns).any(axis=1)]
    if kind is AllocationKind.EQUAL_WEIGHT or usable.shape[0] < 3:
        return opt.equal_weight(n, limits)
    if kind is AllocationKind.MARKET_CAP_WEIGHT:
        return opt.market_cap_weight(caps, limits)
    cov = np.atleast_2d(np.cov(usable, rowvar=False)) * periods_per_year
    cov = cov + np.eye(n) * 1e-12  # a constant series must not make it singular
    if kind is AllocationKind.INVERSE_VOLATILITY:
        return opt.inverse_volatility(cov, limits)
    if kind is AllocationKind.MIN_VOLATILITY:
        return mv.min_volatility(cov, limits)
    if kind is AllocationKind.MAX_SHARPE:
        try:
            return mv.max_sharpe(usable.mean(axis=0) * periods_per_year, cov, limits)
        except Infeasible:
            return mv.min_volatility(cov, limits)  # nothing beats cash: the least risky book
    if kind is AllocationKind.RISK_PARITY:
        return opt.risk_parity(cov, limits)
    return opt.hrp(cov, limits)


def run_allocation(
    spec: StrategySpec,
    candles: dict[str, Candles],
    *,
    initial_capital: float,
    fee_bps: float,
    periods_per_year: float,
    supply: dict[str, float] | None = None,
    progress: Progress | None = None,
) -> AllocationResult:
    """Simulate the allocation book on the timestamps all symbols share.

    Parameters
    ----------
    spec : StrategySpec
        An allocation strategy: its kind, `lookback` parameter, constraints and rebalance.
    candles : dict of str to Candles
        One series per symbol; only the timestamps all of them share are used.
    initial_capital : float
    fee_bps : float
        The fee in basis points of each rebalance's traded notional.
    periods_per_year : float
        The bars in a year, for the optimizers' annualised inputs.
    supply : dict of str to float, optional
        Today's circulating supply of each symbol, for market-cap ranking and MARKET_CAP
        weights; a missing symbol counts as unknown (NaN).
    progress : callable, optional
        Called with the share of rebalances done, after each rebalance.

    Returns
    -------
    AllocationResult
        `equity` of shape (n_common,), `weights` and `closes` of shape (n_common, n_symbols).

    Raises
    ------
    InvalidInput
        When the strategy has no constraints or rebalance ("strategy"), or fewer than
        lookback + 2 common candles ("start").
    Infeasible
        When the weights of a rebalance cannot meet the constraints (MARKET_CAP without a
        known, positive cap for every chosen symbol among them).
    """
    if spec.constraints is None or spec.rebalance is None:
        raise InvalidInput("strategy", "allocation strategies need constraints and a rebalance")
    symbols = list(candles)
    common = candles[symbols[0]].timestamps
    for symbol in symbols[1:]:
        common = np.intersect1d(common, candles[symbol].timestamps)
    lookback = int(spec.params.get("lookback", 90))
    if common.size < lookback + 2:
        raise InvalidInput(
            "start", f"needs {lookback + 2} common candles for a lookback of {lookback}"
        )
    aligned = {s: c.select(np.searchsorted(c.timestamps, common)) for s, c in candles.items()}
    close = np.column_stack([aligned[s].close for s in symbols])
    volume = np.column_stack([np.nan_to_num(aligned[s].quote_volume, nan=0.0) for s in symbols])
    supplies = np.array([(supply or {}).get(s, np.nan) for s in symbols], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.vstack([np.full(len(symbols), np.nan), close[1:] / close[:-1] - 1])
    schedule = rebalance_bars(common, spec.rebalance)
    schedule[:lookback] = False  # the first weights need a full lookback
    kind = AllocationKind(spec.kind)
    fee = fee_bps / 10_000
    n = common.size
    equity = np.empty(n)
    weights = np.zeros((n, len(symbols)))
    units = np.zeros(len(symbols))
    cash = float(initial_capital)
    turnovers, paid, last = [], 0.0, 0
    bars = np.flatnonzero(schedule)
    for done, bar in enumerate(bars, start=1):  # one iteration per rebalance
        value_path = cash + close[last:bar] @ units
        equity[last:bar] = value_path
        weights[last:bar] = (close[last:bar] * units) / value_path[:, None]
        value = cash + float(close[bar] @ units)
        current = close[bar] * units / value
        window = slice(bar - lookback + 1, bar + 1)
        chosen = np.arange(len(symbols))
        if spec.universe_top is not None:
            if spec.universe_by is UniverseRank.MARKET_CAP:
                size = np.nan_to_num(close[bar] * supplies, nan=-1.0)
            else:
                size = volume[window].sum(axis=0)
            chosen = np.argsort(-size, kind="stable")[: spec.universe_top]
        caps = close[bar, chosen] * supplies[chosen]
        target = np.zeros(len(symbols))
        target[chosen] = target_weights(
            kind, returns[window][:, chosen], caps, spec.constraints, periods_per_year
        )
        limit = spec.constraints.max_assets
        if limit is not None and np.count_nonzero(target) > limit:
            smallest = np.argsort(target)[: len(symbols) - limit]
            target[smallest] = 0.0  # keep the largest `limit` weights
            target /= target.sum()
        move = target - current
        # One-way turnover counts cash as a position: from all cash to fully invested is 1.
        one_way = float((np.abs(move).sum() + abs(move.sum())) / 2)
        cap = spec.constraints.turnover_cap
        if cap is not None and one_way > cap:
            move *= cap / one_way
            one_way = cap
        traded = float(np.abs(move).sum()) * value
        cost = traded * fee
        paid += cost
        value_after = value - cost
        new_weights = current + move
        units = new_weights * value_after / close[bar]
        cash = value_after * (1 - float(new_weights.sum()))
        turnovers.append(one_way)
        equity[bar] = cash + float(close[bar] @ units)
        weights[bar] = close[bar] * units / equity[bar]
        last = int(bar) + 1
        if progress is not None:
            progress(done / bars.size)
    tail = cash + close[last:] @ units
    equity[last:] = tail
    weights[last:] = (close[last:] * units) / tail[:, None]
    return AllocationResult(
        symbols, common, equity, weights, bars, np.asarray(turnovers), paid, close
    )


def allocation_summary(result: AllocationResult, periods_per_year: float) -> Metrics:
    """Headline metrics of an allocation book.

    Parameters
    ----------
    result : AllocationResult
    periods_per_year : float

    Returns
    -------
    Metrics
        `summarize` of the equity's returns, with no trades (a rebalance is not a trade),
        the rebalance count, the mean invested share as exposure, the one-way turnover per
        year, the fees paid and the metrics by regime (of the first symbol's closes).
    """
    returns = equity_returns(result.equity)
    years = max(returns.size / periods_per_year, 1e-12)
    first_close = result.closes[:, 0]
    regimes = regime_labels(first_close, periods_per_year)
    return replace(
        summarize(returns, periods_per_year),
        trade_count=0,
        rebalances=int(result.rebalance_bars.size),
        win_rate=None,
        exposure=float(np.mean(result.weights.sum(axis=1))),
        turnover=float(result.turnover.sum() / years),
        fees=result.fees,
        by_regime=regime_stats(returns, regimes, periods_per_year),
    )
