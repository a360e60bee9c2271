"""Properties of the domain engines over generated inputs: the ledger's accounting identities,
candle aggregation and gap finding, and the backtest simulator's invariants."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import ledger
from coinql.domain.candles import Candles, Interval, aggregate, find_gaps
from coinql.domain.valuation import value

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ASSETS = ("BTC", "ETH")
money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("10000"), places=2)
units = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("5"), places=3)
TOLERANCE = Decimal("1e-18")  # amounts are at most ~1e6: 24 of Decimal's 28 digits agree
fractions = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1"), places=2)


@st.composite
def valid_histories(draw: st.DrawFn) -> list[ledger.Transaction]:
    """Deposits, withdrawals, fees, buys and sells that the ledger accepts: each draws an
    amount within what is held at that point."""
    cash, held = Decimal(0), dict.fromkeys(ASSETS, Decimal(0))
    history = []
    for step in range(draw(st.integers(1, 25))):
        moment = T0 + timedelta(hours=step)
        kind = draw(st.sampled_from(list(ledger.CASH_KINDS | {"BUY", "SELL"})))
        if kind == ledger.TransactionKind.DEPOSIT or cash == 0:
            amount = draw(money)
            history.append(
                ledger.Transaction(ledger.TransactionKind.DEPOSIT, "USD", amount, moment)
            )
            cash += amount
        elif kind in (ledger.TransactionKind.WITHDRAW, ledger.TransactionKind.FEE):
            amount = (cash * draw(fractions)).quantize(Decimal("0.01"), ROUND_DOWN)
            history.append(ledger.Transaction(ledger.TransactionKind(kind), "USD", amount, moment))
            cash -= amount
        elif kind == "BUY":
            asset, price, quantity = draw(st.sampled_from(ASSETS)), draw(money), draw(units)
            fee = (quantity * price * Decimal("0.001")).quantize(Decimal("0.01"))
            if quantity * price + fee > cash:
                continue
            history.append(
                ledger.Transaction(ledger.TransactionKind.BUY, asset, quantity, moment, price, fee)
            )
            cash -= quantity * price + fee
            held[asset] += quantity
        else:
            asset = draw(st.sampled_from(ASSETS))
            if held[asset] == 0:
                continue
            quantity = (held[asset] * draw(fractions)).quantize(Decimal("0.001"), ROUND_DOWN)
            price = draw(money)
            if quantity == 0:
                continue
            history.append(
                ledger.Transaction(ledger.TransactionKind.SELL, asset, quantity, moment, price)
            )
            cash += quantity * price
            held[asset] -= quantity
    return history


@settings(max_examples=150, deadline=None)
@given(valid_histories(), st.sampled_from(list(ledger.CostBasis)), money, money)
def test_value_is_deposits_plus_realized_plus_unrealized(
    history: list[ledger.Transaction], method: ledger.CostBasis, btc: Decimal, eth: Decimal
) -> None:
    state = ledger.replay(history, base_currency="USD", method=method)
    valuation = value(state, {"BTC": btc, "ETH": eth})
    assert state.cash >= 0
    assert all(position.quantity >= 0 for position in valuation.positions)
    # Exact but for the lots' unit costs, divided at Decimal's 28 significant digits.
    identity = valuation.net_deposits + valuation.realized_pnl + valuation.unrealized_pnl
    assert abs(valuation.value - identity) < TOLERANCE


@settings(max_examples=150, deadline=None)
@given(valid_histories(), money, money)
def test_total_pnl_does_not_depend_on_the_cost_basis_method(
    history: list[ledger.Transaction], btc: Decimal, eth: Decimal
) -> None:
    """FIFO and average cost split PnL differently between realized and unrealized, never the
    total."""
    prices = {"BTC": btc, "ETH": eth}
    fifo = value(ledger.replay(history, base_currency="USD", method=ledger.CostBasis.FIFO), prices)
    average = value(
        ledger.replay(history, base_currency="USD", method=ledger.CostBasis.AVERAGE), prices
    )
    assert fifo.value == average.value and fifo.cash == average.cash
    total = fifo.realized_pnl + fifo.unrealized_pnl
    assert abs(total - (average.realized_pnl + average.unrealized_pnl)) < TOLERANCE


@st.composite
def minute_candles(draw: st.DrawFn) -> tuple[Candles, int]:
    hours = draw(st.integers(1, 6))
    count = hours * 60
    start = Interval.H1.milliseconds * draw(st.integers(0, 10_000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, count)))
    open_ = np.concatenate([[100.0], close[:-1]])
    spread = rng.uniform(0, 0.01, count)
    candles = Candles(
        timestamps=start + np.arange(count, dtype=np.int64) * Interval.M1.milliseconds,
        open=open_,
        high=np.maximum(open_, close) * (1 + spread),
        low=np.minimum(open_, close) * (1 - spread),
        close=close,
        volume=rng.exponential(1.0, count),
        quote_volume=rng.exponential(100.0, count),
    )
    return candles, hours


@settings(max_examples=60, deadline=None)
@given(minute_candles(), st.data())
def test_aggregating_minutes_into_hours(drawn: tuple[Candles, int], data: st.DataObject) -> None:
    candles, hours = drawn
    # Drop some minutes: the hours they belong to are incomplete and left out.
    dropped = data.draw(st.sets(st.integers(0, len(candles) - 1), max_size=3))
    keep = np.setdiff1d(np.arange(len(candles)), sorted(dropped))
    partial = Candles(*(column[keep] for column in vars_of(candles)))
    found = aggregate(partial, Interval.M1, Interval.H1)
    broken = {index // 60 for index in dropped}
    assert len(found) == hours - len(broken)
    complete = [hour for hour in range(hours) if hour not in broken]
    for row, hour in enumerate(complete):
        part = slice(hour * 60, hour * 60 + 60)
        assert found.timestamps[row] == candles.timestamps[part][0]
        assert found.open[row] == candles.open[part][0]
        assert found.close[row] == candles.close[part][-1]
        assert found.high[row] == candles.high[part].max()
        assert found.low[row] == candles.low[part].min()
        assert np.isclose(found.volume[row], candles.volume[part].sum(), rtol=1e-12)


def vars_of(candles: Candles) -> tuple[np.ndarray, ...]:
    """The columns, in field order."""
    return tuple(getattr(candles, column.name) for column in fields(candles))


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 199), max_size=200), st.integers(0, 50), st.integers(150, 199))
def test_gaps_and_present_candles_tile_the_range(present: set[int], first: int, last: int) -> None:
    step = Interval.D1.milliseconds
    timestamps = np.array(sorted(present), dtype=np.int64) * step
    gaps = find_gaps(timestamps, Interval.D1, first * step, last * step)
    missing = {day for gap in gaps for day in range(gap.start // step, gap.end // step + 1)}
    assert all(gap.missing == (gap.end - gap.start) // step + 1 for gap in gaps)
    assert sum(gap.missing for gap in gaps) == len(missing)  # no overlap
    assert missing == set(range(first, last + 1)) - present


@st.composite
def priced_signals(draw: st.DrawFn) -> tuple[Candles, np.ndarray, np.ndarray]:
    count = draw(st.integers(5, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.05, count)))
    open_ = close * np.exp(rng.normal(0, 0.01, count))
    candles = Candles(
        timestamps=np.arange(count, dtype=np.int64) * Interval.D1.milliseconds,
        open=open_,
        high=np.maximum(open_, close) * 1.01,
        low=np.minimum(open_, close) * 0.99,
        close=close,
        volume=np.ones(count),
        quote_volume=np.ones(count),
    )
    enter = rng.random(count) < draw(st.floats(0, 0.5))
    leave = rng.random(count) < draw(st.floats(0, 0.5))
    return candles, enter, leave


@settings(max_examples=100, deadline=None)
@given(priced_signals(), st.sampled_from(list(bc.FillPrice)))
def test_long_only_all_in_never_borrows_and_never_goes_below_zero(
    drawn: tuple[Candles, np.ndarray, np.ndarray], fill: bc.FillPrice
) -> None:
    candles, enter, leave = drawn
    result = bt.simulate(candles, enter, leave, bc.BacktestConfig(fee_bps=10, fill=fill))
    assert np.all(result.position >= 0)
    assert np.all(np.isfinite(result.equity)) and np.all(result.equity > 0)
    invested = result.position * candles.close
    assert np.all(invested <= result.equity * (1 + 1e-9))  # no leverage


@settings(max_examples=100, deadline=None)
@given(priced_signals())
def test_without_a_signal_the_capital_stays_put(
    drawn: tuple[Candles, np.ndarray, np.ndarray],
) -> None:
    candles, _, leave = drawn
    never = np.zeros(len(candles), dtype=bool)
    result = bt.simulate(candles, never, leave, bc.BacktestConfig(fee_bps=25))
    assert result.trade_count == 0
    assert np.all(result.equity == 10_000.0)


@settings(max_examples=100, deadline=None)
@given(priced_signals(), st.floats(0, 50), st.floats(0.5, 50))
def test_higher_fees_never_leave_more_money(
    drawn: tuple[Candles, np.ndarray, np.ndarray], fee_bps: float, more: float
) -> None:
    candles, enter, leave = drawn
    cheap = bt.simulate(candles, enter, leave, bc.BacktestConfig(fee_bps=fee_bps))
    dear = bt.simulate(candles, enter, leave, bc.BacktestConfig(fee_bps=fee_bps + more))
    assert cheap.trade_count == dear.trade_count
    assert np.all(dear.equity <= cheap.equity * (1 + 1e-12))
