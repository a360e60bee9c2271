"""One metrics record for every run: summarize, and its JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain import compounding
from coinql.domain import performance as pf
from coinql.domain.metrics import (
    Benchmark,
    Metrics,
    RegimeMetrics,
    equity_returns,
    finite,
    summarize,
)


def test_summarize_is_the_performance_measures_with_undefined_ones_as_none() -> None:
    returns = np.random.default_rng(0).normal(0.001, 0.02, 500)
    found = summarize(returns, 365)
    assert found.sharpe == float(pf.sharpe(returns, 365))
    assert found.max_drawdown == float(pf.max_drawdown(returns))
    assert found.cagr == float(compounding.cagr(returns, 365))
    flat = summarize(np.zeros(10), 365)
    assert flat.sharpe is None and flat.total_return == 0.0
    assert summarize(np.array([]), 365).total_return is None


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_finite_refuses_what_json_cannot_hold(value: float) -> None:
    assert finite(value) is None
    assert finite(np.float64(0.5)) == 0.5


def test_equity_returns_keep_a_zero_equity_undefined() -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = equity_returns(np.array([100.0, 110.0, 0.0, 0.0]))
    assert returns[0] == pytest.approx(0.1) and returns[1] == -1.0 and np.isnan(returns[2])


def test_metrics_survive_their_json() -> None:
    metrics = Metrics(
        total_return=0.5,
        sharpe=1.2,
        trade_count=3,
        win_rate=None,
        exposure=0.4,
        by_regime={"trend:1": RegimeMetrics(10, 0.1, None)},
        benchmark=Benchmark("BTC", Metrics(total_return=2.0, volatility=0.6)),
    )
    assert Metrics.from_json(metrics.to_json()) == metrics
    assert "win_rate" not in metrics.to_json()
    assert metrics["trade_count"] == 3.0 and metrics["calmar"] is None
