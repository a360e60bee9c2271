"""Valuing a ledger: positions at prices, and the value history's flows and returns by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import numpy as np

from coinql.domain.candles import Candles
from coinql.domain.ledger import CostBasis, replay
from coinql.domain.valuation import value, value_history, value_history_from_candles
from tests.domain.ledgers import WORKED, tx

DAY_MS = 86_400_000
START = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)


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
