"""A portfolio ledger in exact decimals: positions, cost basis (FIFO or average) and PnL.

Rules:
- DEPOSIT / WITHDRAW move cash in the base currency; FEE is a standalone cash fee, a realized
  loss.
- BUY pays quantity x price + fee from cash; the fee is part of the lot's cost.
- SELL receives quantity x price - fee; realized PnL = those net proceeds - the cost of the
  units sold (FIFO: oldest lots first; AVERAGE: at the running average cost).
- TRANSFER_IN adds units at a cost basis of `price` per unit (no cash moves); TRANSFER_OUT
  removes units at their cost (no PnL).
- A transaction that would sell or move out more than is held, or take cash below zero, is
  refused, naming the transaction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import numpy as np

from coinql.domain.bounds import Bounds
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray, IntArray

ZERO = Decimal(0)
CENT = Decimal("0.01")
# What a transaction may say: amounts up to 10^15 (a quadrillion units of a coin or of the
# base currency) with up to 18 places (a wei). Products and sums of a batch of these stay far
# inside the decimal context, so the ledger's arithmetic never overflows.
MAX_AMOUNT = 10**15
AMOUNT_PLACES = 18
POSITIVE_AMOUNT = Bounds(0, MAX_AMOUNT, low_open=True, places=AMOUNT_PLACES)  # quantity, price
AMOUNT = Bounds(0, MAX_AMOUNT, places=AMOUNT_PLACES)  # a fee


class TransactionKind(StrEnum):
    """What a transaction does; the module's docstring gives each kind's rule."""

    DEPOSIT = "DEPOSIT"
    WITHDRAW = "WITHDRAW"
    BUY = "BUY"
    SELL = "SELL"
    FEE = "FEE"
    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"


class CostBasis(StrEnum):
    """How the cost of units sold is taken: oldest lots first, or at the average cost."""

    FIFO = "FIFO"
    AVERAGE = "AVERAGE"


CASH_KINDS = {TransactionKind.DEPOSIT, TransactionKind.WITHDRAW, TransactionKind.FEE}
PRICED_KINDS = {TransactionKind.BUY, TransactionKind.SELL, TransactionKind.TRANSFER_IN}


@dataclass(frozen=True, slots=True)
class Transaction:
    """One ledger transaction, in exact decimals.

    Parameters
    ----------
    kind : TransactionKind
        What it does.
    asset : str
        The coin, or the base currency for DEPOSIT, WITHDRAW and FEE.
    quantity : Decimal
        Units of `asset` (cash for the cash kinds), positive.
    time : datetime
        When it happened, timezone-aware.
    price : Decimal or None, default None
        Price per unit in the base currency; required for BUY, SELL and TRANSFER_IN.
    fee : Decimal, default 0
        A fee paid in the base currency with a BUY or SELL.
    """

    kind: TransactionKind
    asset: str
    quantity: Decimal
    time: datetime
    price: Decimal | None = None
    fee: Decimal = ZERO


@dataclass(slots=True)
class Lot:
    """Units bought (or transferred in) together, at one unit cost."""

    quantity: Decimal
    unit_cost: Decimal  # including the buy fee spread over the lot's units


@dataclass(slots=True)
class Holding:
    """One asset's lots, oldest first, with the PnL realized and fees paid on it."""

    asset: str
    lots: deque[Lot] = field(default_factory=deque)
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO

    @property
    def quantity(self) -> Decimal:
        """Units held, the sum of the lots."""
        return sum((lot.quantity for lot in self.lots), ZERO)

    @property
    def cost_basis(self) -> Decimal:
        """Cost of the units held, buy fees included."""
        return sum((lot.quantity * lot.unit_cost for lot in self.lots), ZERO)

    @property
    def average_cost(self) -> Decimal | None:
        """Cost basis per unit held; None when nothing is held."""
        quantity = self.quantity
        return self.cost_basis / quantity if quantity else None


@dataclass(slots=True)
class LedgerState:
    """A ledger's balances after some transactions, changed in place by `apply`.

    Parameters
    ----------
    base_currency : str
        The currency cash is held and prices are quoted in.
    method : CostBasis
        FIFO or AVERAGE.
    cash : Decimal, default 0
        Cash held, never negative.
    holdings : dict of str to Holding
        The coins, by symbol (a coin sold out keeps its holding and its realized PnL).
    fees_paid : Decimal, default 0
        All fees: with trades and standalone.
    standalone_fees : Decimal, default 0
        FEE transactions only.
    net_deposits : Decimal, default 0
        Deposits minus withdrawals.
    """

    base_currency: str
    method: CostBasis
    cash: Decimal = ZERO
    holdings: dict[str, Holding] = field(default_factory=dict)
    fees_paid: Decimal = ZERO
    standalone_fees: Decimal = ZERO
    net_deposits: Decimal = ZERO

    @property
    def realized_pnl(self) -> Decimal:
        """PnL realized by sales across holdings, less the standalone fees."""
        return sum((h.realized_pnl for h in self.holdings.values()), ZERO) - self.standalone_fees


class LedgerError(InvalidInput):
    """A transaction the ledger refuses.

    `index` is its position in the submitted batch (None when not known yet), `field_name`
    the offending field and `detail` what is wrong with it; the field shown to the client is
    `transactions[index].field_name`.
    """

    def __init__(self, index: int | None, field_name: str, detail: str) -> None:
        where = f"transactions[{index}].{field_name}" if index is not None else field_name
        super().__init__(where, f"{where} {detail}")
        self.index = index
        self.field_name = field_name
        self.detail = detail

    def at(self, index: int) -> LedgerError:
        """Place the same error at a position of the batch.

        Parameters
        ----------
        index : int
            The transaction's position in the submitted batch.

        Returns
        -------
        LedgerError
            A new error naming `transactions[index]`.
        """
        return LedgerError(index, self.field_name, self.detail)


def validate(transaction: Transaction, *, base_currency: str, now: datetime) -> None:
    """Check what a transaction can be checked for without the ledger.

    Parameters
    ----------
    transaction : Transaction
        The transaction.
    base_currency : str
        The ledger's base currency.
    now : datetime
        The present; a transaction may not be dated later.

    Raises
    ------
    LedgerError
        With index None: a time in the future, a quantity not positive, a negative fee, a
        cash kind on a coin or a coin kind on the base currency, a missing or non-positive
        price where one is needed.
    """
    if transaction.time > now:
        raise LedgerError(None, "time", "is in the future")
    if transaction.quantity <= 0:
        raise LedgerError(None, "quantity", "must be positive")
    if transaction.fee < 0:
        raise LedgerError(None, "fee", "must not be negative")
    is_base = transaction.asset == base_currency
    if transaction.kind in CASH_KINDS and not is_base:
        raise LedgerError(
            None, "asset", f"{transaction.kind.value} moves cash: asset must be {base_currency}"
        )
    if transaction.kind not in CASH_KINDS and is_base:
        raise LedgerError(
            None, "asset", f"{transaction.kind.value} needs a coin, not the base currency"
        )
    if transaction.kind in PRICED_KINDS and (transaction.price is None or transaction.price <= 0):
        raise LedgerError(None, "price", f"{transaction.kind.value} needs a positive price")


def apply(state: LedgerState, transaction: Transaction) -> None:
    """Apply one transaction to the ledger, in place.

    Parameters
    ----------
    state : LedgerState
        The ledger, changed in place.
    transaction : Transaction
        A transaction that passed `validate`.

    Raises
    ------
    LedgerError
        With index None, if it cannot happen: selling or moving out more than is held,
        taking cash below zero. The state is then left as it was.
    """
    kind, quantity = transaction.kind, transaction.quantity
    if kind is TransactionKind.DEPOSIT:
        state.cash += quantity
        state.net_deposits += quantity
        return
    if kind in (TransactionKind.WITHDRAW, TransactionKind.FEE):
        if quantity > state.cash:
            raise LedgerError(None, "quantity", f"is more than the cash held ({state.cash})")
        state.cash -= quantity
        if kind is TransactionKind.WITHDRAW:
            state.net_deposits -= quantity
        else:
            state.standalone_fees += quantity
            state.fees_paid += quantity
        return
    holding = state.holdings.setdefault(transaction.asset, Holding(transaction.asset))
    price = transaction.price or ZERO
    fee = transaction.fee
    if kind is TransactionKind.BUY:
        cost = quantity * price + fee
        if cost > state.cash:
            raise LedgerError(
                None, "quantity", f"costs {cost}, more than the cash held ({state.cash})"
            )
        state.cash -= cost
        _add_lot(state, holding, Lot(quantity, cost / quantity))
        holding.fees += fee
        state.fees_paid += fee
    elif kind is TransactionKind.TRANSFER_IN:
        _add_lot(state, holding, Lot(quantity, price))
    else:  # SELL, TRANSFER_OUT
        held = holding.quantity
        if quantity > held:
            raise LedgerError(None, "quantity", f"is more than the {held} {transaction.asset} held")
        cost = _remove_units(state, holding, quantity)
        if kind is TransactionKind.SELL:
            proceeds = quantity * price - fee
            if proceeds < 0 and -proceeds > state.cash:
                raise LedgerError(None, "fee", "exceeds the proceeds and the cash held")
            state.cash += proceeds
            holding.realized_pnl += proceeds - cost
            holding.fees += fee
            state.fees_paid += fee


def _add_lot(state: LedgerState, holding: Holding, lot: Lot) -> None:
    if state.method is CostBasis.AVERAGE and holding.lots:
        quantity = holding.quantity + lot.quantity
        cost = holding.cost_basis + lot.quantity * lot.unit_cost
        holding.lots = deque([Lot(quantity, cost / quantity)])
    else:
        holding.lots.append(lot)


def _remove_units(state: LedgerState, holding: Holding, quantity: Decimal) -> Decimal:
    """Take units out of the lots (oldest first; one lot under AVERAGE); return their cost."""
    remaining, cost = quantity, ZERO
    while remaining > 0:
        lot = holding.lots[0]
        taken = min(lot.quantity, remaining)
        cost += taken * lot.unit_cost
        lot.quantity -= taken
        remaining -= taken
        if lot.quantity == 0:
            holding.lots.popleft()
    return cost


def replay(
    transactions: Sequence[Transaction],
    *,
    base_currency: str,
    method: CostBasis,
    first_new: int | None = None,
) -> LedgerState:
    """Replay transactions in time order into a new ledger.

    Parameters
    ----------
    transactions : sequence of Transaction
        The recorded transactions, then (from `first_new`) a batch being added; replayed in
        time order, ties keeping their given order.
    base_currency : str
        The ledger's base currency.
    method : CostBasis
        FIFO or AVERAGE.
    first_new : int or None, default None
        The index of the batch's first transaction; an error on one of those names its
        position in the batch.

    Returns
    -------
    LedgerState
        The ledger after all of them.

    Raises
    ------
    LedgerError
        At the batch position of a new transaction that cannot happen, or (index None,
        field `transactions`) naming a recorded transaction that a new one, dated before it,
        makes invalid.
    """
    state = LedgerState(base_currency=base_currency, method=method)
    order = sorted(range(len(transactions)), key=lambda i: transactions[i].time)
    for i in order:
        try:
            apply(state, transactions[i])
        except LedgerError as error:
            if first_new is not None and i >= first_new:
                raise error.at(i - first_new) from None
            # An earlier transaction no longer balances because a new one was dated before it.
            raise LedgerError(
                None,
                "transactions",
                f"would make the recorded {transactions[i].kind.value} at"
                f" {transactions[i].time.isoformat()} invalid: its {error.field_name}"
                f" {error.detail}",
            ) from None
    return state


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
