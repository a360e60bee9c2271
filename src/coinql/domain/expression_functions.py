"""The functions a strategy expression may call (`coinql.domain.expressions`).

Each one's signature, what it gives, how it is computed and how many bars it needs before its
first value. Every one reads the bar it is evaluated at and earlier bars only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from coinql.domain import indicators as ind
from coinql.domain.typing import BoolArray, FloatArray
from coinql.domain.volatility import realized_volatility


class Type(Enum):
    """What a (sub)expression gives."""

    NUMBER = "a number"
    SERIES = "a series"
    CONDITION = "a condition"


@dataclass(frozen=True, slots=True)
class Function:
    """A function's signature, and how it is computed from the candles and its arguments.

    A `WINDOW` parameter is a positive whole number, bound when the expression is checked.
    """

    params: tuple[str, ...]
    returns: Type
    compute: Callable[..., Any]
    # Bars before its first defined value, from its arguments': (their lookback, the windows).
    lookback: Callable[[int, list[float]], int]
    optional: tuple[float, ...] = ()  # defaults of its trailing parameters


SERIES, WINDOW, NUMBER = "series", "window", "number"


def _channel(values: FloatArray, window: int, reduce: Callable[..., FloatArray]) -> FloatArray:
    """Reduce the `window` bars before each bar (the bar itself excluded) by max or min.

    This is the channel as the built-in Donchian breakout reads it.
    """
    out = np.full(values.size, np.nan)
    if values.size > window:
        frames = np.lib.stride_tricks.sliding_window_view(values, window)[:-1]
        out[window:] = reduce(frames, axis=-1)
    return out


def _lag(values: FloatArray, bars: int) -> FloatArray:
    out = np.full(values.size, np.nan)
    if bars < values.size:
        out[bars:] = values[: values.size - bars]
    return out


def _crossover(first: FloatArray, second: FloatArray) -> BoolArray:
    from coinql.domain.signals import crossed_above  # signals reads expressions too

    return crossed_above(first, second)


def _windowed(extra: int) -> Callable[[int, list[float]], int]:
    return lambda before, windows: before + int(windows[0]) - 1 + extra


FUNCTIONS: dict[str, Function] = {
    "sma": Function((SERIES, WINDOW), Type.SERIES, lambda c, x, w: ind.sma(x, w), _windowed(0)),
    "ema": Function((SERIES, WINDOW), Type.SERIES, lambda c, x, w: ind.ema(x, w), _windowed(0)),
    "rsi": Function((SERIES, WINDOW), Type.SERIES, lambda c, x, w: ind.rsi(x, w), _windowed(1)),
    "zscore": Function(
        (SERIES, WINDOW), Type.SERIES, lambda c, x, w: ind.zscore(x, w), _windowed(0)
    ),
    "realized_vol": Function(
        (SERIES, WINDOW),
        Type.SERIES,
        lambda c, x, w: realized_volatility(x, w, 1.0),  # per bar, not annualised
        _windowed(1),
    ),
    "atr": Function(
        (WINDOW,), Type.SERIES, lambda c, w: ind.atr(c.high, c.low, c.close, w), _windowed(0)
    ),
    "vwap": Function(
        (WINDOW,),
        Type.SERIES,
        lambda c, w: ind.vwap(c.high, c.low, c.close, c.volume, w),
        _windowed(0),
    ),
    "bbands_upper": Function(
        (SERIES, WINDOW, NUMBER),
        Type.SERIES,
        lambda c, x, w, k: ind.bollinger(x, w, k).upper,
        _windowed(0),
        (2.0,),
    ),
    "bbands_middle": Function(
        (SERIES, WINDOW), Type.SERIES, lambda c, x, w: ind.sma(x, w), _windowed(0)
    ),
    "bbands_lower": Function(
        (SERIES, WINDOW, NUMBER),
        Type.SERIES,
        lambda c, x, w, k: ind.bollinger(x, w, k).lower,
        _windowed(0),
        (2.0,),
    ),
    "donchian_upper": Function(
        (WINDOW,), Type.SERIES, lambda c, w: _channel(c.high, w, np.max), _windowed(1)
    ),
    "donchian_lower": Function(
        (WINDOW,), Type.SERIES, lambda c, w: _channel(c.low, w, np.min), _windowed(1)
    ),
    "lag": Function((SERIES, WINDOW), Type.SERIES, lambda c, x, n: _lag(x, n), _windowed(1)),
    "crossover": Function(
        (SERIES, SERIES),
        Type.CONDITION,
        lambda c, a, b: _crossover(a, b),
        lambda before, windows: before + 1,
    ),
    "crossunder": Function(
        (SERIES, SERIES),
        Type.CONDITION,
        lambda c, a, b: _crossover(b, a),
        lambda before, windows: before + 1,
    ),
}
ALIASES = {"bbands": "bbands_upper, bbands_middle or bbands_lower", "donchian": "donchian_upper"}
