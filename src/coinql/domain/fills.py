"""Where the trades of a backtest open and close.

Entry signals are paired with the exits that follow them; a stop-loss or take-profit level
ends a trade at its first touch.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from coinql.domain.typing import FloatArray


def pair_signals(
    enter_bars: list[int], leave_bars: list[int], last_bar: int
) -> tuple[list[int], list[int], bool]:
    """Pair each entry with the first exit after it, the next entry coming after that exit.

    Parameters
    ----------
    enter_bars, leave_bars : list of int
        Sorted bars where entries and exits fill.
    last_bar : int
        The last bar: a trade still open at the end ends there.

    Returns
    -------
    starts, ends : list of int
        The entry and exit bar of each trade, of equal length.
    still_open : bool
        Whether the last trade has no exit (it ends at `last_bar`).
    """
    starts: list[int] = []
    ends: list[int] = []
    bar = 0
    while True:  # two bisections per trade
        k = bisect_left(enter_bars, bar)
        if k == len(enter_bars):
            return starts, ends, False
        start = enter_bars[k]
        j = bisect_left(leave_bars, start + 1)
        starts.append(start)
        if j == len(leave_bars):
            ends.append(last_bar)
            return starts, ends, True
        ends.append(leave_bars[j])
        bar = leave_bars[j] + 1


def first_stop(
    low: FloatArray,
    high: FloatArray,
    opening: FloatArray,
    *,
    side: int,
    entry: float,
    stop_loss: float | None,
    take_profit: float | None,
) -> tuple[int, float, bool] | None:
    """Find the first bar whose range touches the stop-loss or the take-profit level.

    A bar that opens beyond the level fills at its open (a gap), otherwise at the level. On
    a bar that touches both, the stop-loss wins.

    Parameters
    ----------
    low, high, opening : ndarray of shape (n_bars,)
        The bars after the entry fill, up to the last the trade may last.
    side : int
        +1 long, -1 short.
    entry : float
        The entry fill price.
    stop_loss, take_profit : float or None
        A fall (long) or rise (short) against the position, and a move with it, as
        fractions of the entry price; None for no level.

    Returns
    -------
    tuple of (int, float, bool) or None
        The bar's offset in the arrays, the fill price, and whether the stop-loss (rather than
        the take-profit) was touched; None when neither level is touched.
    """
    hits = []
    if stop_loss is not None:
        level = entry * (1 - side * stop_loss)
        touched = low <= level if side == 1 else high >= level
        hits.append((touched, level, True))
    if take_profit is not None:
        level = entry * (1 + side * take_profit)
        touched = high >= level if side == 1 else low <= level
        hits.append((touched, level, False))
    found: list[tuple[int, int, float, bool]] = []
    for priority, (touched, level, is_stop_loss) in enumerate(hits):
        if touched.any():
            offset = int(np.argmax(touched))
            against = -1 if is_stop_loss else 1
            gapped = (opening[offset] - level) * side * against > 0
            price = float(opening[offset]) if gapped else float(level)
            found.append((offset, priority, price, is_stop_loss))
    if not found:
        return None
    offset, _, price, is_stop_loss = min(found)
    return offset, price, is_stop_loss
