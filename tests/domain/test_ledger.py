"""The ledger in exact decimals: a hand-worked FIFO example to the cent, and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from coinql.domain.ledger import (
    CostBasis,
    LedgerError,
    Transaction,
    TransactionKind,
    replay,
    validate,
)
from coinql.domain.valuation import value
from tests.domain.ledgers import WORKED, tx


def test_hand_worked_fifo_example_to_the_cent() -> None:
    state = replay(WORKED, base_currency="USDT", method=CostBasis.FIFO)
    found = value(state, {"BTC": D("10000")})
    (btc,) = found.positions
    assert found.cash == D("9388.60")
    assert btc.quantity == D("0.2")
    assert btc.average_cost == D("8008")
    assert btc.cost_basis == D("1601.60")
    assert btc.realized_pnl == D("990.20")
    assert btc.fees == D("11.4")
    assert btc.market_value == D("2000.0")
    assert btc.unrealized_pnl == D("398.40")
    assert found.value == D("11388.60")
    assert found.realized_pnl == D("990.20")
    assert found.fees_paid == D("11.4")
    assert found.weight(btc) == pytest.approx(2000 / 11388.6)


def test_average_cost_basis() -> None:
    state = replay(WORKED, base_currency="USDT", method=CostBasis.AVERAGE)
    (btc,) = value(state, {"BTC": D("10000")}).positions
    average = (D("3603.6") + D("2402.4")) / D("0.8")  # 7,507.50
    assert btc.average_cost == average
    assert btc.realized_pnl == D("5394.6") - D("0.6") * average  # 890.10
    assert btc.realized_pnl == D("890.10")


def test_standalone_fee_and_transfers() -> None:
    state = replay(
        [
            tx("DEPOSIT", "USDT", "100", 1),
            tx("FEE", "USDT", "2.5", 2),
            tx("TRANSFER_IN", "ETH", "2", 3, "150"),
            tx("TRANSFER_OUT", "ETH", "0.5", 4, "150"),
            tx("WITHDRAW", "USDT", "50", 5),
        ],
        base_currency="USDT",
        method=CostBasis.FIFO,
    )
    found = value(state, {"ETH": D("200")})
    assert found.cash == D("47.5")
    assert found.realized_pnl == D("-2.5")
    assert found.net_deposits == D("50")
    (eth,) = found.positions
    assert eth.quantity == D("1.5") and eth.cost_basis == D("225")
    assert eth.unrealized_pnl == D("75")


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (
            [tx("SELL", "BTC", "1", 11, "9000")],
            "transactions[0].quantity is more than the 0.2 BTC held",
        ),
        (
            [tx("WITHDRAW", "USDT", "9388.61", 11)],
            "transactions[0].quantity is more than the cash held (9388.6)",
        ),
        (
            [tx("BUY", "ETH", "100", 11, "200")],
            "transactions[0].quantity costs 20000, more than the cash held (9388.6)",
        ),
        (
            [tx("DEPOSIT", "USDT", "1", 11), tx("SELL", "BTC", "0.3", 12, "9000")],
            "transactions[1].quantity is more than the 0.2 BTC held",
        ),
    ],
)
def test_refusals_name_the_transaction(batch: list[Transaction], message: str) -> None:
    with pytest.raises(LedgerError) as raised:
        replay([*WORKED, *batch], base_currency="USDT", method=CostBasis.FIFO, first_new=4)
    assert raised.value.message == message


def test_a_backdated_transaction_that_breaks_history_is_refused() -> None:
    early_withdrawal = tx("WITHDRAW", "USDT", "8000", 1)  # before the buys, leaving too little
    with pytest.raises(LedgerError) as raised:
        replay(
            [*WORKED, early_withdrawal], base_currency="USDT", method=CostBasis.FIFO, first_new=4
        )
    assert "would make the recorded BUY" in raised.value.message


NOW = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("transaction", "field", "detail"),
    [
        (tx("BUY", "BTC", "0", 1, "1"), "quantity", "must be positive"),
        (tx("BUY", "BTC", "-1", 1, "1"), "quantity", "must be positive"),
        (tx("BUY", "BTC", "1", 1, "0"), "price", "BUY needs a positive price"),
        (tx("BUY", "BTC", "1", 1), "price", "BUY needs a positive price"),
        (tx("BUY", "BTC", "1", 1, "1", "-1"), "fee", "must not be negative"),
        (tx("DEPOSIT", "BTC", "1", 1), "asset", "DEPOSIT moves cash: asset must be USDT"),
        (tx("SELL", "USDT", "1", 1, "1"), "asset", "SELL needs a coin, not the base currency"),
    ],
)
def test_validation(transaction: Transaction, field: str, detail: str) -> None:
    with pytest.raises(LedgerError) as raised:
        validate(transaction, base_currency="USDT", now=NOW)
    assert (raised.value.field_name, raised.value.detail) == (field, detail)


def test_future_time_is_refused() -> None:
    future = Transaction(TransactionKind.DEPOSIT, "USDT", D(1), datetime(2021, 1, 1, tzinfo=UTC))
    with pytest.raises(LedgerError, match="is in the future"):
        validate(future, base_currency="USDT", now=NOW)


def test_a_sale_whose_fee_exceeds_its_proceeds_and_the_cash_is_refused() -> None:
    book = [tx("TRANSFER_IN", "BTC", "1", 1, "100")]  # units, and no cash at all
    with pytest.raises(LedgerError) as raised:
        replay(
            [*book, tx("SELL", "BTC", "0.001", 2, "100", "5")],
            base_currency="USDT",
            method=CostBasis.FIFO,
            first_new=1,
        )
    assert raised.value.message == "transactions[0].fee exceeds the proceeds and the cash held"
    # With cash to cover it, the same sale goes through and realizes the loss.
    state = replay(
        [tx("DEPOSIT", "USDT", "10", 1), *book, tx("SELL", "BTC", "0.001", 2, "100", "5")],
        base_currency="USDT",
        method=CostBasis.FIFO,
    )
    assert state.cash == D("5.1")
    assert state.realized_pnl == D("0.1") - D("5") - D("0.1")
