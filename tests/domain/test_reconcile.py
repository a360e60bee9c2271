"""Account sync: the ledger replayed after a sync holds what the exchange says it holds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from coinql.domain.errors import InvalidInput
from coinql.domain.ledger import CostBasis, LedgerState, Transaction, TransactionKind, replay
from coinql.domain.reconcile import (
    OPENING,
    UNEXPLAINED,
    ExchangeTrade,
    plain,
    reconcile,
)

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
PRICES = {"BTC": D(40000), "ETH": D(2000)}


def trade(
    id: str,
    side: str,
    amount: str,
    price: str,
    *,
    fee: str = "0",
    fee_currency: str = "USDT",
    base: str = "BTC",
    quote: str = "USDT",
    minutes: int = 1,
) -> ExchangeTrade:
    return ExchangeTrade(
        id,
        base,
        quote,
        side,
        D(amount),
        D(price),
        D(fee),
        fee_currency,
        T0 + timedelta(minutes=minutes),
    )


def holdings(state: LedgerState) -> dict[str, Decimal]:
    held = {asset: h.quantity for asset, h in state.holdings.items() if h.quantity}
    return {**held, "USDT": state.cash} if state.cash else held


def replayed(transactions: list[Transaction]) -> LedgerState:
    return replay(transactions, base_currency="USDT", method=CostBasis.FIFO)


def test_a_first_sync_opens_the_balances_before_the_trades() -> None:
    trades = [
        trade("t1", "buy", "0.5", "40000", fee="20", minutes=1),
        trade("t2", "sell", "0.2", "41000", fee="8.2", minutes=2),
    ]
    current = {"USDT": D("30000") - D(20000) - D(20) + D(8200) - D("8.2"), "BTC": D("0.3") + D(1)}
    result = reconcile(
        trades=trades,
        booked=(),
        previous=None,
        current=current,
        cash="USDT",
        prices=PRICES,
        now=T0 + timedelta(hours=1),
    )
    notes = [booking.note for booking in result.bookings]
    assert notes == [OPENING, OPENING, "exchange trade t1", "exchange trade t2"]
    opening = [b.transaction for b in result.bookings[:2]]
    assert opening[0] == Transaction(
        TransactionKind.DEPOSIT,
        "USDT",
        D(30000),
        T0 + timedelta(minutes=1) - timedelta(milliseconds=1),
    )
    assert opening[1].kind is TransactionKind.TRANSFER_IN and opening[1].quantity == D(1)
    assert opening[1].price == PRICES["BTC"]
    assert [b.trade_id for b in result.bookings[2:]] == ["t1", "t2"]
    assert holdings(replayed([b.transaction for b in result.bookings])) == current


def test_a_later_sync_books_only_new_trades_and_labels_the_rest() -> None:
    previous = {"USDT": D(10000), "BTC": D(1)}
    trades = [
        trade("t1", "buy", "0.1", "40000", minutes=1),  # booked last time
        trade("t2", "buy", "0.1", "40000", fee="4", minutes=5),
    ]
    # t2, then a deposit of 500 USDT and a withdrawal of 0.25 BTC the trades do not explain.
    current = {"USDT": D(10000) - D(4000) - D(4) + D(500), "BTC": D("0.85")}
    now = T0 + timedelta(hours=1)
    result = reconcile(
        trades=trades,
        booked={"t1"},
        previous=previous,
        current=current,
        cash="USDT",
        prices=PRICES,
        now=now,
    )
    kinds = [(b.transaction.kind, b.note) for b in result.bookings]
    assert kinds == [
        (TransactionKind.DEPOSIT, UNEXPLAINED),
        (TransactionKind.BUY, "exchange trade t2"),
        (TransactionKind.TRANSFER_OUT, UNEXPLAINED),
    ]
    deposit, buy, withdrawal = (b.transaction for b in result.bookings)
    assert deposit.quantity == D(500) and deposit.time < buy.time
    assert (buy.quantity, buy.fee) == (D("0.1"), D(4))
    assert withdrawal.quantity == D("0.25") and withdrawal.time == now


def test_repeating_a_sync_books_nothing_twice() -> None:
    trades = [trade("t1", "buy", "1", "100", minutes=1), trade("t1", "buy", "1", "100", minutes=1)]
    current = {"USDT": D(900), "BTC": D(1)}
    first = reconcile(
        trades=trades,
        booked=(),
        previous=None,
        current={"USDT": D(900), "BTC": D(1)},
        cash="USDT",
        prices=PRICES,
        now=T0,
    )
    assert [b.trade_id for b in first.bookings if b.trade_id] == ["t1"]
    again = reconcile(
        trades=trades,
        booked={"t1"},
        previous=current,
        current=current,
        cash="USDT",
        prices=PRICES,
        now=T0,
    )
    assert again.bookings == [] and again.skipped == []


def test_a_fee_in_the_coin_moves_cash_and_coin_as_the_exchange_did() -> None:
    trades = [trade("t1", "buy", "1", "100", fee="0.001", fee_currency="BTC", minutes=1)]
    current = {"USDT": D(900), "BTC": D("0.999")}
    result = reconcile(
        trades=trades, booked=(), previous=None, current=current, cash="USDT", prices=PRICES, now=T0
    )
    buy = result.bookings[-1].transaction
    assert (buy.quantity, buy.fee) == (D("0.999"), D("0.1"))
    assert holdings(replayed([b.transaction for b in result.bookings])) == current
    sell = reconcile(
        trades=[trade("t2", "sell", "0.5", "100", fee="0.001", fee_currency="BTC", minutes=9)],
        booked={"t1"},
        previous=current,
        current={"USDT": D(950), "BTC": D("0.498")},
        cash="USDT",
        prices=PRICES,
        now=T0 + timedelta(hours=1),
    )
    [booking] = sell.bookings
    assert (booking.transaction.quantity, booking.transaction.fee) == (D("0.501"), D("0.1"))


def test_trades_in_another_quote_are_skipped_and_show_as_balance_changes() -> None:
    eth_btc = trade("t1", "buy", "1", "0.05", base="ETH", quote="BTC", minutes=1)
    result = reconcile(
        trades=[eth_btc],
        booked=(),
        previous={"BTC": D(1)},
        current={"BTC": D("0.95"), "ETH": D(1)},
        cash="USDT",
        prices=PRICES,
        now=T0 + timedelta(hours=1),
    )
    assert result.skipped == [eth_btc]
    moves = {
        (b.transaction.kind, b.transaction.asset, b.transaction.quantity) for b in result.bookings
    }
    assert moves == {
        (TransactionKind.TRANSFER_IN, "ETH", D(1)),
        (TransactionKind.TRANSFER_OUT, "BTC", D("0.05")),
    }


def test_dust_is_ignored_and_an_unpriced_arrival_names_prices() -> None:
    quiet = reconcile(
        trades=[],
        booked=(),
        previous={"USDT": D(100)},
        current={"USDT": D("100.00000000001")},
        cash="USDT",
        prices=PRICES,
        now=T0,
    )
    assert quiet.bookings == []
    with pytest.raises(InvalidInput) as raised:
        reconcile(
            trades=[],
            booked=(),
            previous={},
            current={"DOGE": D(5)},
            cash="USDT",
            prices=PRICES,
            now=T0,
        )
    assert raised.value.field == "prices"


def test_random_accounts_reconcile_to_their_balances() -> None:
    rng = random.Random(7)
    for _ in range(50):
        cash, btc = D(rng.randint(1000, 5000)), D(rng.randint(0, 3))
        previous = {"USDT": cash, "BTC": btc}
        ledger = reconcile(
            trades=[],
            booked=(),
            previous=None,
            current=previous,
            cash="USDT",
            prices=PRICES,
            now=T0,
        )
        trades = []
        for n in range(rng.randint(0, 6)):
            price = D(rng.randint(90, 110))
            amount = D(rng.randint(1, 5)) / 10
            if rng.random() < 0.5 and btc >= amount:
                btc -= amount
                cash += amount * price - D(1)
                trades.append(
                    trade(f"s{n}", "sell", str(amount), str(price), fee="1", minutes=n + 1)
                )
            elif cash >= amount * price + 1:
                btc += amount
                cash -= amount * price + D(1)
                trades.append(
                    trade(f"b{n}", "buy", str(amount), str(price), fee="1", minutes=n + 1)
                )
        cash += D(rng.randint(-500, 500))
        current = {"USDT": cash, "BTC": btc}
        result = reconcile(
            trades=trades,
            booked=(),
            previous=previous,
            current=current,
            cash="USDT",
            prices=PRICES,
            now=T0 + timedelta(days=1),
        )
        transactions = [b.transaction for b in ledger.bookings + result.bookings]
        expected = {c: v for c, v in current.items() if v}
        assert holdings(replayed(transactions)) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("500.00", "500"), ("1E+4", "10000"), ("0.0", "0"), ("0.010", "0.01"), ("-2.50", "-2.5")],
)
def test_plain_drops_trailing_zeros_without_an_exponent(value: str, shown: str) -> None:
    assert str(plain(D(value))) == shown
