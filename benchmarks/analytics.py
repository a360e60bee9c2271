"""[3/7] Analytics: a full tear sheet for 100 assets x 5 years against quantstats and
empyrical, a 50-asset Ledoit-Wolf risk report against numpy, and the event-loop stall."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Figure, median_seconds
from coinql.domain import compounding, covariance, panel, risk

P = 365
TOP_DRAWDOWNS = 5
ROLLING_WINDOW = 30


def synthetic_returns(n_obs: int, n_assets: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    common = rng.standard_t(3, n_obs)[:, None] * 0.02
    own = rng.standard_t(4, (n_obs, n_assets)) * 0.03
    return np.clip(0.0005 + 0.6 * common + own, -0.9, 2.0)


def coinql_tear_sheet(returns: np.ndarray, timestamps: np.ndarray) -> panel.TearSheet:
    """Every metric of the tear sheet for every column, computed on the one 2-D array."""
    return panel.tear_sheet(
        timestamps,
        returns,
        returns[:, 0],
        P,
        risk_free=compounding.periodic_rate(0.0, P),
        top_drawdowns=TOP_DRAWDOWNS,
        rolling_window=ROLLING_WINDOW,
    )


def quantstats_tear_sheet(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """quantstats' calls for the same figures, one series at a time (as its API works)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats as qs

        benchmark = frame.iloc[:, 0]
        sheets = []
        for column in frame.columns:
            series = frame[column]
            sheets.append(
                {
                    "total": qs.stats.comp(series),
                    "cagr": qs.stats.cagr(series, periods=P),
                    "volatility": qs.stats.volatility(series, periods=P),
                    "sharpe": qs.stats.sharpe(series, periods=P),
                    "sortino": qs.stats.sortino(series, periods=P),
                    "calmar": qs.stats.calmar(series, periods=P),
                    "omega": qs.stats.omega(series, periods=P),
                    "tail_ratio": qs.stats.tail_ratio(series),
                    "skew": qs.stats.skew(series),
                    "kurtosis": qs.stats.kurtosis(series),
                    "best": qs.stats.best(series),
                    "worst": qs.stats.worst(series),
                    "win_rate": qs.stats.win_rate(series),
                    "max_drawdown": qs.stats.max_drawdown(series),
                    "ulcer": qs.stats.ulcer_index(series),
                    "var": qs.stats.value_at_risk(series),
                    "cvar": qs.stats.cvar(series),
                    "drawdown": qs.stats.to_drawdown_series(series),
                    "details": qs.stats.drawdown_details(qs.stats.to_drawdown_series(series)),
                    "monthly": qs.stats.monthly_returns(series),
                    "rolling": qs.stats.rolling_volatility(
                        series, rolling_period=ROLLING_WINDOW, periods_per_year=P
                    ),
                    "greeks": qs.stats.greeks(series, benchmark, periods=P),
                    "capture": qs.stats.r_squared(series, benchmark),
                }
            )
        return sheets


def empyrical_tear_sheet(returns: np.ndarray, frame: pd.DataFrame) -> dict[str, Any]:
    """empyrical's calls: vectorized over columns where empyrical supports 2-D input."""
    import empyrical as ep

    sheet: dict[str, Any] = {
        "total": ep.cum_returns_final(returns),
        "cagr": ep.annual_return(returns, annualization=P),
        "volatility": ep.annual_volatility(returns, annualization=P),
        "sharpe": ep.sharpe_ratio(returns, annualization=P),
        "sortino": ep.sortino_ratio(returns, annualization=P),
        "max_drawdown": ep.max_drawdown(returns),
        "cum": ep.cum_returns(returns),
    }
    benchmark = returns[:, 0]
    per_series = []
    for column in range(returns.shape[1]):
        r = returns[:, column]
        per_series.append(
            (
                ep.calmar_ratio(r, annualization=P),
                ep.omega_ratio(r, annualization=P),
                ep.tail_ratio(r),
                ep.value_at_risk(r),
                ep.conditional_value_at_risk(r),
                ep.alpha_beta(r, benchmark, annualization=P),
                ep.up_capture(r, benchmark),
                ep.down_capture(r, benchmark),
                ep.aggregate_returns(frame.iloc[:, column], "monthly"),
                ep.roll_annual_volatility(r, ROLLING_WINDOW, annualization=P),
            )
        )
    sheet["per_series"] = per_series
    return sheet


def tear_sheet_figures(quick: bool) -> list[Figure]:
    n_assets = 20 if quick else 100
    returns = synthetic_returns(5 * 365, n_assets)
    index = pd.date_range("2019-01-01", periods=returns.shape[0], freq="D")
    timestamps = index.as_unit("ms").asi8
    frame = pd.DataFrame(returns, index=index)
    ours = median_seconds(lambda: coinql_tear_sheet(returns, timestamps), repeat=5)
    theirs_qs = median_seconds(lambda: quantstats_tear_sheet(frame), repeat=1, warmup=0)
    theirs_ep = median_seconds(lambda: empyrical_tear_sheet(returns, frame), repeat=3)
    name = f"full tear sheet, {n_assets} assets x 5 years D1"
    return [
        Figure(
            name, ours * 1000, "ms", theirs_qs * 1000, "quantstats, same figures", target=">= 40x"
        ),
        Figure(
            name, ours * 1000, "ms", theirs_ep * 1000, "empyrical, same figures", target=">= 12x"
        ),
    ]


def risk_report(returns: np.ndarray, weights: np.ndarray) -> tuple[Any, ...]:
    cov, _ = covariance.ledoit_wolf_covariance(returns)
    found = risk.basket_risk(weights, cov, P)
    return cov, found, covariance.correlation_from(cov), covariance.pca(returns, 3)


def numpy_risk_report(returns: np.ndarray, weights: np.ndarray) -> tuple[Any, ...]:
    """The textbook numpy baseline: sample covariance, contributions, correlation, SVD PCA."""
    cov = np.cov(returns, rowvar=False) * P
    volatility = np.sqrt(weights @ cov @ weights)
    contributions = weights * (cov @ weights) / volatility
    scale = np.sqrt(np.diag(cov))
    centered = returns - returns.mean(axis=0)
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    return contributions, cov / np.outer(scale, scale), singular[:3], vt[:3]


def risk_figures() -> list[Figure]:
    returns = synthetic_returns(5 * 365, 50, seed=1)
    weights = np.full(50, 1 / 50)
    ours = median_seconds(lambda: risk_report(returns, weights), repeat=30)
    baseline = median_seconds(lambda: numpy_risk_report(returns, weights), repeat=30)
    return [
        Figure(
            "risk report, 50 assets x 5 years: Ledoit-Wolf, contributions, PCA",
            ours * 1000,
            "ms",
            baseline * 1000,
            "numpy: sample cov, contributions, SVD PCA",
            target="report ms and ratio",
        )
    ]


async def loop_stall_figures() -> list[Figure]:
    """How long the event loop is blocked by a 100-asset tear sheet, inline vs in a thread."""
    returns = synthetic_returns(5 * 365, 100, seed=2)
    timestamps = pd.date_range("2019-01-01", periods=returns.shape[0], freq="D").as_unit("ms").asi8

    async def worst_tick_gap(run: Any) -> float:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        await run()
        stop.set()
        await task
        return max(gaps)

    async def inline() -> None:
        coinql_tear_sheet(returns, timestamps)

    async def threaded() -> None:
        await asyncio.to_thread(coinql_tear_sheet, returns, timestamps)

    blocked = await worst_tick_gap(inline)
    offloaded = await worst_tick_gap(threaded)
    return [
        Figure(
            "event-loop stall during a 100-asset tear sheet",
            offloaded * 1000,
            "ms",
            blocked * 1000,
            "the same work inline on the loop",
            target="thread pool keeps the loop responsive",
        )
    ]


async def run(*, quick: bool) -> list[Figure]:
    figures = tear_sheet_figures(quick)
    figures += risk_figures()
    figures += await loop_stall_figures()
    return figures
