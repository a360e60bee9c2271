"""Return streams for performance, and basket risk, PCA and indicators over stored candles.

A `ReturnStream` is the one input of `performance(...)`, whatever produced it: an asset's
closes now; a portfolio's NAV or a backtest's equity later.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np

from coinql.domain import risk
from coinql.domain.candles import Candles, Interval, ReturnKind
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.performance import periodic_rate
from coinql.domain.typing import FloatArray, IntArray
from coinql.resolvers.context import Context
from coinql.resolvers.market import candles_for, get_asset, returns_matrix

T = TypeVar("T")
# Work on more numbers than this leaves the event loop (see docs/metrics.md, "Where it runs").
OFFLOAD_ELEMENTS = 50_000
MAX_COMPONENTS = 50


async def offload(size: int, function: Callable[..., T], *args: Any) -> T:
    """Run `function` in a worker thread when the input is large, inline otherwise.

    numpy releases the GIL in its kernels, so a thread keeps the loop responsive without
    copying arrays to another process; for small inputs the hop costs more than the work.
    """
    if size < OFFLOAD_ELEMENTS:
        return function(*args)
    return await asyncio.to_thread(function, *args)


@dataclass(frozen=True, slots=True)
class Benchmark:
    """What to compare a return stream with, exactly one of: an asset's symbol, or one of the
    caller's portfolios or backtest runs."""

    symbol: str | None = None
    portfolio_id: uuid.UUID | None = None
    backtest_run_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        named = [v for v in (self.symbol, self.portfolio_id, self.backtest_run_id) if v]
        if len(named) != 1:
            raise InvalidInput(
                "symbol",
                "name one benchmark: a symbol, or in `of` the id of a portfolio or a backtest"
                " run of yours",
            )


# The returns of a benchmark (timestamps, returns) at the stream's interval and window.
BenchmarkLoader = Callable[[Benchmark], Awaitable[tuple[IntArray, FloatArray]]]


@dataclass(frozen=True)
class ReturnStream:
    """Simple returns of one series; `timestamps[i]` is the open time of the period that
    ends with `returns[i]` (the later of the two candles)."""

    label: str
    interval: Interval
    timestamps: IntArray
    returns: FloatArray
    periods_per_year: float
    risk_free_rate: float

    @property
    def risk_free_per_period(self) -> float:
        return periodic_rate(self.risk_free_rate, self.periods_per_year)


def simple_returns(candles: Candles) -> tuple[IntArray, FloatArray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = candles.close[1:] / candles.close[:-1] - 1.0
    return candles.timestamps[1:], returns


def _check_conventions(risk_free_rate: float, periods_per_year: float | None) -> None:
    if not -1.0 < risk_free_rate < 10.0:
        raise InvalidInput("riskFreeRate", "riskFreeRate is an annual fraction, e.g. 0.04")
    if periods_per_year is not None and not 0 < periods_per_year <= 525_600:
        raise InvalidInput("periodsPerYear", "periodsPerYear must be positive")


async def asset_stream(
    context: Context,
    *,
    symbol: str,
    interval: Interval,
    start: int | None,
    end: int | None,
    risk_free_rate: float,
    periods_per_year: float | None,
) -> ReturnStream:
    _check_conventions(risk_free_rate, periods_per_year)
    asset = await get_asset(context, symbol=symbol)
    if asset is None:
        raise NotFound(f"no asset {symbol.upper()!r}")
    candles = await candles_for(context, asset=asset, interval=interval, start=start, end=end)
    timestamps, returns = simple_returns(candles)

    return ReturnStream(
        label=asset.symbol,
        interval=interval,
        timestamps=timestamps,
        returns=returns,
        periods_per_year=periods_per_year or interval.periods_per_year,
        risk_free_rate=risk_free_rate,
    )


def align(
    ours: tuple[IntArray, FloatArray], theirs: tuple[IntArray, FloatArray]
) -> tuple[IntArray, FloatArray, FloatArray]:
    """The two return series on their common timestamps."""
    common, mine, other = np.intersect1d(ours[0], theirs[0], return_indices=True)
    return common, ours[1][mine], theirs[1][other]


@dataclass(frozen=True)
class Basket:
    symbols: list[str]
    weights: FloatArray
    timestamps: IntArray
    returns: FloatArray  # shape (n_observations, n_assets)
    closes: FloatArray  # shape (n_observations + 1, n_assets), aligned like the returns
    close_timestamps: IntArray
    periods_per_year: float

    @property
    def basket_returns(self) -> FloatArray:
        return self.returns @ self.weights


async def load_basket(
    context: Context,
    *,
    symbols: Sequence[str],
    weights: Sequence[float] | None,
    interval: Interval,
    start: int | None,
    end: int | None,
    periods_per_year: float | None = None,
) -> Basket:
    if weights is not None:
        if len(weights) != len(symbols):
            raise InvalidInput("weights", "give one weight per symbol")
        if not all(np.isfinite(weights)):
            raise InvalidInput("weights", "weights must be finite numbers")
    _check_conventions(0.0, periods_per_year)
    matrix = await returns_matrix(
        context, symbols=symbols, interval=interval, start=start, end=end, kind=ReturnKind.SIMPLE
    )
    if matrix.values.shape[0] < 2:
        raise InvalidInput(
            "symbols", "fewer than 2 common observations for these symbols in this window"
        )
    closes = np.vstack([np.ones(len(symbols)), np.cumprod(1.0 + matrix.values, axis=0)])
    return Basket(
        symbols=matrix.symbols,
        weights=np.asarray(
            weights if weights is not None else np.full(len(symbols), 1 / len(symbols)),
            dtype=np.float64,
        ),
        timestamps=matrix.timestamps,
        returns=matrix.values,
        closes=closes,
        close_timestamps=np.concatenate([[matrix.timestamps[0]], matrix.timestamps]),
        periods_per_year=periods_per_year or interval.periods_per_year,
    )


async def basket_covariance(
    basket: Basket, method: risk.CovarianceMethod, decay: float
) -> FloatArray:
    """The per-period covariance of the basket's returns; `decay` is EWMA's lambda (checked
    whatever the method, so that a bad argument is never silently ignored)."""
    if not 0 < decay < 1:
        raise InvalidInput("ewmaDecay", "ewmaDecay must be between 0 and 1 (exclusive)")
    estimate = partial(risk.covariance, method=method, decay=decay)
    return await offload(basket.returns.size, estimate, basket.returns)


def stress_scenarios(basket: Basket) -> list[risk.Scenario]:
    """The anchor's (BTC's if present, else the first symbol's) worst 1-, 7- and 30-period
    moves replayed on the weights, and BTC -30 % / -50 % shocks moved through beta."""
    anchor = basket.symbols.index("BTC") if "BTC" in basket.symbols else 0
    name = basket.symbols[anchor]
    scenarios = [
        risk.Scenario(
            name=f"{name} worst {found.window}-period move",
            basket_return=found.basket_return,
            window=found.window,
            start=found.start,
            end=found.end,
        )
        for found in risk.historical_scenarios(
            basket.close_timestamps, basket.closes, basket.weights, anchor=anchor
        )
    ]
    for shock in (-0.3, -0.5):
        scenarios.append(
            risk.Scenario(
                name=f"{name} {shock:+.0%}, others through their beta",
                basket_return=risk.beta_shock(
                    basket.returns, basket.weights, anchor=anchor, shock=shock
                ),
            )
        )
    return scenarios


async def principal_components(basket: Basket, components: int) -> risk.Pca:
    if not 1 <= components <= MAX_COMPONENTS:
        raise InvalidInput("components", f"components must be between 1 and {MAX_COMPONENTS}")
    return await offload(basket.returns.size, risk.pca, basket.returns, components)
