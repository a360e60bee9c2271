"""Where the trades of a backtest open and close.

Entry signals are paired with the exits that follow them; a stop-loss or take-profit level
ends a trade at its first touch.
"""

from __future__ import annotations

from bisect import bisect_left

import numpy as np

from coinql.domain.typing import FloatArray, IntArray


def pair_signals(
    enter_bars: IntArray, leave_bars: IntArray, last_bar: int
) -> tuple[IntArray, IntArray, bool]:
    """Pair each entry with the first exit after it, the next entry coming after that exit.

    Parameters
    ----------
    enter_bars, leave_bars : ndarray of int64 of shape (n_entries,) and (n_exits,)
        Sorted, unique bars where entries and exits fill.
    last_bar : int
        The last bar: a trade still open at the end ends there.

    Returns
    -------
    starts, ends : ndarray of int64
        The entry and exit bar of each trade, of equal length.
    still_open : bool
        Whether the last trade has no exit (it ends at `last_bar`).
    """
    at = np.minimum(np.searchsorted(leave_bars, enter_bars), max(leave_bars.size - 1, 0))
    if leave_bars.size and np.any(leave_bars[at] == enter_bars):  # a bar both enters and exits
        return _pair_one_by_one(enter_bars.tolist(), leave_bars.tolist(), last_bar)
    # Without a bar that both enters and exits, the book after each signal is the signal's
    # own side: a trade starts at an entry after an exit (or first), ends at the reverse.
    bars = np.concatenate([enter_bars, leave_bars])
    order = np.argsort(bars, kind="stable")
    is_entry = (np.arange(bars.size) < enter_bars.size)[order]
    after_exit = np.concatenate([[True], ~is_entry[:-1]])
    starts = bars[order][is_entry & after_exit].astype(np.int64)
    ends = bars[order][~is_entry & ~after_exit].astype(np.int64)
    still_open = starts.size > ends.size
    if still_open:
        ends = np.append(ends, np.int64(last_bar))
    return starts, ends, still_open


def _pair_one_by_one(
    enter_bars: list[int], leave_bars: list[int], last_bar: int
) -> tuple[IntArray, IntArray, bool]:
    """`pair_signals` by two bisections per trade, for signals that share a bar."""
    starts: list[int] = []
    ends: list[int] = []
    still_open = False
    bar = 0
    while True:
        k = bisect_left(enter_bars, bar)
        if k == len(enter_bars):
            break
        start = enter_bars[k]
        j = bisect_left(leave_bars, start + 1)
        starts.append(start)
        if j == len(leave_bars):
            ends.append(last_bar)
            still_open = True
            break
        ends.append(leave_bars[j])
        bar = leave_bars[j] + 1
    return np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64), still_open


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
