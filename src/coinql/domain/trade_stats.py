"""Statistics of a backtest's trades: profit factor, expectancy, streaks, holding time, extremes.

They read the round trips of `coinql.domain.trades` in the order given (a backtest's, by entry),
a still-open trade (exit reason END, marked at the last close) counting as it is marked. A trade
wins when its `pnl` (net of fees) is positive and loses when it is negative; a break-even trade
is neither and breaks both streaks (as vectorbt's trade records). The period-based counterparts
over a return stream are in `coinql.domain.win_loss`. An undefined statistic is NaN, never an
infinity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from coinql.domain.win_loss import consecutive_losses, consecutive_wins, profit_factor


class Traded(Protocol):
    """What the statistics read of a trade.

    A `coinql.domain.trades.Trade`, or a run's stored `coinql.domain.book.TradeRow`.
    """

    @property
    def pnl(self) -> float:
        """Net of fees, in the quote currency."""

    @property
    def return_pct(self) -> float:
        """The pnl over the entry notional."""

    @property
    def duration(self) -> int:
        """Bars from entry to exit."""


@dataclass(frozen=True, slots=True)
class TradeStatistics:
    """What a list of trades made, and how.

    Attributes
    ----------
    count : int
        The trades.
    profit_factor : float
        The summed pnl of the winning trades over the magnitude of the losing ones'; NaN
        without a losing trade (vectorbt: inf).
    expectancy : float
        The mean pnl per trade, in the quote currency: win rate x mean win - loss rate x mean
        loss; NaN without trades.
    expectancy_return : float
        The mean `return_pct` per trade (pnl over the entry notional); NaN without trades.
    longest_winning_streak, longest_losing_streak : int
        The most consecutive winning (losing) trades; 0 without any.
    average_holding_bars : float
        The mean of `Trade.duration`, bars from entry to exit; NaN without trades.
    best_trade, worst_trade : float
        The highest and lowest `return_pct`; NaN without trades.
    """

    count: int
    profit_factor: float
    expectancy: float
    expectancy_return: float
    longest_winning_streak: int
    longest_losing_streak: int
    average_holding_bars: float
    best_trade: float
    worst_trade: float


def trade_statistics(trades: Sequence[Traded]) -> TradeStatistics:
    """Summarise the trades of a backtest.

    Parameters
    ----------
    trades : sequence of Trade or TradeRow
        In the order they were made (streaks follow it).

    Returns
    -------
    TradeStatistics
        Counts are 0 and the other statistics NaN without trades.
    """
    if not trades:
        return TradeStatistics(0, np.nan, np.nan, np.nan, 0, 0, np.nan, np.nan, np.nan)
    pnl = np.array([trade.pnl for trade in trades], dtype=np.float64)
    returns = np.array([trade.return_pct for trade in trades], dtype=np.float64)
    held = np.array([trade.duration for trade in trades], dtype=np.float64)
    # Break-even trades add nothing to the winners' sum, so the period profit factor (which
    # counts zeros with the gains) is the trades' one.
    return TradeStatistics(
        count=len(trades),
        profit_factor=float(profit_factor(pnl)),
        expectancy=float(np.mean(pnl)),
        expectancy_return=float(np.mean(returns)),
        longest_winning_streak=int(consecutive_wins(pnl)),
        longest_losing_streak=int(consecutive_losses(pnl)),
        average_holding_bars=float(np.mean(held)),
        best_trade=float(np.max(returns)),
        worst_trade=float(np.min(returns)),
    )


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """A bot's trade from flat to flat: `duration` in bars of its interval."""

    pnl: float
    return_pct: float
    duration: int


def round_trips(
    fills: Sequence[tuple[str, float, float, float, int]], step_ms: int
) -> list[RoundTrip]:
    """Read a bot's fills as round trips, each from flat to flat again.

    Parameters
    ----------
    fills : sequence of (side, price, quantity, fee, time_ms)
        In time order; side is "BUY" or "SELL", the fee in the quote currency.
    step_ms : int
        The bot's interval, for the holding time in bars.

    Returns
    -------
    list of RoundTrip
        The closed ones only: PnL = what the sells brought less what the buys cost, net of
        every fee; the return is the PnL over what the buys cost. A position still open is
        not a trade yet.
    """
    trips: list[RoundTrip] = []
    held = cost = proceeds = 0.0
    opened = 0
    for side, price, quantity, fee, time_ms in fills:
        if held <= 1e-12 and side == "BUY":
            held, cost, proceeds, opened = 0.0, 0.0, 0.0, time_ms
        if side == "BUY":
            held, cost = held + quantity, cost + price * quantity + fee
        else:
            held, proceeds = held - quantity, proceeds + price * quantity - fee
        if side == "SELL" and held <= 1e-12 and cost > 0:
            pnl = proceeds - cost
            trips.append(RoundTrip(pnl, pnl / cost, (time_ms - opened) // step_ms))
            cost = 0.0
    return trips
