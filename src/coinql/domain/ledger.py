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

Valuing the replayed ledger at prices, now or over time, lives in `coinql.domain.valuation`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from coinql.domain.bounds import Bounds
from coinql.domain.errors import InvalidInput

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
