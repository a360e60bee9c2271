"""The ledger in exact decimals: a hand-worked FIFO example to the cent, and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import numpy as np
import pytest

from coinql.domain.candles import Candles
from coinql.domain.ledger import (
    CostBasis,
    LedgerError,
    Transaction,
    TransactionKind,
    replay,
    validate,
    value,
    value_history,
    value_history_from_candles,
)

DAY_MS = 86_400_000
START = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)


def tx(kind: str, asset: str, quantity: str, day: int, price: str | None = None, fee: str = "0"):  # type: ignore[no-untyped-def]
    return Transaction(
        TransactionKind(kind),
        asset,
        D(quantity),
        datetime(2020, 1, day, 12, tzinfo=UTC),
        D(price) if price else None,
        D(fee),
    )


# Worked by hand:
#   deposit 10,000.00
#   buy 0.5 BTC @ 7,200 + fee 3.60 -> lot A: 0.5 @ 7,207.20 (cost 3,603.60), cash 6,396.40
#   buy 0.3 BTC @ 8,000 + fee 2.40 -> lot B: 0.3 @ 8,008.00 (cost 2,402.40), cash 3,994.00
#   sell 0.6 BTC @ 9,000 - fee 5.40 -> proceeds 5,394.60
#       FIFO cost: 0.5 of A (3,603.60) + 0.1 of B (800.80) = 4,404.40 -> realized 990.20
#       cash 9,388.60; left 0.2 BTC of lot B at 8,008.00 (cost 1,601.60)
#   at 10,000: market value 2,000.00, unrealized 398.40, value 11,388.60
WORKED = [
    tx("DEPOSIT", "USDT", "10000", 1),
    tx("BUY", "BTC", "0.5", 2, "7200", "3.6"),
    tx("BUY", "BTC", "0.3", 3, "8000", "2.4"),
    tx("SELL", "BTC", "0.6", 10, "9000", "5.4"),
]


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


def test_value_history_excludes_flows_from_returns() -> None:
    start = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)
    stamps = start + np.arange(6) * DAY_MS
    closes = np.array([[100.0], [110.0], [121.0], [121.0], [108.9], [np.nan]])
    history = value_history(
        [
            tx("DEPOSIT", "USDT", "1000", 1),
            tx("BUY", "BTC", "10", 1, "100"),
            tx("DEPOSIT", "USDT", "5000", 4),  # new money is not performance
        ],
        base_currency="USDT",
        assets=["BTC"],
        timestamps=stamps,
        closes=closes,
    )
    np.testing.assert_allclose(history.values, [1000, 1100, 1210, 6210, 6089, 6089])
    np.testing.assert_allclose(history.returns[1:], [0.1, 0.1, 0.0, -121 / 6210, 0.0])
    assert np.isnan(history.returns[0])


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


def test_a_position_without_a_price_has_no_value_or_weight() -> None:
    state = replay(WORKED, base_currency="USDT", method=CostBasis.FIFO)
    found = value(state, {})
    (btc,) = found.positions
    assert btc.last_price is None and btc.market_value is None and btc.unrealized_pnl is None
    assert found.value == found.cash == D("9388.60") and found.unrealized_pnl == 0
    assert found.weight(btc) is None
    empty = value(replay([], base_currency="USDT", method=CostBasis.FIFO), {})
    assert empty.value == 0 and empty.positions == []


def test_value_history_of_every_kind_worked_by_hand() -> None:
    stamps = START + np.arange(5) * DAY_MS
    history = value_history(
        [
            tx("DEPOSIT", "USDT", "1000", 1),  # cash 1,000; flow +1,000
            tx("BUY", "BTC", "2", 2, "100", "1"),  # cash 799; 2 BTC
            tx("TRANSFER_IN", "BTC", "1", 3, "120"),  # 3 BTC; flow +120
            tx("FEE", "USDT", "9", 3),  # cash 790
            tx("SELL", "BTC", "1", 4, "120"),  # cash 910; 2 BTC
            tx("WITHDRAW", "USDT", "100", 4),  # cash 810; flow -100
            tx("TRANSFER_OUT", "BTC", "1", 5, "150"),  # 1 BTC; flow -150
        ],
        base_currency="USDT",
        assets=["BTC"],
        timestamps=stamps,
        closes=np.array([[100.0], [100.0], [120.0], [120.0], [150.0]]),
    )
    np.testing.assert_allclose(history.values, [1000, 999, 1150, 1050, 960])
    np.testing.assert_allclose(history.flows, [1000, 0, 120, -100, -150])
    np.testing.assert_allclose(
        history.returns[1:], [999 / 1000 - 1, 1030 / 999 - 1, 0.0, 1110 / 1050 - 1]
    )
    assert np.isnan(history.returns[0])


def test_value_history_from_candles_uses_the_union_of_their_times() -> None:
    def candles(days: list[int], closes: list[float]) -> Candles:
        prices = np.asarray(closes)
        return Candles.from_columns(
            np.asarray(days) * DAY_MS + START, prices, prices, prices, prices, None, None
        )

    book = [
        tx("DEPOSIT", "USDT", "1000", 1),
        tx("BUY", "BTC", "1", 1, "100"),
        tx("BUY", "ETH", "10", 1, "10"),
    ]
    history = value_history_from_candles(
        book,
        base_currency="USDT",
        candles={"BTC": candles([0, 2], [100.0, 130.0]), "ETH": candles([1, 2], [12.0, 11.0])},
        fallback_timestamps=np.empty(0, np.int64),
    )
    np.testing.assert_array_equal(history.timestamps, START + np.arange(3) * DAY_MS)
    # Day 1: ETH has no close yet (counts for nothing); day 2: BTC's close carried forward.
    np.testing.assert_allclose(history.values, [800 + 100, 800 + 100 + 120, 800 + 130 + 110])
    fallback = START + np.arange(4) * DAY_MS
    cash_only = value_history_from_candles(
        book[:1], base_currency="USDT", candles={}, fallback_timestamps=fallback
    )
    np.testing.assert_array_equal(cash_only.timestamps, fallback)
    np.testing.assert_allclose(cash_only.values, [1000] * 4)
