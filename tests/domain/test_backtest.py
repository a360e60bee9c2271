"""The backtest engine against vectorbt, and its conventions: no look-ahead, stops, sizing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import signals
from coinql.domain.candles import Candles
from coinql.domain.strategies import StrategySpec
from coinql.domain.trades import ExitReason
from tests.domain.coins import parsed
from tests.domain.tear_oracles import vectorbt

SMA = StrategySpec("smaCross", {"fast": 10, "slow": 30})


@pytest.mark.parametrize("symbol", ["BTC", "ETH", "LTC", "DOGE"])
def test_sma_cross_at_the_close_equals_vectorbt(symbol: str) -> None:
    vbt = vectorbt()
    candles = parsed(symbol).candles
    close = pd.Series(candles.close)
    # vectorbt's numba kernels warn about numba deprecations when they first compile.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 30)
        entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        theirs = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, init_cash=10_000)
        final, count, curve = theirs.final_value(), theirs.trades.count(), theirs.value().values
    ours = bt.run(
        SMA, candles, bc.BacktestConfig(initial_capital=10_000, fee_bps=10, fill=bc.FillPrice.CLOSE)
    )
    ours_entries, ours_exits = signals.signals(SMA, candles)
    np.testing.assert_array_equal(ours_entries, entries.values)
    np.testing.assert_array_equal(ours_exits, exits.values)
    assert ours.equity[-1] == pytest.approx(final, rel=1e-9)
    assert len(ours.trades) == count
    np.testing.assert_allclose(ours.equity, curve, rtol=1e-9)


def test_crossing_rule_matches_vectorbt_on_ties_and_gaps() -> None:
    vbt = vectorbt()
    first = np.array([1, 2, 3, 3, 4, 2, np.nan, 1, 5, 5, 6, 1, 1, 2], dtype=float)
    second = np.full(first.size, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = vbt.generic.nb.crossed_above_1d_nb(first, second)
    np.testing.assert_array_equal(signals.crossed_above(first, second), expected)


def perturbed_after(candles: Candles, cut: int, seed: int = 0) -> Candles:
    rng = np.random.default_rng(seed)
    future = candles.select(np.arange(len(candles)))
    factor = np.exp(rng.normal(0, 0.1, len(candles) - cut))
    for column in (future.open, future.high, future.low, future.close):
        column[cut:] *= factor
    return future


@pytest.mark.parametrize("fill", list(bc.FillPrice))
@pytest.mark.parametrize(
    "spec",
    [
        SMA,
        StrategySpec("emaCross", {"fast": 12, "slow": 26}),
        StrategySpec("rsiReversion", {"window": 14, "lower": 30.0, "upper": 70.0}),
        StrategySpec("donchianBreakout", {"entry": 20, "exit": 10}),
        StrategySpec("momentum", {"lookback": 30, "threshold": 0.05}),
    ],
    ids=lambda spec: spec.kind if isinstance(spec, StrategySpec) else None,
)
def test_no_look_ahead(spec: StrategySpec, fill: bc.FillPrice) -> None:
    """Changing the bars from `cut` on never changes equity before `cut` (a NEXT_OPEN fill at
    `cut` uses that bar's open, so equity is compared up to cut - 1)."""
    candles = parsed("BTC").candles
    config = bc.BacktestConfig(fee_bps=10, slippage_bps=5, fill=fill, stop_loss=0.1)
    cut = 900
    base = bt.run(spec, candles, config)
    changed = bt.run(spec, perturbed_after(candles, cut), config)
    np.testing.assert_array_equal(base.equity[: cut - 1], changed.equity[: cut - 1])
    before = [t for t in base.trades if t.exit_bar < cut - 1]
    assert before == [t for t in changed.trades if t.exit_bar < cut - 1]


def synthetic(close: list[float], spread: float = 0.01) -> Candles:
    values = np.asarray(close, dtype=float)
    opens = np.concatenate([[values[0]], values[:-1]])
    return Candles(
        np.arange(values.size, dtype=np.int64) * 86_400_000,
        opens,
        np.maximum(opens, values) * (1 + spread),
        np.minimum(opens, values) * (1 - spread),
        values,
        np.ones(values.size),
        np.full(values.size, np.nan),
    )


def test_stop_loss_exits_at_the_level() -> None:
    candles = synthetic([100, 100, 100, 95, 85, 80, 90], spread=0.0)
    enter = np.array([False, True, False, False, False, False, False])
    leave = np.zeros(7, dtype=bool)
    config = bc.BacktestConfig(fill=bc.FillPrice.CLOSE, stop_loss=0.1)
    result = bt.simulate(candles, enter, leave, config)
    (trade,) = result.trades
    assert trade.exit_reason is ExitReason.STOP_LOSS
    assert trade.exit_bar == 4 and trade.exit_price == pytest.approx(90.0)
    assert result.equity[-1] == pytest.approx(10_000 * 0.9)


def test_take_profit_and_a_gap_fill_at_the_open() -> None:
    candles = synthetic([100, 100, 105, 130, 131], spread=0.0)
    enter = np.array([False, True, False, False, False])
    config = bc.BacktestConfig(fill=bc.FillPrice.CLOSE, take_profit=0.2)
    (trade,) = bt.simulate(candles, enter, np.zeros(5, dtype=bool), config).trades
    assert trade.exit_reason is ExitReason.TAKE_PROFIT
    assert trade.exit_price == pytest.approx(120.0)  # bar 3 opens at 105, touches 120 on the way
    gap = synthetic([100, 100, 100, 130], spread=0.0)
    gap.open[3] = 128.0
    (gapped,) = bt.simulate(gap, enter[:4], np.zeros(4, dtype=bool), config).trades
    assert gapped.exit_price == pytest.approx(128.0)  # opened beyond the level: the open


def test_next_open_fills_and_slippage() -> None:
    candles = synthetic([100, 100, 110, 120, 120])
    enter = np.array([False, True, False, False, False])
    leave = np.array([False, False, False, True, False])
    config = bc.BacktestConfig(fill=bc.FillPrice.NEXT_OPEN, slippage_bps=100)
    (trade,) = bt.simulate(candles, enter, leave, config).trades
    assert trade.entry_bar == 2 and trade.entry_price == pytest.approx(candles.open[2] * 1.01)
    assert trade.exit_bar == 4 and trade.exit_price == pytest.approx(candles.open[4] * 0.99)


def test_long_short_reverses_on_signals() -> None:
    candles = synthetic([100, 100, 110, 90, 80, 100])
    enter = np.array([False, True, False, False, True, False])
    leave = np.array([False, False, True, False, False, False])
    config = bc.BacktestConfig(fill=bc.FillPrice.CLOSE, direction=bc.Direction.LONG_SHORT)
    trades = bt.simulate(candles, enter, leave, config).trades
    assert [(t.side, t.entry_bar, t.exit_bar) for t in trades] == [(1, 1, 2), (-1, 2, 4), (1, 4, 5)]
    short = trades[1]
    assert short.pnl == pytest.approx(short.quantity * (110 - 80))


def test_fixed_fraction_and_volatility_target_sizing() -> None:
    candles = parsed("ETH").candles
    half = bt.run(SMA, candles, bc.BacktestConfig(sizing=bc.Sizing.FIXED_FRACTION, fraction=0.5))
    first = half.trades[0]
    assert first.quantity * first.entry_price == pytest.approx(5_000, rel=1e-12)
    targeted = bt.run(
        SMA,
        candles,
        bc.BacktestConfig(sizing=bc.Sizing.VOLATILITY_TARGET, volatility_target=0.2),
    )
    assert targeted.trades[0].quantity * targeted.trades[0].entry_price < 10_000


def test_insufficient_data_says_what_is_needed() -> None:
    candles = parsed("BTC").candles.select(np.arange(20))
    with pytest.raises(bt.InsufficientData) as raised:
        bt.run(SMA, candles, bc.BacktestConfig())
    error = raised.value
    assert (error.required, error.received, error.lookback) == (32, 20, 30)
    assert error.first == candles.timestamps[0] and error.last == candles.timestamps[-1]
    assert error.suggested_start is not None and error.suggested_start < error.first
    assert "needs at least 32 candles" in error.message


@pytest.mark.parametrize("fill", list(bc.FillPrice))
def test_the_vectorized_path_equals_the_general_one(fill: bc.FillPrice) -> None:
    """All-in long-only books take a vectorized path; a stop that can never trigger sends the
    same book through the general path, which must agree."""
    candles = parsed("ETH").candles
    fast = bt.run(SMA, candles, bc.BacktestConfig(fee_bps=10, slippage_bps=5, fill=fill))
    general = bt.run(
        SMA, candles, bc.BacktestConfig(fee_bps=10, slippage_bps=5, fill=fill, stop_loss=0.999999)
    )
    np.testing.assert_allclose(fast.equity, general.equity, rtol=1e-12)
    np.testing.assert_allclose(fast.position, general.position, rtol=1e-12)
    assert len(fast.trades) == len(general.trades)
    for ours, theirs in zip(fast.trades, general.trades, strict=True):
        assert ours.exit_reason == theirs.exit_reason
        assert (ours.entry_bar, ours.exit_bar) == (theirs.entry_bar, theirs.exit_bar)
        for name in ("entry_price", "exit_price", "quantity", "pnl", "fees", "mae", "mfe"):
            assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-12)
