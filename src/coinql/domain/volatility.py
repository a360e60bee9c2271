"""Volatility of closes: realized volatility, its volatility, and the volatility regime.

Features over candles like `coinql.domain.indicators` (which computes them by name): every
function returns an array aligned on its input (shape (n,)), NaN until enough history exists,
and no value ever uses a later bar, so a backtest can read them without look-ahead. Closes are
expected finite and positive, as validated candles are; a NaN close carries into the values
whose window holds it. A window below 1 raises `ValueError`.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from coinql.domain.typing import FloatArray


def _windows(values: FloatArray, window: int) -> FloatArray:
    return np.lib.stride_tricks.sliding_window_view(values, window)


def log_returns(closes: FloatArray) -> FloatArray:
    """Compute the log return of each bar from the previous close.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices, expected positive.

    Returns
    -------
    ndarray of shape (n,)
        ln(close[t] / close[t - 1]); NaN on the first bar. A zero or negative close gives an
        infinite or NaN return instead of raising.
    """
    out = np.full(closes.shape[0], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = np.log(closes[1:] / closes[:-1])
    return out


def realized_volatility(closes: FloatArray, window: int, periods_per_year: float) -> FloatArray:
    """Compute the annualised sample std (ddof 1) of the last `window` log returns.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices.
    window : int
        Log returns in the moving window, at least 1; a window of 1 has no sample std.
    periods_per_year : float
        Bars per year, e.g. `Interval.D1.periods_per_year` (365); the std is scaled by its
        square root.

    Returns
    -------
    ndarray of shape (n,)
        The volatility at each bar; NaN on the first `window` bars (the first has no return),
        and everywhere when window < 2 or n <= window.
    """
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    returns = log_returns(closes)
    out = np.full(closes.shape[0], np.nan)
    if window >= 2 and closes.shape[0] > window:
        out[window:] = np.std(_windows(returns[1:], window), axis=-1, ddof=1) * np.sqrt(
            periods_per_year
        )
    return out


def vol_of_vol(
    closes: FloatArray, window: int, periods_per_year: float, outer_window: int | None = None
) -> FloatArray:
    """Compute the sample std (ddof 1) of the realized volatility.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices.
    window : int
        The window of `realized_volatility`.
    periods_per_year : float
        Bars per year, for `realized_volatility`.
    outer_window : int or None, default None
        Volatility values whose std is taken; None for `window`.

    Returns
    -------
    ndarray of shape (n,)
        NaN on the first `window + outer_window - 1` bars, and everywhere when the outer
        window is below 2 or the series is not longer than that.
    """
    outer = outer_window or window
    volatility = realized_volatility(closes, window, periods_per_year)
    out = np.full(closes.shape[0], np.nan)
    start = window + outer - 1
    if outer >= 2 and closes.shape[0] > start:
        out[start:] = np.std(_windows(volatility[window:], outer), axis=-1, ddof=1)
    return out


class VolatilityRegime(IntEnum):
    """The values of `volatility_regime`."""

    LOW = 0
    NORMAL = 1
    HIGH = 2


def volatility_regime(
    closes: FloatArray, window: int, periods_per_year: float, lookback: int = 365
) -> FloatArray:
    """Classify each bar's realized volatility against its own trailing history.

    LOW below the 33rd percentile of the last `lookback` volatility values (the bar's own
    included, none later), HIGH above the 67th, NORMAL between.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices.
    window : int
        The window of `realized_volatility`.
    periods_per_year : float
        Bars per year, for `realized_volatility`.
    lookback : int, default 365
        Volatility values the percentiles are taken over.

    Returns
    -------
    ndarray of shape (n,)
        `VolatilityRegime` values as floats (0, 1, 2); NaN on the first
        `window + lookback - 1` bars (all of them when n <= window + lookback - 1).
    """
    volatility = realized_volatility(closes, window, periods_per_year)
    out = np.full(closes.shape[0], np.nan)
    start = window + lookback - 1
    if closes.shape[0] <= start:
        return out
    history = _windows(volatility[window:], lookback)
    low, high = np.percentile(history, [100 / 3, 200 / 3], axis=-1)
    current = volatility[start:]
    out[start:] = np.where(
        current < low,
        VolatilityRegime.LOW,
        np.where(current > high, VolatilityRegime.HIGH, VolatilityRegime.NORMAL),
    )
    return out
