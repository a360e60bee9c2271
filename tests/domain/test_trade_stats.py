"""Trade statistics against vectorbt's trade records on the SMA cross it also backtests, and
against quantstats' period measures read over the trades' pnl."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain.strategies import StrategySpec
from coinql.domain.trade_stats import round_trips, trade_statistics
from coinql.domain.trades import ExitReason, Trade
from tests.domain.coins import parsed
from tests.domain.tear_oracles import as_series, close, fresh_seed, oracle, quantstats, vectorbt

SMA = StrategySpec("smaCross", {"fast": 10, "slow": 30})


@pytest.mark.parametrize("symbol", ["BTC", "ETH", "LTC", "DOGE"])
def test_sma_cross_against_vectorbt(symbol: str) -> None:
    vbt = vectorbt()
    candles = parsed(symbol).candles
    close_ = pd.Series(candles.close)
    with warnings.catch_warnings():  # numba's deprecations as the kernels compile
        warnings.simplefilter("ignore")
        fast, slow = vbt.MA.run(close_, 10), vbt.MA.run(close_, 30)
        entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
        trades = vbt.Portfolio.from_signals(
            close_, entries, exits, fees=0.001, init_cash=10_000
        ).trades
        expected = {
            "count": trades.count(),
            "profit_factor": trades.profit_factor(),
            "expectancy": trades.expectancy(),
            "expectancy_return": trades.returns.mean(),
            "longest_winning_streak": trades.winning_streak.max(),
            "longest_losing_streak": trades.losing_streak.max(),
            "average_holding_bars": trades.duration.mean(),
            "best_trade": trades.returns.max(),
            "worst_trade": trades.returns.min(),
        }
    config = bc.BacktestConfig(initial_capital=10_000, fee_bps=10, fill=bc.FillPrice.CLOSE)
    found = trade_statistics(bt.run(SMA, candles, config).trades)
    for name, theirs in expected.items():
        close(getattr(found, name), theirs, f"{name}, {symbol}")


def trade(pnl: float, entry_bar: int = 0, exit_bar: int = 1, notional: float = 100.0) -> Trade:
    return Trade(
        side=1,
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        entry_price=notional,
        exit_price=notional + pnl,
        quantity=1.0,
        pnl=pnl,
        return_pct=pnl / notional,
        fees=0.0,
        mae=min(pnl, 0.0) / notional,
        mfe=max(pnl, 0.0) / notional,
        exit_reason=ExitReason.SIGNAL,
    )


def test_random_trades_against_quantstats_over_their_pnl() -> None:
    """A trade's pnl read as one period's return: the same profit factor and streaks."""
    seed = fresh_seed()
    rng = np.random.default_rng(seed)
    pnl = np.round(rng.normal(0.5, 10.0, 300), 1)  # some break-even trades
    bars = np.cumsum(rng.integers(1, 20, 301))
    trades = [trade(float(p), int(bars[i]), int(bars[i + 1])) for i, p in enumerate(pnl)]
    found = trade_statistics(trades)
    qs = quantstats().stats
    series = as_series(pnl / 1_000)  # small enough for quantstats to read as returns
    close(found.profit_factor, oracle(qs.profit_factor, series), f"seed {seed}")
    assert found.longest_winning_streak == oracle(qs.consecutive_wins, series), seed
    assert found.longest_losing_streak == oracle(qs.consecutive_losses, series), seed
    close(found.expectancy, np.mean(pnl), f"seed {seed}")
    close(found.average_holding_bars, np.mean(np.diff(bars)), f"seed {seed}")
    close(found.best_trade, np.max(pnl) / 100, f"seed {seed}")
    close(found.worst_trade, np.min(pnl) / 100, f"seed {seed}")


def test_break_even_trades_break_both_streaks() -> None:
    found = trade_statistics([trade(p) for p in (5, 3, 0, 2, -1, -2, 0, -3, 4)])
    assert (found.longest_winning_streak, found.longest_losing_streak) == (2, 2)
    assert found.count == 9
    assert found.profit_factor == pytest.approx(14 / 6)
    assert found.expectancy == pytest.approx(8 / 9)


def test_no_losing_trade_is_nan_not_inf() -> None:
    found = trade_statistics([trade(5.0, 0, 3), trade(1.0, 3, 4)])
    assert np.isnan(found.profit_factor)
    assert found.longest_losing_streak == 0
    assert found.average_holding_bars == 2.0
    assert (found.best_trade, found.worst_trade) == (0.05, 0.01)


def test_no_trades() -> None:
    found = trade_statistics([])
    assert (found.count, found.longest_winning_streak, found.longest_losing_streak) == (0, 0, 0)
    for value in (
        found.profit_factor,
        found.expectancy,
        found.expectancy_return,
        found.average_holding_bars,
        found.best_trade,
        found.worst_trade,
    ):
        assert np.isnan(value)


def test_a_bots_fills_are_read_as_round_trips_from_flat_to_flat() -> None:
    day = 86_400_000
    fills = [
        ("BUY", 100.0, 1.0, 0.1, 0),
        ("BUY", 110.0, 1.0, 0.1, day),  # adds to the position: the same trip
        ("SELL", 120.0, 0.5, 0.06, 3 * day),
        ("SELL", 90.0, 1.5, 0.135, 5 * day),  # flat again: the trip ends here
        ("BUY", 95.0, 2.0, 0.19, 6 * day),
        ("SELL", 99.0, 2.0, 0.198, 8 * day),
        ("BUY", 97.0, 1.0, 0.097, 9 * day),  # still open: not a trade yet
    ]
    first, second = round_trips(fills, day)
    cost = 100.0 + 0.1 + 110.0 + 0.1
    pnl = 120.0 * 0.5 - 0.06 + 90.0 * 1.5 - 0.135 - cost
    assert first.pnl == pytest.approx(pnl) and first.return_pct == pytest.approx(pnl / cost)
    assert (first.duration, second.duration) == (5, 2)
    assert second.pnl == pytest.approx(2 * 99.0 - 0.198 - (2 * 95.0 + 0.19))
    stats = trade_statistics([first, second])
    assert stats.count == 2 and stats.longest_losing_streak == 1
    assert round_trips([], day) == []
