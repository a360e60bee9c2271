"""The tear sheet's quantstats figures through the stream facade: each one of `RATIOS` is its
domain function's value for the stream, and each undefined one is listed with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain import compounding, ratios, win_loss
from coinql.domain.candles import Interval
from coinql.domain.tearsheet import ReturnStream
from coinql.domain.tearsheet_ratios import RATIOS, risk_free_total
from tests.domain.coins import daily_returns


def stream(returns: np.ndarray, risk_free_rate: float = 0.0) -> ReturnStream:
    timestamps = np.arange(returns.size, dtype=np.int64) * Interval.D1.milliseconds
    return ReturnStream("test", Interval.D1, timestamps, returns, 365.0, risk_free_rate)


def test_each_figure_is_its_functions_value_with_the_per_period_rate() -> None:
    returns = daily_returns("ADA")
    found = stream(returns, risk_free_rate=0.04)
    rf = compounding.periodic_rate(0.04, 365)
    assert found.ratio("smartSharpe") == pytest.approx(float(ratios.smart_sharpe(returns, 365, rf)))
    assert found.ratio("profitFactor") == float(win_loss.profit_factor(returns))
    assert found.ratio("consecutiveLosses") == float(win_loss.consecutive_losses(returns))
    assert risk_free_total(found) == pytest.approx((1 + rf) ** returns.size - 1)
    for name in RATIOS:
        assert np.isfinite(found.ratio(name)), name  # a real coin's years define them all
    assert not set(RATIOS) & set(found.undefined())


def test_undefined_figures_say_why() -> None:
    gains_only = stream(np.array([0.01, 0.02, 0.0, 0.015, 0.01, 0.03]))
    reasons = gains_only.undefined()
    for name in ("profitFactor", "gainToPain", "averageLoss", "outlierLossRatio"):
        assert np.isnan(gains_only.ratio(name))
        assert reasons[name] == "no period lost"
    assert reasons["recoveryFactor"] == "no drawdown"
    assert "averageWin" not in reasons and "consecutiveWins" not in reasons
    one = stream(np.array([0.01]))
    assert one.undefined()["probabilisticSharpe"] == "needs at least 4 observations, has 1"
    none = stream(np.array([np.nan, np.nan]))
    assert none.undefined()["expectedReturn"] == "no observations"
