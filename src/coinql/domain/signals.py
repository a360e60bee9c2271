"""Entry and exit signals of the signal strategies, from each bar's close and its past only.

`smaCross` enters when SMA(fast) crosses above SMA(slow) (fast below on an earlier bar, above
now) and exits when it crosses below: crossings only, as vectorbt's `ma_crossed_above` /
`ma_crossed_below`. The other strategies follow the same rule on their own lines; an
`expression` strategy's signals are its own expressions' (`coinql.domain.expressions`).
"""

from __future__ import annotations

import numpy as np

from coinql.domain import indicators as ind
from coinql.domain.candles import Candles
from coinql.domain.expressions import signals_from_params
from coinql.domain.strategies import SignalKind, StrategySpec
from coinql.domain.typing import BoolArray, FloatArray


def lookback(spec: StrategySpec) -> int:
    """Return how many bars a signal strategy needs before its first signal.

    Parameters
    ----------
    spec : StrategySpec
        A signal strategy (one of `SignalKind`) with its parameters.

    Returns
    -------
    int
        The number of leading bars on which `signals` cannot fire: the longest window of the
        strategy's lines, plus one where a line needs a previous bar.
    """
    params = spec.params
    kind = SignalKind(spec.kind)
    if kind is SignalKind.EXPRESSION:
        return signals_from_params(params).lookback
    if kind in (SignalKind.SMA_CROSS, SignalKind.EMA_CROSS):
        return int(params["slow"])
    if kind is SignalKind.RSI_REVERSION:
        return int(params["window"]) + 1
    if kind is SignalKind.DONCHIAN_BREAKOUT:
        return max(int(params["entry"]), int(params["exit"])) + 1
    return int(params["lookback"]) + 1


def crossed_above(first: FloatArray, second: FloatArray) -> BoolArray:
    """Mark the bars where `first` crosses above `second`.

    True on the first bar of each run where `first` > `second`, provided `first` was below
    `second` at some earlier bar with no NaN in between: vectorbt's `crossed_above` rule (an
    equal bar ends a run but does not forget that the series was below).

    Parameters
    ----------
    first, second : ndarray of shape (n_bars,)
        The two lines, aligned bar by bar. NaN marks a bar where a line is undefined (e.g. an
        average's warm-up).

    Returns
    -------
    ndarray of bool of shape (n_bars,)
        The crossing bars. A bar where either line is NaN is never a crossing, and a NaN
        forgets that `first` was below: after it, `first` must be below again first.
    """
    index = np.arange(first.size)
    with np.errstate(invalid="ignore"):
        above, below = first > second, first < second
    missing = np.isnan(first) | np.isnan(second)
    last_below = np.maximum.accumulate(np.where(below, index, -1))
    last_missing = np.maximum.accumulate(np.where(missing, index, -1))
    starts_run = above & ~np.concatenate([[False], above[:-1]])
    return starts_run & (last_below > last_missing)


def signals(spec: StrategySpec, candles: Candles) -> tuple[BoolArray, BoolArray]:
    """Compute a signal strategy's entries and exits on each bar.

    Each bar's signals use the candles up to and including that bar, never later ones.

    Parameters
    ----------
    spec : StrategySpec
        A signal strategy (one of `SignalKind`) with its parameters.
    candles : Candles
        The series of n_bars candles the strategy trades.

    Returns
    -------
    enter, exit : tuple of two ndarray of bool of shape (n_bars,)
        Whether to enter a long position, and whether to exit it, at each bar's close. Both
        are False on the first `lookback(spec)` bars, where the strategy's lines are NaN.
    """
    close, high, low = candles.close, candles.high, candles.low
    params = spec.params
    kind = SignalKind(spec.kind)
    if kind is SignalKind.EXPRESSION:
        return signals_from_params(params).signals(candles)
    if kind in (SignalKind.SMA_CROSS, SignalKind.EMA_CROSS):
        average = ind.sma if kind is SignalKind.SMA_CROSS else ind.ema
        fast, slow = average(close, int(params["fast"])), average(close, int(params["slow"]))
        return crossed_above(fast, slow), crossed_above(slow, fast)
    if kind is SignalKind.RSI_REVERSION:
        value = ind.rsi(close, int(params["window"]))
        lower = np.full(close.size, float(params["lower"]))
        upper = np.full(close.size, float(params["upper"]))
        return crossed_above(lower, value), crossed_above(value, upper)
    if kind is SignalKind.DONCHIAN_BREAKOUT:
        entry, exit_window = int(params["entry"]), int(params["exit"])
        upper = np.full(close.size, np.nan)
        lower = np.full(close.size, np.nan)
        upper[entry:] = np.max(np.lib.stride_tricks.sliding_window_view(high, entry)[:-1], axis=-1)
        lower[exit_window:] = np.min(
            np.lib.stride_tricks.sliding_window_view(low, exit_window)[:-1], axis=-1
        )
        with np.errstate(invalid="ignore"):
            return close > upper, close < lower
    window = int(params["lookback"])
    momentum = np.full(close.size, np.nan)
    momentum[window:] = close[window:] / close[:-window] - 1
    threshold = np.full(close.size, float(params["threshold"]))
    return crossed_above(momentum, threshold), crossed_above(threshold, momentum)
