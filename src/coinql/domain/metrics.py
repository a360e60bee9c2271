"""The headline metrics of a run: one `Metrics` record and one `summarize` that fills it.

Backtests (signal and allocation books), their benchmark, parameter sweeps and walk-forward
splits all report the same record; a run adds what only it knows (its trade count, win rate,
exposure, turnover, fees, regimes) with `dataclasses.replace`. A metric that is undefined
(no variation, no drawdown, too few periods) is None, never NaN or an infinity, so that the
record stores as JSON and maps to nullable GraphQL floats as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from coinql.domain import compounding, downside
from coinql.domain import indicators as ind
from coinql.domain import performance as pf
from coinql.domain import volatility as vol
from coinql.domain.typing import FloatArray


def finite(value: object) -> float | None:
    """Convert a number to a float, None when it is NaN or infinite.

    Parameters
    ----------
    value : float, numpy scalar or 0-d ndarray

    Returns
    -------
    float or None
        None for NaN and infinities.
    """
    number = float(value)  # type: ignore[arg-type]
    return number if np.isfinite(number) else None


def equity_returns(equity: FloatArray) -> FloatArray:
    """Compute the simple returns of an equity curve, (e[t] - e[t-1]) / e[t-1].

    Parameters
    ----------
    equity : ndarray of shape (n_bars,)

    Returns
    -------
    ndarray of shape (n_bars - 1,)
        NaN or an infinity where the earlier value is zero (kept: the metrics skip them).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        returns: FloatArray = np.diff(equity) / equity[:-1]
    return returns


@dataclass(frozen=True, slots=True)
class RegimeMetrics:
    """The returns of one regime's bars: how many, their total return and Sharpe ratio."""

    periods: int
    total_return: float | None
    sharpe: float | None


@dataclass(frozen=True, slots=True)
class Benchmark:
    """Buy and hold of `symbol` over a run's bars."""

    symbol: str
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class Metrics:
    """Headline metrics of a run; conventions as in `coinql.domain.performance`.

    The first seven come from `summarize`; the others are set by the kind of run that has
    them and stay None otherwise. `by_regime` maps "volatility:2" (HIGH) or "trend:1" (UP) to
    the metrics of that regime's bars.
    """

    total_return: float | None = None
    cagr: float | None = None
    volatility: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    calmar: float | None = None
    max_drawdown: float | None = None
    trade_count: int | None = None
    rebalances: int | None = None
    win_rate: float | None = None
    exposure: float | None = None
    turnover: float | None = None
    fees: float | None = None
    by_regime: dict[str, RegimeMetrics] = field(default_factory=dict)
    benchmark: Benchmark | None = None

    def __getitem__(self, name: str) -> float | None:
        """Return a numeric metric by its name, for sweeps that rank by a metric chosen by name."""
        value = getattr(self, name)
        return None if value is None else float(value)

    def to_json(self) -> dict[str, Any]:
        """Encode the record as JSON: the metrics that are set, regimes and benchmark nested."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "by_regime":
                if value:
                    data["by_regime"] = {
                        name: {
                            "periods": stats.periods,
                            "total_return": stats.total_return,
                            "sharpe": stats.sharpe,
                        }
                        for name, stats in value.items()
                    }
            elif item.name == "benchmark":
                if value is not None:
                    data["benchmark"] = {"symbol": value.symbol, **value.metrics.to_json()}
            elif value is not None:
                data[item.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metrics:
        """Decode the record `to_json` wrote; a missing metric is None."""
        counts = ("trade_count", "rebalances")
        values: dict[str, Any] = {
            item.name: (int(data[item.name]) if item.name in counts else float(data[item.name]))
            for item in fields(cls)
            if item.name not in ("by_regime", "benchmark") and data.get(item.name) is not None
        }
        regimes = {
            name: RegimeMetrics(
                periods=int(stats["periods"]),
                total_return=_optional(stats.get("total_return")),
                sharpe=_optional(stats.get("sharpe")),
            )
            for name, stats in (data.get("by_regime") or {}).items()
        }
        found = data.get("benchmark")
        benchmark = (
            Benchmark(symbol=str(found["symbol"]), metrics=cls.from_json(found)) if found else None
        )
        return cls(**values, by_regime=regimes, benchmark=benchmark)


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def summarize(returns: FloatArray, periods_per_year: float) -> Metrics:
    """Compute the headline metrics of a return stream.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        Simple returns; NaN (and infinite) periods are skipped as `performance` does.
    periods_per_year : float
        Periods in a year, to annualise (365 for daily crypto bars).

    Returns
    -------
    Metrics
        total return, CAGR, volatility, Sharpe, Sortino, Calmar and maximum drawdown; each
        None where it is undefined. The run-specific fields are left None.
    """
    return Metrics(
        total_return=finite(compounding.total_return(returns)),
        cagr=finite(compounding.cagr(returns, periods_per_year)),
        volatility=finite(pf.volatility(returns, periods_per_year)),
        sharpe=finite(pf.sharpe(returns, periods_per_year)),
        sortino=finite(downside.sortino(returns, periods_per_year)),
        calmar=finite(pf.calmar(returns, periods_per_year)),
        max_drawdown=finite(pf.max_drawdown(returns)),
    )


def regime_labels(close: FloatArray, periods_per_year: float) -> dict[str, FloatArray]:
    """Volatility and trend regime of each bar, from the bar's past only.

    Parameters
    ----------
    close : ndarray of shape (n_bars,)
    periods_per_year : float

    Returns
    -------
    dict of str to ndarray of shape (n_bars,)
        "volatility" and "trend" labels (small integers as floats); NaN while the windows
        warm up.
    """
    lookback = min(365, max(30, close.size // 3))
    return {
        "volatility": vol.volatility_regime(close, 30, periods_per_year, lookback=lookback),
        "trend": ind.trend_regime(close, 50),
    }


def regime_stats(
    returns: FloatArray, regimes: dict[str, FloatArray], periods_per_year: float
) -> dict[str, RegimeMetrics]:
    """Total return and Sharpe ratio of the returns of each regime's bars.

    Parameters
    ----------
    returns : ndarray of shape (n_bars - 1,)
        A return belongs to the bar it ends on.
    regimes : dict of str to ndarray of shape (n_bars,)
        Labels by family, as `regime_labels` gives them; NaN labels are skipped.
    periods_per_year : float

    Returns
    -------
    dict of str to RegimeMetrics
        Keyed "<family>:<label>", e.g. "volatility:2" (HIGH).
    """
    found: dict[str, RegimeMetrics] = {}
    for family, labels in regimes.items():
        later = labels[1:]
        for label in np.unique(later[~np.isnan(later)]):
            chosen = returns[later == label]
            found[f"{family}:{int(label)}"] = RegimeMetrics(
                periods=int(chosen.size),
                total_return=finite(compounding.total_return(chosen)),
                sharpe=finite(pf.sharpe(chosen, periods_per_year)),
            )
    return found
