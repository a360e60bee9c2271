"""The backtest engine for signal strategies: signals, fills, sizing, stops, trades, equity.

Conventions:
- Signals are computed from bar t's close and its past only. With `FillPrice.CLOSE` the order
  fills at bar t's close; with `NEXT_OPEN` (the default) at bar t+1's open, so a signal can
  never trade on a price it has not seen.
- Entry and exit signals come from `signals.py` (crossings only, as vectorbt's).
- ALL_IN sizing buys as much as the equity allows after fees: units = equity / (price x
  (1 + fee)); FIXED_FRACTION uses a fraction of equity; VOLATILITY_TARGET scales the notional by
  target / realised volatility (capped by `max_leverage`).
- Fees are `fee_bps` of the traded notional, on entry and on exit. Slippage moves each fill
  against the trade by `slippage_bps` of the price plus `slippage_range` x (high - low).
- Stop-loss and take-profit are checked on each bar after the entry fill against its low and
  high; a bar that opens beyond the level fills at its open, otherwise at the level.

The engine loops over trades (a few hundred), never over bars: everything inside a trade is a
vectorized slice (`coinql.domain.trades`). The settings are in `coinql.domain.backtest_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from coinql.domain.backtest_config import BacktestConfig, Direction, FillPrice, Sizing
from coinql.domain.candles import Candles
from coinql.domain.errors import UserError
from coinql.domain.fills import pair_signals
from coinql.domain.metrics import equity_returns
from coinql.domain.signals import lookback, signals
from coinql.domain.strategies import StrategySpec
from coinql.domain.trades import ExitReason, Trade, next_bar, open_trade
from coinql.domain.typing import BoolArray, FloatArray, IntArray
from coinql.domain.volatility import realized_volatility


class InsufficientData(UserError):
    """Too few candles for the strategy's lookback; says what is needed and what exists.

    Parameters
    ----------
    required : int
        The candles needed: the lookback plus two bars to trade on.
    received : int
        The candles given.
    lookback : int
        The strategy's lookback in bars.
    first, last : int or None
        The timestamps of the first and last candles given; None without candles.
    suggested_start : int or None
        A start timestamp that would give enough candles at the same spacing; None with fewer
        than two candles.
    """

    def __init__(
        self,
        *,
        required: int,
        received: int,
        lookback: int,
        first: int | None,
        last: int | None,
        suggested_start: int | None,
    ) -> None:
        super().__init__(
            f"needs at least {required} candles (a lookback of {lookback} plus room to trade),"
            f" received {received}"
        )
        self.required, self.received, self.lookback = required, received, lookback
        self.first, self.last, self.suggested_start = first, last, suggested_start


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The outcome of one backtest.

    Parameters
    ----------
    equity : ndarray of shape (n_bars,)
        The equity after each bar's close, fees included.
    position : ndarray of shape (n_bars,)
        The units held after each bar, signed (negative short).
    trades : list of Trade
        Empty when the run did not record them.
    trade_count : int, optional
        The number of trades; defaults to ``len(trades)``.
    """

    equity: FloatArray
    position: FloatArray
    trades: list[Trade] = field(default_factory=list)
    trade_count: int = -1  # set when the trades themselves were not recorded

    def __post_init__(self) -> None:
        """Count the trades when no `trade_count` was given."""
        if self.trade_count < 0:
            object.__setattr__(self, "trade_count", len(self.trades))

    @property
    def returns(self) -> FloatArray:
        """The equity's simple returns, of shape (n_bars - 1,) (see `equity_returns`)."""
        return equity_returns(self.equity)

    @property
    def exposure(self) -> float:
        """The share of bars with a position."""
        return float(np.mean(self.position != 0)) if self.position.size else 0.0


def run(spec: StrategySpec, candles: Candles, config: BacktestConfig) -> BacktestResult:
    """Backtest one strategy on one symbol's candles.

    Parameters
    ----------
    spec : StrategySpec
    candles : Candles
        Of length n_bars, oldest first.
    config : BacktestConfig

    Returns
    -------
    BacktestResult
        Arrays of shape (n_bars,).

    Raises
    ------
    InsufficientData
        When there are fewer candles than the strategy's lookback plus two.
    """
    n = len(candles)
    needed = lookback(spec)
    required = needed + 2
    if n < required:
        first = int(candles.timestamps[0]) if n else None
        last = int(candles.timestamps[-1]) if n else None
        step = int(np.median(np.diff(candles.timestamps))) if n > 1 else None
        suggested = (
            int(candles.timestamps[-1]) - (required + needed) * step
            if step is not None and last is not None
            else None
        )
        raise InsufficientData(
            required=required,
            received=n,
            lookback=needed,
            first=first,
            last=last,
            suggested_start=suggested,
        )
    enter, leave = signals(spec, candles)
    return simulate(candles, enter, leave, config)


def simulate(
    candles: Candles,
    enter: BoolArray,
    leave: BoolArray,
    config: BacktestConfig,
    *,
    record_trades: bool = True,
) -> BacktestResult:
    """Compute the trades and equity from entry and exit signals (see the module's conventions).

    Parameters
    ----------
    candles : Candles
        Of length n_bars.
    enter, leave : ndarray of bool of shape (n_bars,)
        The entry and exit signals, on the bars they are computed at; with NEXT_OPEN fills a
        signal on the last bar is ignored.
    config : BacktestConfig
    record_trades : bool, default True
        Sweeps skip it where they only need the equity and the trade count; it only has effect
        on the long-only, all-in path without stops.

    Returns
    -------
    BacktestResult
        Arrays of shape (n_bars,).
    """
    n = len(candles)
    delay = 1 if config.fill is FillPrice.NEXT_OPEN else 0
    # The bars where each signal fills: its own close, or the next bar's open.
    enter_bars = np.flatnonzero(enter[: n - delay]) + delay
    leave_bars = np.flatnonzero(leave[: n - delay]) + delay
    if (
        config.stop_loss is None
        and config.take_profit is None
        and config.direction is Direction.LONG_ONLY
        and config.sizing is Sizing.ALL_IN
    ):
        return _simulate_all_in(candles, enter_bars, leave_bars, config, record_trades)
    close = candles.close
    long_short = config.direction is Direction.LONG_SHORT
    volatility = (
        realized_volatility(close, config.volatility_window, config.periods_per_year)
        if config.sizing is Sizing.VOLATILITY_TARGET
        else None
    )
    equity = np.empty(n)
    position = np.zeros(n)
    trades: list[Trade] = []
    cash, bar = float(config.initial_capital), 0
    while bar < n:  # one iteration per trade
        long_at = next_bar(enter_bars, bar)
        short_at = next_bar(leave_bars, bar) if long_short else None
        candidates = [at for at in (long_at, short_at) if at is not None]
        if not candidates or cash <= 0:
            break
        start = min(candidates)
        side = 1 if start == long_at else -1
        equity[bar:start] = cash
        trade = open_trade(
            candles,
            start,
            side,
            cash,
            config,
            volatility,
            delay,
            exits=leave_bars if side == 1 else enter_bars,
        )
        span = slice(start, trade.exit_bar + 1)
        marked = close[span].copy()
        marked[-1] = trade.exit_price
        entry_fee = trade.quantity * trade.entry_price * config.fee
        equity[span] = cash - entry_fee + side * trade.quantity * (marked - trade.entry_price)
        equity[trade.exit_bar] -= trade.fees - entry_fee
        closed = trade.exit_reason is not ExitReason.END
        position[start : trade.exit_bar + (0 if closed else 1)] = side * trade.quantity
        trades.append(trade)
        cash = float(equity[trade.exit_bar])
        if not closed:
            return BacktestResult(equity, position, trades)
        # A long/short book reverses on the bar of a signal exit; otherwise it moves on.
        reverses = long_short and trade.exit_reason is ExitReason.SIGNAL
        bar = trade.exit_bar if reverses else trade.exit_bar + 1
    equity[bar:] = cash
    return BacktestResult(equity, position, trades)


def _simulate_all_in(
    candles: Candles,
    enter_bars: IntArray,
    leave_bars: IntArray,
    config: BacktestConfig,
    record_trades: bool,
) -> BacktestResult:
    """Simulate the common case (long only, all in, no stops), every bar-level step vectorized.

    `enter_bars` and `leave_bars` are the bars the signals fill on. Each trade compounds the
    cash by (exit x (1 - fee)) / (entry x (1 + fee)). Gives the same numbers as the general
    path (a test checks).
    """
    n, fee = len(candles), config.fee
    start_bars, end_bars, still_open = pair_signals(enter_bars, leave_bars, n - 1)
    capital = float(config.initial_capital)
    if not start_bars.size:
        return BacktestResult(np.full(n, capital), np.zeros(n), [])
    count = start_bars.size
    raw = candles.open if config.fill is FillPrice.NEXT_OPEN else candles.close
    spread_rate = config.slippage_bps / 10_000
    ranges = config.slippage_range * (candles.high - candles.low)
    entry = raw[start_bars] * (1 + spread_rate) + ranges[start_bars]
    exit_ = raw[end_bars] * (1 - spread_rate) - ranges[end_bars]
    exit_fee_rate = np.full(count, fee)
    if still_open:  # marked at the last close, no exit fee
        exit_[-1] = candles.close[end_bars[-1]]
        exit_fee_rate[-1] = 0.0
    growth = exit_ * (1 - exit_fee_rate) / (entry * (1 + fee))
    cash_after = capital * np.cumprod(growth)
    cash_before = np.concatenate([[capital], cash_after[:-1]])
    units = cash_before / (entry * (1 + fee))
    # The trade each bar belongs to (the last started), and whether it is held then: trades
    # never overlap, so running sums of their starts and ends say both in one pass each.
    opened = np.zeros(n, dtype=np.int64)
    opened[start_bars] = 1
    trade = np.cumsum(opened) - 1
    started = trade >= 0
    index = np.maximum(trade, 0)
    held = opened.copy()
    held[end_bars] -= 1  # ends are unique; a trade opened on the last bar is not held
    holding = np.cumsum(held) > 0
    equity = np.where(
        holding, units[index] * candles.close, np.where(started, cash_after[index], capital)
    )
    position = np.where(holding, units[index], 0.0)
    if still_open:
        position[end_bars[-1]] = units[-1]
    if not record_trades:
        return BacktestResult(equity, position, [], trade_count=count)
    # Excursions over each trade's bars [start, end], in one pass.
    bounds = np.column_stack([start_bars, end_bars + 1]).ravel()
    low = np.minimum.reduceat(np.append(candles.low, np.inf), bounds)[::2]
    high = np.maximum.reduceat(np.append(candles.high, -np.inf), bounds)[::2]
    entry_fees = units * entry * fee
    exit_fees = units * exit_ * exit_fee_rate
    pnl = units * (exit_ - entry) - entry_fees - exit_fees
    reasons = [ExitReason.SIGNAL] * count
    if still_open:
        reasons[-1] = ExitReason.END
    # One conversion per column, not per value: numpy scalars are slow to index one by one.
    columns = zip(
        start_bars.tolist(),
        end_bars.tolist(),
        entry.tolist(),
        exit_.tolist(),
        units.tolist(),
        pnl.tolist(),
        (pnl / (units * entry)).tolist(),
        (entry_fees + exit_fees).tolist(),
        ((low - entry) / entry).tolist(),
        ((high - entry) / entry).tolist(),
        reasons,
        strict=True,
    )
    trades = [Trade(1, *values) for values in columns]
    return BacktestResult(equity, position, trades)
