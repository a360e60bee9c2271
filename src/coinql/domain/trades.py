"""One trade of a signal backtest, from its entry fill to its exit.

A trade opens at a fill price that includes slippage, is sized by the config's `Sizing`, and
closes at the first of an opposite signal, a stop-loss or take-profit touch, or the last bar
(still open, marked at the last close). Everything inside a trade is a vectorized slice of the
candles; the engine in `coinql.domain.backtest` loops over trades.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.backtest_config import BacktestConfig, FillPrice, Sizing
from coinql.domain.candles import Candles
from coinql.domain.fills import first_stop
from coinql.domain.typing import FloatArray, IntArray


class ExitReason(StrEnum):
    """Why a trade closed; END marks a trade still open at the last bar."""

    SIGNAL = "SIGNAL"
    STOP_LOSS = "STOP_LOSS"
    TAKE_PROFIT = "TAKE_PROFIT"
    END = "END"


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip.

    Indexes are bars; `side` is +1 long or -1 short; prices include slippage. `pnl` is net of
    `fees` (entry and exit; no exit fee for a trade still open), `return_pct` is `pnl` over the
    entry notional, and `mae` / `mfe` are the worst and best excursions of the bars' lows and
    highs from the entry price, signed for the side, as fractions.
    """

    side: int
    entry_bar: int
    exit_bar: int
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    return_pct: float
    fees: float
    mae: float
    mfe: float
    exit_reason: ExitReason

    @property
    def duration(self) -> int:
        """The bars from the entry to the exit."""
        return self.exit_bar - self.entry_bar


def fill_price(candles: Candles, bar: int, side: int, config: BacktestConfig) -> float:
    """Return the price paid (side +1) or received (side -1) at `bar`, slippage included.

    Parameters
    ----------
    candles : Candles
    bar : int
        The bar of the fill.
    side : int
        +1 for a buy, -1 for a sell.
    config : BacktestConfig
        Its `fill` picks the open or the close; its slippage moves the price against the side.

    Returns
    -------
    float
    """
    raw = float(candles.open[bar] if config.fill is FillPrice.NEXT_OPEN else candles.close[bar])
    spread = raw * config.slippage_bps / 10_000 + config.slippage_range * float(
        candles.high[bar] - candles.low[bar]
    )
    return raw + side * spread


def next_bar(bars: IntArray, at: int) -> int | None:
    """Return the first of the sorted `bars` at or after `at`.

    Parameters
    ----------
    bars : ndarray of int of shape (n_bars,)
        Sorted ascending.
    at : int

    Returns
    -------
    int or None
        None when no bar is at or after `at`.
    """
    found = int(np.searchsorted(bars, at))
    return int(bars[found]) if found < bars.size else None


def open_trade(
    candles: Candles,
    start: int,
    side: int,
    cash: float,
    config: BacktestConfig,
    volatility: FloatArray | None,
    delay: int,
    *,
    exits: IntArray,
) -> Trade:
    """Follow one trade from its entry fill to its exit: an opposite signal, a stop, or the end.

    Parameters
    ----------
    candles : Candles
    start : int
        The bar of the entry fill.
    side : int
        +1 long, -1 short.
    cash : float
        The equity available to the trade.
    config : BacktestConfig
    volatility : ndarray of shape (n_bars,) or None
        The realised volatility, required by VOLATILITY_TARGET sizing; a NaN or non-positive
        value sizes at `max_leverage`.
    delay : int
        The bars between a signal and its fill (1 for NEXT_OPEN, 0 for CLOSE).
    exits : ndarray of int
        The sorted fill bars of the opposite signal.

    Returns
    -------
    Trade
    """
    n, fee = len(candles), config.fee
    price = fill_price(candles, start, side, config)
    quantity = entry_quantity(cash, price, config, volatility, start - delay)
    signal_exit = next_bar(exits, start + 1)
    last = signal_exit if signal_exit is not None else n - 1
    reason = ExitReason.SIGNAL if signal_exit is not None else ExitReason.END
    end, exit_price, reason = _stops(candles, start, last, side, price, config, reason)
    if reason is ExitReason.SIGNAL:
        exit_price = fill_price(candles, end, -side, config)
    elif reason is ExitReason.END:
        exit_price = float(candles.close[end])  # still open: marked at the last close
    exit_fee = 0.0 if reason is ExitReason.END else quantity * exit_price * fee
    entry_fee = quantity * price * fee
    pnl = side * quantity * (exit_price - price) - entry_fee - exit_fee
    span = slice(start, end + 1)
    excursions = side * (np.concatenate([candles.low[span], candles.high[span]]) - price) / price
    return Trade(
        side=side,
        entry_bar=start,
        exit_bar=end,
        entry_price=price,
        exit_price=exit_price,
        quantity=quantity,
        pnl=pnl,
        return_pct=pnl / (quantity * price) if quantity else 0.0,
        fees=entry_fee + exit_fee,
        mae=float(np.min(excursions)),
        mfe=float(np.max(excursions)),
        exit_reason=reason,
    )


def entry_quantity(
    cash: float,
    price: float,
    config: BacktestConfig,
    volatility: FloatArray | None,
    signal_bar: int,
) -> float:
    """Return the units an entry at `price` buys (or sells short) by the config's `Sizing`.

    Parameters
    ----------
    cash : float
        The equity available to the trade.
    price : float
        The entry's fill price, slippage included.
    config : BacktestConfig
        ALL_IN spends `cash` with the entry fee; FIXED_FRACTION a `fraction` of it;
        VOLATILITY_TARGET scales it by the target over the realised volatility.
    volatility : ndarray of shape (n_bars,) or None
        Required by VOLATILITY_TARGET.
    signal_bar : int
        The bar of the signal, where the volatility is read.

    Returns
    -------
    float
    """
    if config.sizing is Sizing.ALL_IN:
        return cash / (price * (1 + config.fee))
    return _notional(cash, config, volatility, signal_bar) / price


def _notional(
    cash: float, config: BacktestConfig, volatility: FloatArray | None, signal_bar: int
) -> float:
    if config.sizing is Sizing.FIXED_FRACTION:
        return cash * config.fraction
    if config.sizing is Sizing.VOLATILITY_TARGET:
        assert volatility is not None
        current = volatility[max(signal_bar, 0)]
        scale = (
            config.max_leverage
            if not np.isfinite(current) or current <= 0
            else min(config.max_leverage, config.volatility_target / current)
        )
        return cash * scale
    return cash


def _stops(
    candles: Candles,
    start: int,
    end: int,
    side: int,
    entry: float,
    config: BacktestConfig,
    reason: ExitReason,
) -> tuple[int, float, ExitReason]:
    """Find the first bar after the entry where a stop-loss or take-profit level is touched."""
    if config.stop_loss is None and config.take_profit is None:
        return end, np.nan, reason
    bars = slice(start + 1, end + 1)
    found = first_stop(
        candles.low[bars],
        candles.high[bars],
        candles.open[bars],
        side=side,
        entry=entry,
        stop_loss=config.stop_loss,
        take_profit=config.take_profit,
    )
    if found is None:
        return end, np.nan, reason
    offset, price, is_stop_loss = found
    return (
        start + 1 + offset,
        price,
        ExitReason.STOP_LOSS if is_stop_loss else ExitReason.TAKE_PROFIT,
    )
