"""Account sync: an exchange account's trades and balances become ledger transactions.

`reconcile` takes what an exchange reports (its trades since the last sync and its balances
now) and what the portfolio already holds (the exchange trade ids booked before and the
balances of the last snapshot), and returns the transactions that make the ledger agree:

- Every trade not booked before becomes a BUY or SELL at its price; an exchange trade id is
  never booked twice, so a sync can be repeated or overlap the last one. Only trades quoted
  in the account's cash currency are booked (the portfolio's base currency: a USDT account's
  cash is USDT); others are returned in `skipped`, and their effect on balances is then
  booked as unexplained changes (below).
- A fee charged in the cash currency is the trade's fee. A fee charged in the coin traded
  (as some exchanges do on buys) is booked so that cash and coin both move as the exchange
  moved them: a BUY of the quantity received, its fee the fee's value at the trade price.
  A fee in a third currency is not booked with the trade; it appears as an unexplained change.
- What the trades do not explain (the balances now minus those of the last snapshot minus
  the new trades' effect) becomes DEPOSIT / WITHDRAW of cash and TRANSFER_IN / TRANSFER_OUT of
  coins, each labelled "unexplained balance change", coins moved in at the price given for
  them. What came in is dated just before the first new trade (the trades may have spent it),
  what went out at the sync. On a first sync (no snapshot) what came in is labelled "opening
  balance": the account's holdings before the trades.

Changes smaller than `dust` are left alone: exchanges round what they report.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from coinql.domain.errors import InvalidInput
from coinql.domain.ledger import Transaction, TransactionKind

ZERO = Decimal(0)
DUST = Decimal("1e-10")
UNEXPLAINED = "unexplained balance change"
OPENING = "opening balance"


@dataclass(frozen=True, slots=True)
class DerivativePosition:
    """An open futures or perpetual swap position, as an exchange reports it.

    The fields are ccxt's unified position's, None where the exchange does not say. Kept in
    account snapshots as is: the ledger books spot holdings only.
    """

    symbol: str
    side: str  # "long" or "short"
    contracts: Decimal
    contract_size: Decimal | None
    entry_price: Decimal | None
    mark_price: Decimal | None
    notional: Decimal | None
    unrealized_pnl: Decimal | None
    leverage: Decimal | None
    liquidation_price: Decimal | None

    def to_json(self) -> dict[str, Any]:
        """Return the position with its amounts as decimal strings (for a JSON column)."""
        return {
            "symbol": self.symbol,
            "side": self.side,
            **{
                name: None if getattr(self, name) is None else str(getattr(self, name))
                for name in POSITION_AMOUNTS
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DerivativePosition:
        """Return the position `to_json` gave."""
        amounts = {
            name: None if data.get(name) is None else Decimal(str(data[name]))
            for name in POSITION_AMOUNTS
        }
        contracts = amounts.pop("contracts") or Decimal(0)
        return cls(str(data["symbol"]), str(data["side"]), contracts, **amounts)


# DerivativePosition's amounts, each under its ccxt name.
POSITION_AMOUNTS = {
    "contracts": "contracts",
    "contract_size": "contractSize",
    "entry_price": "entryPrice",
    "mark_price": "markPrice",
    "notional": "notional",
    "unrealized_pnl": "unrealizedPnl",
    "leverage": "leverage",
    "liquidation_price": "liquidationPrice",
}


@dataclass(frozen=True, slots=True)
class ExchangeTrade:
    """One trade as an exchange reports it (ccxt's `fetch_my_trades`), in decimals.

    Parameters
    ----------
    id : str
        The exchange's trade id.
    base, quote : str
        The currencies of the market, e.g. "BTC" and "USDT" for BTC/USDT.
    side : str
        "buy" or "sell".
    amount, price : Decimal
        Units of `base` and the price in `quote`, positive.
    fee : Decimal
        The fee's amount, in `fee_currency`.
    fee_currency : str
    time : datetime
        Timezone-aware.
    """

    id: str
    base: str
    quote: str
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Booking:
    """A transaction to add, with its note and the exchange trade it books (if any)."""

    transaction: Transaction
    note: str
    trade_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a sync adds: bookings in ledger order, and the trades it could not book."""

    bookings: list[Booking] = field(default_factory=list)
    skipped: list[ExchangeTrade] = field(default_factory=list)


def reconcile(
    *,
    trades: Iterable[ExchangeTrade],
    booked: Collection[str],
    previous: Mapping[str, Decimal] | None,
    current: Mapping[str, Decimal],
    cash: str,
    prices: Mapping[str, Decimal],
    now: datetime,
    dust: Decimal = DUST,
) -> Reconciliation:
    """Return the bookings that bring a ledger in line with an exchange account.

    Parameters
    ----------
    trades : iterable of ExchangeTrade
        The exchange's trades since the last sync; may repeat booked ones.
    booked : collection of str
        Exchange trade ids the ledger already holds.
    previous : mapping of currency to Decimal, or None
        Total balances of the last snapshot; None on the first sync.
    current : mapping of currency to Decimal
        Total balances now.
    cash : str
        The currency booked as cash (the portfolio's base currency).
    prices : mapping of currency to Decimal
        Prices in `cash` for coins moved in without a trade.
    now : datetime
        When the balances were taken; unexplained changes are dated then.
    dust : Decimal, default 1e-10
        Changes at most this large are ignored.

    Returns
    -------
    Reconciliation

    Raises
    ------
    InvalidInput
        ("prices") When a coin moves in without a trade and has no price.
    """
    seen = set(booked)
    new: list[ExchangeTrade] = []
    skipped: list[ExchangeTrade] = []
    for trade in sorted(trades, key=lambda t: (t.time, t.id)):
        if trade.id in seen:
            continue
        seen.add(trade.id)
        (new if trade.quote == cash else skipped).append(trade)
    trade_bookings = [_book(trade, cash) for trade in new]
    effect = _effect((booking.transaction for booking in trade_bookings), cash)
    expected = _difference(previous or {}, {c: -v for c, v in effect.items()})
    unexplained = _difference(current, expected)
    # Money and coins that came in were there before the trades that may have used them;
    # what went out left after them.
    before = new[0].time - timedelta(milliseconds=1) if new else now
    inflow = OPENING if previous is None else UNEXPLAINED
    arrived = {c: v for c, v in unexplained.items() if v > 0}
    left = {c: v for c, v in unexplained.items() if v < 0}
    return Reconciliation(
        _moves(arrived, cash, prices, before, inflow, dust)
        + trade_bookings
        + _moves(left, cash, prices, now, UNEXPLAINED, dust),
        skipped,
    )


def _difference(left: Mapping[str, Decimal], right: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Return left - right per currency, a missing one counting as zero."""
    return {c: left.get(c, ZERO) - right.get(c, ZERO) for c in sorted(set(left) | set(right))}


def plain(value: Decimal) -> Decimal:
    """Return `value` without trailing zeros and without an exponent: 500.00 -> 500, 1E+4 -> 10000.

    Exchanges report floats ("10000.0") and differences of them carry their places; the
    ledger shows amounts as written.
    """
    trimmed = value.normalize()
    return trimmed.quantize(Decimal(1)) if trimmed.as_tuple().exponent > 0 else trimmed  # type: ignore[operator]


def _book(trade: ExchangeTrade, cash: str) -> Booking:
    kind = TransactionKind.BUY if trade.side == "buy" else TransactionKind.SELL
    quantity, fee = trade.amount, ZERO
    if trade.fee_currency == cash:
        fee = trade.fee
    elif trade.fee_currency == trade.base:
        # The coin pays the fee: the ledger moves the same cash and the same coin.
        quantity = (
            trade.amount - trade.fee if kind is TransactionKind.BUY else trade.amount + trade.fee
        )
        fee = trade.fee * trade.price
    transaction = Transaction(kind, trade.base, quantity, trade.time, trade.price, fee)
    return Booking(transaction, f"exchange trade {trade.id}", trade.id)


def _effect(transactions: Iterable[Transaction], cash: str) -> dict[str, Decimal]:
    """Return what the trades' transactions do to the account's balances, per currency."""
    effect: dict[str, Decimal] = {}
    for t in transactions:
        assert t.price is not None
        sign = 1 if t.kind is TransactionKind.BUY else -1
        effect[t.asset] = effect.get(t.asset, ZERO) + sign * t.quantity
        effect[cash] = effect.get(cash, ZERO) - sign * t.quantity * t.price - t.fee
    return effect


def _moves(
    changes: Mapping[str, Decimal],
    cash: str,
    prices: Mapping[str, Decimal],
    time: datetime,
    note: str,
    dust: Decimal,
) -> list[Booking]:
    bookings = []
    for currency in sorted(changes, key=lambda c: (c != cash, c)):
        change = plain(changes[currency])
        if abs(change) <= dust:
            continue
        if currency == cash:
            kind = TransactionKind.DEPOSIT if change > 0 else TransactionKind.WITHDRAW
            transaction = Transaction(kind, cash, abs(change), time)
        elif change > 0:
            price = prices.get(currency)
            if price is None:
                raise InvalidInput(
                    "prices", f"{currency} moved in without a trade and has no price"
                )
            transaction = Transaction(TransactionKind.TRANSFER_IN, currency, change, time, price)
        else:
            transaction = Transaction(TransactionKind.TRANSFER_OUT, currency, -change, time)
        bookings.append(Booking(transaction, note))
    return bookings
