"""A ledger valued in the base currency: now at the last prices, and over time at each close.

The one valuation of a portfolio (`valuation`) and its one value history (`nav_history`):
the portfolio queries and the risk limits both read them. The ledger itself (replay, cost
basis, PnL) is in `coinql.domain.ledger`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from coinql.domain.candles import Interval
from coinql.domain.ledger import ZERO, CostBasis, LedgerState, Transaction, TransactionKind, replay
from coinql.domain.typing import FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class Position:
    """One asset's position at given prices.

    `last_price`, `market_value` and `unrealized_pnl` are None when the asset has no price.
    """

    asset: str
    quantity: Decimal
    average_cost: Decimal | None
    cost_basis: Decimal
    last_price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True, slots=True)
class Valuation:
    """A ledger valued at given prices: cash, positions and totals, in the base currency."""

    cash: Decimal
    positions: list[Position]
    value: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    net_deposits: Decimal
    fees_paid: Decimal

    def weight(self, position: Position) -> float | None:
        """Compute a position's share of the total value.

        Parameters
        ----------
        position : Position
            One of `positions`.

        Returns
        -------
        float or None
            Its market value over the total value; None when it has no price or the total
            is zero.
        """
        if position.market_value is None or self.value == 0:
            return None
        return float(position.market_value / self.value)


def value(state: LedgerState, prices: dict[str, Decimal]) -> Valuation:
    """Value a ledger at the given prices.

    Parameters
    ----------
    state : LedgerState
        The ledger.
    prices : dict of str to Decimal
        The last price of each coin, in the base currency.

    Returns
    -------
    Valuation
        Positions sorted by asset. An asset without a price has no market value and is left
        out of the total value and the unrealized PnL (its own unrealized PnL is unknown).
    """
    positions = []
    for asset, holding in sorted(state.holdings.items()):
        quantity = holding.quantity
        price = prices.get(asset)
        market_value = quantity * price if price is not None else None
        unrealized = market_value - holding.cost_basis if market_value is not None else None
        positions.append(
            Position(
                asset=asset,
                quantity=quantity,
                average_cost=holding.average_cost,
                cost_basis=holding.cost_basis,
                last_price=price,
                market_value=market_value,
                unrealized_pnl=unrealized,
                realized_pnl=holding.realized_pnl,
                fees=holding.fees,
            )
        )
    held = [p for p in positions if p.quantity > 0]
    total = state.cash + sum((p.market_value for p in held if p.market_value is not None), ZERO)
    unrealized = sum((p.unrealized_pnl for p in held if p.unrealized_pnl is not None), ZERO)
    return Valuation(
        cash=state.cash,
        positions=positions,
        value=total,
        realized_pnl=state.realized_pnl,
        unrealized_pnl=unrealized,
        net_deposits=state.net_deposits,
        fees_paid=state.fees_paid,
    )


def valuation(
    transactions: Sequence[Transaction],
    *,
    base_currency: str,
    method: CostBasis,
    last_prices: Mapping[str, float | None],
) -> Valuation:
    """Value the book now: replay the ledger and price its positions at their last prices.

    The one valuation of a portfolio: the portfolio queries and the risk limits both read it.

    Parameters
    ----------
    transactions : sequence of Transaction
        The portfolio's ledger, in any order (replayed in time order).
    base_currency : str
        The currency of cash and of the value.
    method : CostBasis
        How sold units are costed (FIFO or average).
    last_prices : mapping of str to float or None
        The last price of each asset, in the base currency. An asset without one (absent
        or None) has no market value and is left out of the total (its unrealized PnL is
        unknown).

    Returns
    -------
    Valuation
        Cash, positions (sorted by asset) and totals, in exact decimals.

    Raises
    ------
    LedgerError
        When the ledger does not balance (a sale of more than is held, cash below zero).
    """
    state = replay(transactions, base_currency=base_currency, method=method)
    prices = {
        asset: Decimal(repr(price))
        for asset, price in last_prices.items()
        if asset in state.holdings and price is not None
    }
    return value(state, prices)


def priced_assets(transactions: Sequence[Transaction], *, base_currency: str) -> list[str]:
    """List the assets whose prices value the book over time: every one it ever held.

    Parameters
    ----------
    transactions : sequence of Transaction
        The portfolio's ledger.
    base_currency : str
        The currency of cash, which needs no price.

    Returns
    -------
    list of str
        The symbols, sorted; empty for a book of cash only.
    """
    return sorted({tx.asset for tx in transactions if tx.asset != base_currency})


def history_start(transactions: Sequence[Transaction], interval: Interval) -> int:
    """Find the open time (epoch ms) of the `interval` candle of the first transaction.

    Parameters
    ----------
    transactions : sequence of Transaction
        The portfolio's ledger; must not be empty.
    interval : Interval
        The candles that value the history.

    Returns
    -------
    int
        Where the book's value history starts.
    """
    first = int(min(tx.time for tx in transactions).timestamp() * 1000)
    return int(interval.floor(np.asarray([first], np.int64))[0])


@dataclass(frozen=True, slots=True)
class ValueHistory:
    """Net asset value at each close, and the time-weighted returns between closes.

    Parameters
    ----------
    timestamps : ndarray of int64 of shape (n_days,)
        Open times of the candles whose closes value the book.
    values : ndarray of shape (n_days,)
        NAV in the base currency after that day's transactions.
    flows : ndarray of shape (n_days,)
        External flows of each day: deposits less withdrawals, transfers in less transfers
        out at their price.
    returns : ndarray of shape (n_days,)
        Time-weighted: (NAV_t - flows_t) / NAV_{t-1} - 1; NaN on the first day and after a
        day with no capital (NAV_{t-1} <= 0).
    """

    timestamps: IntArray
    values: FloatArray
    flows: FloatArray
    returns: FloatArray

    @classmethod
    def empty(cls) -> ValueHistory:
        """Return the history of a book with no transactions: every array of length 0."""
        return cls(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0))


def value_history(
    transactions: Sequence[Transaction],
    *,
    base_currency: str,
    assets: Sequence[str],
    timestamps: IntArray,
    closes: FloatArray,
) -> ValueHistory:
    """Compute the daily (or per-interval) NAV of a ledger from closes.

    A transaction counts in the period whose candle contains it (one before the first
    candle, in the first period). Deposits, withdrawals and transfers (valued at their
    `price`) are external flows, removed from the returns, so money moving in or out never
    shows as performance.

    Parameters
    ----------
    transactions : sequence of Transaction
        The ledger's transactions, in any order.
    base_currency : str
        The ledger's base currency.
    assets : sequence of str
        The n_assets coins the transactions trade, in the column order of `closes`.
    timestamps : ndarray of int64 of shape (n_days,)
        Sorted open times of the periods.
    closes : ndarray of shape (n_days, n_assets)
        Each coin's close per period. A NaN close is carried forward from the coin's last
        known one; before its first known close, units held count for nothing.

    Returns
    -------
    ValueHistory
        The NAV, flows and returns, each of shape (n_days,).
    """
    n, index = timestamps.shape[0], {asset: i for i, asset in enumerate(assets)}
    quantity_change = np.zeros((n, len(assets)))
    cash_change = np.zeros(n)
    flows = np.zeros(n)
    positions = (
        np.searchsorted(timestamps, [int(t.time.timestamp() * 1000) for t in transactions], "right")
        - 1
    )
    for slot, tx in zip(positions, transactions, strict=True):  # one pass over the ledger
        day = max(int(slot), 0)
        quantity, price, fee = float(tx.quantity), float(tx.price or 0), float(tx.fee)
        if tx.kind is TransactionKind.DEPOSIT:
            cash_change[day] += quantity
            flows[day] += quantity
        elif tx.kind is TransactionKind.WITHDRAW:
            cash_change[day] -= quantity
            flows[day] -= quantity
        elif tx.kind is TransactionKind.FEE:
            cash_change[day] -= quantity
        elif tx.kind is TransactionKind.BUY:
            quantity_change[day, index[tx.asset]] += quantity
            cash_change[day] -= quantity * price + fee
        elif tx.kind is TransactionKind.SELL:
            quantity_change[day, index[tx.asset]] -= quantity
            cash_change[day] += quantity * price - fee
        elif tx.kind is TransactionKind.TRANSFER_IN:
            quantity_change[day, index[tx.asset]] += quantity
            flows[day] += quantity * price
        else:
            quantity_change[day, index[tx.asset]] -= quantity
            flows[day] -= quantity * price
    holdings = np.cumsum(quantity_change, axis=0)
    prices = _forward_fill(closes)
    held_value = np.nansum(np.where(holdings != 0, holdings * prices, 0.0), axis=1)
    values = np.cumsum(cash_change) + held_value
    returns = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns[1:] = np.where(
            values[:-1] > 0, (values[1:] - flows[1:]) / values[:-1] - 1.0, np.nan
        )
    return ValueHistory(timestamps, values, flows, returns)


def _forward_fill(closes: FloatArray) -> FloatArray:
    """Carry the last known close over missing ones (column-wise), vectorized."""
    known = ~np.isnan(closes)
    last = np.where(known, np.arange(closes.shape[0])[:, None], 0)
    np.maximum.accumulate(last, axis=0, out=last)
    return np.take_along_axis(closes, last, axis=0)


def value_history_from_candles(
    transactions: Sequence[Transaction],
    *,
    base_currency: str,
    candles: dict[str, Any],
    fallback_timestamps: IntArray,
) -> ValueHistory:
    """Compute a ledger's NAV from per-symbol candle series.

    Parameters
    ----------
    transactions : sequence of Transaction
        The ledger's transactions.
    base_currency : str
        The ledger's base currency.
    candles : dict of str to Candles
        Each traded coin's candles.
    fallback_timestamps : ndarray of int64 of shape (n_days,)
        The periods to use when there are no candles (a book that never held a coin).

    Returns
    -------
    ValueHistory
        On the union of the series' timestamps; a coin's close missing at a timestamp is
        carried forward, as in `value_history`.
    """
    symbols = sorted(candles)
    series = [candles[symbol] for symbol in symbols]
    stamps = (
        np.unique(np.concatenate([s.timestamps for s in series]))
        if series
        else np.empty(0, np.int64)
    )
    if stamps.size == 0:
        stamps = fallback_timestamps
    closes = np.full((stamps.size, len(symbols)), np.nan)
    for column, found in enumerate(series):
        closes[np.searchsorted(stamps, found.timestamps), column] = found.close
    return value_history(
        transactions,
        base_currency=base_currency,
        assets=symbols,
        timestamps=stamps,
        closes=closes,
    )


def nav_history(
    transactions: Sequence[Transaction],
    *,
    base_currency: str,
    candles: dict[str, Any],
    interval: Interval,
    now: datetime,
) -> ValueHistory:
    """Value the book at each `interval` close, from its first transaction on.

    The one value history of a portfolio: its returns, performance and the risk limits'
    drawdowns all read it.

    Parameters
    ----------
    transactions : sequence of Transaction
        The portfolio's ledger; must not be empty.
    base_currency : str
        The currency of cash and of the values.
    candles : dict of str to Candles
        Each priced asset's candles of `interval` from `history_start` on (see
        `priced_assets`); missing closes are carried forward.
    interval : Interval
        The candles' interval.
    now : datetime
        The time the history runs up to when no coin has candles (cash only).

    Returns
    -------
    ValueHistory
        Arrays of shape (n_closes,): the union of the candles' open times, or each
        `interval` from `history_start` to `now` when there are none.
    """
    start = history_start(transactions, interval)
    now_ms = int(now.timestamp() * 1000)
    last = int(interval.floor(np.asarray([now_ms], np.int64))[0])
    return value_history_from_candles(
        transactions,
        base_currency=base_currency,
        candles=candles,
        fallback_timestamps=np.arange(start, last + 1, interval.milliseconds, dtype=np.int64),
    )
