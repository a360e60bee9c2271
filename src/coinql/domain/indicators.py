"""Indicators and features over candles, shared by analytics and the backtest engine.

The volatility features are in `coinql.domain.volatility`; `compute` computes any of them
by name.

Every function returns arrays aligned on its input (shape (n,)), NaN until enough history
exists: no value ever uses a later bar, so a backtest can read them without look-ahead.
Recursive smoothers are computed with `scipy.signal.lfilter`, not a Python loop over bars.

Inputs are expected finite, as validated candles are: the moving averages and smoothers carry
a NaN input into every later value (they are cumulative sums and recursions), the windowed
statistics into the values whose window holds it. A window below 1 raises `ValueError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np
from scipy.signal import lfilter

from coinql.domain import volatility as vol
from coinql.domain.candles import Candles
from coinql.domain.typing import FloatArray


def _windows(values: FloatArray, window: int) -> FloatArray:
    return np.lib.stride_tricks.sliding_window_view(values, window)


def _check_window(window: int) -> None:
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")


def sma(values: FloatArray, window: int) -> FloatArray:
    """Compute the simple moving average of the last `window` values.

    Parameters
    ----------
    values : ndarray of shape (n,)
        The series, e.g. closes.
    window : int
        Values averaged, at least 1.

    Returns
    -------
    ndarray of shape (n,)
        The average ending at each bar; NaN on the first `window - 1` bars (all of them when
        n < window).
    """
    _check_window(window)
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] >= window:
        cumulative = np.cumsum(np.concatenate([[0.0], values]))
        out[window - 1 :] = (cumulative[window:] - cumulative[:-window]) / window
    return out


def _recursive(values: FloatArray, alpha: float, seed_window: int) -> FloatArray:
    """Run y[t] = alpha * x[t] + (1 - alpha) * y[t-1].

    Seeded with the mean of the first `seed_window` values at index seed_window - 1.
    """
    out = np.full(values.shape[0], np.nan)
    if values.shape[0] < seed_window:
        return out
    seed = float(np.mean(values[:seed_window]))
    rest = values[seed_window:]
    filtered, _ = lfilter([alpha], [1.0, alpha - 1.0], rest, zi=[(1.0 - alpha) * seed])
    out[seed_window - 1] = seed
    out[seed_window:] = filtered
    return out


def ema(values: FloatArray, window: int) -> FloatArray:
    """Compute the exponential moving average, alpha = 2 / (window + 1).

    Seeded with the SMA of the first `window` values (the common charting convention).

    Parameters
    ----------
    values : ndarray of shape (n,)
        The series, e.g. closes.
    window : int
        The span, at least 1.

    Returns
    -------
    ndarray of shape (n,)
        The average at each bar; NaN on the first `window - 1` bars (all of them when
        n < window).
    """
    _check_window(window)
    return _recursive(values, 2.0 / (window + 1.0), window)


def rsi(closes: FloatArray, window: int = 14) -> FloatArray:
    """Compute Wilder's relative strength index.

    Gains and losses are smoothed with alpha = 1 / window, each seeded with the mean of its
    first `window` changes.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices.
    window : int, default 14
        The smoothing window, at least 1.

    Returns
    -------
    ndarray of shape (n,)
        The index in [0, 100]: 100 when the smoothed loss is zero, 50 when both gain and loss
        are. NaN on the first `window` bars (all of them when n <= window).
    """
    _check_window(window)
    out = np.full(closes.shape[0], np.nan)
    if closes.shape[0] <= window:
        return out
    change = np.diff(closes)
    gains = _recursive(np.maximum(change, 0.0), 1.0 / window, window)
    losses = _recursive(np.maximum(-change, 0.0), 1.0 / window, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(losses == 0, 100.0, 100.0 - 100.0 / (1.0 + gains / losses))
    value[(gains == 0) & (losses == 0)] = 50.0
    out[1:] = np.where(np.isnan(gains), np.nan, value)
    return out


def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """Compute each bar's true range.

    Parameters
    ----------
    high, low, close : ndarray of shape (n,)
        The bars' prices.

    Returns
    -------
    ndarray of shape (n,)
        The largest of high - low, |high - previous close| and |low - previous close|; on
        the first bar, which has no previous close, high - low.
    """
    previous = np.concatenate([[np.nan], close[:-1]])
    ranges = np.column_stack([high - low, np.abs(high - previous), np.abs(low - previous)])
    return np.nanmax(ranges, axis=1)


def atr(high: FloatArray, low: FloatArray, close: FloatArray, window: int = 14) -> FloatArray:
    """Compute Wilder's average true range.

    Parameters
    ----------
    high, low, close : ndarray of shape (n,)
        The bars' prices.
    window : int, default 14
        The smoothing window (alpha = 1 / window), at least 1.

    Returns
    -------
    ndarray of shape (n,)
        The true range smoothed, seeded with the mean of its first `window` values; NaN on
        the first `window - 1` bars (all of them when n < window).
    """
    _check_window(window)
    return _recursive(true_range(high, low, close), 1.0 / window, window)


@dataclass(frozen=True, slots=True)
class Bands:
    """Lower, middle and upper band, each an ndarray of shape (n,)."""

    lower: FloatArray
    middle: FloatArray
    upper: FloatArray


def bollinger(values: FloatArray, window: int = 20, width: float = 2.0) -> Bands:
    """Compute Bollinger bands: the SMA +/- `width` standard deviations.

    The standard deviation is the population one (ddof 0), as charting tools use.

    Parameters
    ----------
    values : ndarray of shape (n,)
        The series, e.g. closes.
    window : int, default 20
        Values in the moving window, at least 1.
    width : float, default 2.0
        Standard deviations between the middle and each outer band.

    Returns
    -------
    Bands
        Each band of shape (n,), NaN on the first `window - 1` bars (all of them when
        n < window).
    """
    _check_window(window)
    middle = sma(values, window)
    spread = np.full(values.shape[0], np.nan)
    if values.shape[0] >= window:
        spread[window - 1 :] = np.std(_windows(values, window), axis=-1)
    return Bands(middle - width * spread, middle, middle + width * spread)


def zscore(values: FloatArray, window: int) -> FloatArray:
    """Compute the rolling z-score (x - rolling mean) / rolling sample std (ddof 1).

    Parameters
    ----------
    values : ndarray of shape (n,)
        The series.
    window : int
        Values in the moving window, at least 1; a window of 1 has no sample std.

    Returns
    -------
    ndarray of shape (n,)
        The z-score of each bar within its window; NaN on the first `window - 1` bars, where
        the window's std is zero, and everywhere when window < 2 or n < window.
    """
    _check_window(window)
    out = np.full(values.shape[0], np.nan)
    if window >= 2 and values.shape[0] >= window:
        frames = _windows(values, window)
        std = np.std(frames, axis=-1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[window - 1 :] = np.where(
                std > 0, (values[window - 1 :] - frames.mean(axis=-1)) / std, np.nan
            )
    return out


def vwap(
    high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, window: int
) -> FloatArray:
    """Compute the rolling volume-weighted average of the typical price.

    The typical price is (high + low + close) / 3.

    Parameters
    ----------
    high, low, close, volume : ndarray of shape (n,)
        The bars' prices and volumes.
    window : int
        Bars in the moving window, at least 1.

    Returns
    -------
    ndarray of shape (n,)
        The average over the last `window` bars; NaN on the first `window - 1` bars and
        where the window's volume is zero or NaN (a source without volumes gives all NaN).
    """
    _check_window(window)
    typical = (high + low + close) / 3.0
    weighted = sma(typical * volume, window)
    total = sma(volume, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, weighted / total, np.nan)


class TrendRegime(IntEnum):
    """The values of `trend_regime`."""

    DOWN = -1
    SIDEWAYS = 0
    UP = 1


def trend_regime(closes: FloatArray, window: int, band: float = 0.02) -> FloatArray:
    """Classify each bar's trend from its close against a rising or falling SMA.

    UP when the close is more than `band` above its SMA and the SMA rose over the window,
    DOWN when more than `band` below and the SMA fell, else SIDEWAYS.

    Parameters
    ----------
    closes : ndarray of shape (n,)
        Closing prices.
    window : int
        The SMA's window, and the span its slope is measured over.
    band : float, default 0.02
        The relative distance from the SMA a close must pass.

    Returns
    -------
    ndarray of shape (n,)
        `TrendRegime` values as floats (-1, 0, 1); NaN on the first `2 * window - 1` bars
        (all of them when n < 2 * window).
    """
    average = sma(closes, window)
    out = np.full(closes.shape[0], np.nan)
    if closes.shape[0] < 2 * window:
        return out
    slope = np.full(closes.shape[0], np.nan)
    slope[window:] = average[window:] - average[:-window]
    with np.errstate(invalid="ignore"):
        up = (closes > average * (1 + band)) & (slope > 0)
        down = (closes < average * (1 - band)) & (slope < 0)
    known = ~np.isnan(slope)
    out[known] = np.where(
        up, TrendRegime.UP, np.where(down, TrendRegime.DOWN, TrendRegime.SIDEWAYS)
    )[known]
    return out


REGIME_LEGEND = [
    *(f"volatilityRegime {level.value} = {level.name}" for level in vol.VolatilityRegime),
    *(f"trendRegime {level.value} = {level.name}" for level in TrendRegime),
]


class IndicatorKind(StrEnum):
    """The indicators a request can name; the values are the series names' stems."""

    SMA = "sma"
    EMA = "ema"
    RSI = "rsi"
    ATR = "atr"
    BOLLINGER = "bollinger"
    ZSCORE = "zscore"
    VWAP = "vwap"
    REALIZED_VOLATILITY = "realizedVolatility"
    VOL_OF_VOL = "volOfVol"
    VOLATILITY_REGIME = "volatilityRegime"
    TREND_REGIME = "trendRegime"


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One indicator and its parameters; each kind reads only the parameters it has.

    Parameters
    ----------
    kind : IndicatorKind
        Which indicator.
    window : int
        Periods of the indicator (of each volatility for the volatility features).
    width : float, default 2.0
        Bollinger bands' width, in standard deviations.
    outer_window : int or None, default None
        Vol of vol: periods of the volatilities it varies over (`window` if None).
    lookback : int, default 365
        Volatility regime: periods ranked against.
    band : float, default 0.02
        Trend regime: the band around the average, a fraction.
    """

    kind: IndicatorKind
    window: int
    width: float = 2.0
    outer_window: int | None = None
    lookback: int = 365
    band: float = 0.02


@dataclass(frozen=True, slots=True)
class NamedSeries:
    """A computed series and its name, e.g. ``"ema(20)"`` or ``"bollinger(20,2).upper"``."""

    name: str
    values: FloatArray


def compute(spec: IndicatorSpec, candles: Candles, periods_per_year: float) -> list[NamedSeries]:
    """Compute the series of one indicator over candles (three for Bollinger bands).

    Parameters
    ----------
    spec : IndicatorSpec
        The indicator and its parameters.
    candles : Candles
        The candles, arrays of shape (n_candles,).
    periods_per_year : float
        Candles per year, to annualise the volatility features.

    Returns
    -------
    list of NamedSeries
        Each `values` of shape (n_candles,), aligned on the candles' timestamps and NaN until
        enough history exists (see each indicator). VWAP uses the base volume where known,
        else the quote volume in coins at the close.
    """
    high, low, close, window = candles.high, candles.low, candles.close, spec.window
    kind = spec.kind
    if kind is IndicatorKind.BOLLINGER:
        bands = bollinger(close, window, spec.width)
        label = f"bollinger({window},{spec.width:g})"
        return [
            NamedSeries(f"{label}.{part}", getattr(bands, part))
            for part in ("lower", "middle", "upper")
        ]
    if kind is IndicatorKind.VOL_OF_VOL:
        values = vol.vol_of_vol(close, window, periods_per_year, spec.outer_window)
        return [NamedSeries(f"volOfVol({window})", values)]
    if kind is IndicatorKind.VOLATILITY_REGIME:
        values = vol.volatility_regime(close, window, periods_per_year, spec.lookback)
        return [NamedSeries(f"volatilityRegime({window},{spec.lookback})", values)]
    if kind is IndicatorKind.TREND_REGIME:
        return [NamedSeries(f"trendRegime({window})", trend_regime(close, window, spec.band))]
    volume = np.where(np.isnan(candles.volume), candles.quote_volume / close, candles.volume)
    single: dict[IndicatorKind, Callable[[int], FloatArray]] = {
        IndicatorKind.SMA: lambda w: sma(close, w),
        IndicatorKind.EMA: lambda w: ema(close, w),
        IndicatorKind.RSI: lambda w: rsi(close, w),
        IndicatorKind.ATR: lambda w: atr(high, low, close, w),
        IndicatorKind.ZSCORE: lambda w: zscore(close, w),
        IndicatorKind.VWAP: lambda w: vwap(high, low, close, volume, w),
        IndicatorKind.REALIZED_VOLATILITY: lambda w: vol.realized_volatility(
            close, w, periods_per_year
        ),
    }
    return [NamedSeries(f"{kind.value}({window})", single[kind](window))]
