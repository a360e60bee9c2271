"""Indicators against pandas and hand-written references, and the no-look-ahead property."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from coinql.domain import indicators as ind
from coinql.domain import volatility as vol
from tests.domain.coins import parsed

CANDLES = parsed("BTC").candles
CLOSE, HIGH, LOW = CANDLES.close, CANDLES.high, CANDLES.low


def wilder(values: np.ndarray, window: int) -> np.ndarray:
    """Wilder smoothing written as the textbook loop, as a reference."""
    out = np.full(values.size, np.nan)
    out[window - 1] = values[:window].mean()
    for i in range(window, values.size):
        out[i] = (out[i - 1] * (window - 1) + values[i]) / window
    return out


def test_sma_and_bollinger_match_pandas() -> None:
    series = pd.Series(CLOSE)
    np.testing.assert_allclose(ind.sma(CLOSE, 20), series.rolling(20).mean(), rtol=1e-10)
    bands = ind.bollinger(CLOSE, 20, 2.0)
    std = series.rolling(20).std(ddof=0)
    np.testing.assert_allclose(bands.upper, series.rolling(20).mean() + 2 * std, rtol=1e-10)
    np.testing.assert_allclose(bands.lower, series.rolling(20).mean() - 2 * std, rtol=1e-10)


def test_ema_is_seeded_with_the_sma_then_recursive() -> None:
    window = 20
    alpha = 2 / (window + 1)
    expected = np.full(CLOSE.size, np.nan)
    expected[window - 1] = CLOSE[:window].mean()
    for i in range(window, CLOSE.size):
        expected[i] = alpha * CLOSE[i] + (1 - alpha) * expected[i - 1]
    np.testing.assert_allclose(ind.ema(CLOSE, window), expected, rtol=1e-10)
    # After the seed's influence fades, it agrees with pandas' recursive EWM.
    pandas = pd.Series(CLOSE).ewm(span=window, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(ind.ema(CLOSE, window)[-100:], pandas[-100:], rtol=1e-8)


def test_rsi_and_atr_are_wilders() -> None:
    change = np.diff(CLOSE)
    gains = wilder(np.maximum(change, 0), 14)
    losses = wilder(np.maximum(-change, 0), 14)
    expected = np.concatenate([[np.nan], 100 - 100 / (1 + gains / losses)])
    np.testing.assert_allclose(ind.rsi(CLOSE, 14), expected, rtol=1e-9)
    assert np.nanmin(ind.rsi(CLOSE, 14)) >= 0 and np.nanmax(ind.rsi(CLOSE, 14)) <= 100
    np.testing.assert_allclose(
        ind.atr(HIGH, LOW, CLOSE, 14), wilder(ind.true_range(HIGH, LOW, CLOSE), 14), rtol=1e-9
    )


def test_zscore_and_realized_volatility_match_pandas() -> None:
    series = pd.Series(CLOSE)
    expected = (series - series.rolling(30).mean()) / series.rolling(30).std()
    np.testing.assert_allclose(ind.zscore(CLOSE, 30), expected, rtol=1e-8)
    log_returns = np.log(series).diff()
    np.testing.assert_allclose(
        vol.realized_volatility(CLOSE, 30, 365),
        log_returns.rolling(30).std() * np.sqrt(365),
        rtol=1e-9,
    )


def test_vwap_weights_the_typical_price_by_volume() -> None:
    volume = np.arange(1, CLOSE.size + 1, dtype=float)
    typical = (HIGH + LOW + CLOSE) / 3
    found = ind.vwap(HIGH, LOW, CLOSE, volume, 5)
    assert found[10] == pytest.approx(np.sum(typical[6:11] * volume[6:11]) / volume[6:11].sum())


def test_regimes_have_known_codes() -> None:
    volatility = vol.volatility_regime(CLOSE, 30, 365, lookback=180)
    trend = ind.trend_regime(CLOSE, 50)
    assert set(np.unique(volatility[~np.isnan(volatility)])) == {0, 1, 2}
    assert set(np.unique(trend[~np.isnan(trend)])) == {-1, 0, 1}


INDICATORS = {
    "sma": lambda c: ind.sma(c.close, 20),
    "ema": lambda c: ind.ema(c.close, 20),
    "rsi": lambda c: ind.rsi(c.close, 14),
    "atr": lambda c: ind.atr(c.high, c.low, c.close, 14),
    "bollinger": lambda c: ind.bollinger(c.close, 20).upper,
    "zscore": lambda c: ind.zscore(c.close, 20),
    "realized": lambda c: vol.realized_volatility(c.close, 20, 365),
    "volofvol": lambda c: vol.vol_of_vol(c.close, 20, 365),
    "vol regime": lambda c: vol.volatility_regime(c.close, 20, 365, 100),
    "trend regime": lambda c: ind.trend_regime(c.close, 20),
}


@pytest.mark.parametrize("name", list(INDICATORS))
def test_no_look_ahead(name: str) -> None:
    """Changing bars after t never changes a value at or before t."""
    compute = INDICATORS[name]
    cut = 800
    future = CANDLES.select(np.arange(len(CANDLES)))
    rng = np.random.default_rng(0)
    shock = np.exp(rng.normal(0, 0.2, len(CANDLES) - cut))
    for column in (future.open, future.high, future.low, future.close):
        column[cut:] *= shock
    np.testing.assert_array_equal(compute(CANDLES)[:cut], compute(future)[:cut])


# Bars each indicator leaves NaN before its first value, as its docstring states.
WARM_UP = {
    "sma": (lambda c: ind.sma(c, 20), 19),
    "ema": (lambda c: ind.ema(c, 20), 19),
    "rsi": (lambda c: ind.rsi(c, 14), 14),
    "atr": (lambda c: ind.atr(c * 1.01, c * 0.99, c, 14), 13),
    "bollinger": (lambda c: ind.bollinger(c, 20).lower, 19),
    "zscore": (lambda c: ind.zscore(c, 20), 19),
    "vwap": (lambda c: ind.vwap(c * 1.01, c * 0.99, c, np.ones_like(c), 20), 19),
    "realized": (lambda c: vol.realized_volatility(c, 20, 365), 20),
    "volofvol": (lambda c: vol.vol_of_vol(c, 20, 365, 10), 29),
    "vol regime": (lambda c: vol.volatility_regime(c, 20, 365, 100), 119),
    "trend regime": (lambda c: ind.trend_regime(c, 20), 39),
}


@pytest.mark.parametrize("name", list(WARM_UP))
def test_values_are_nan_exactly_until_enough_history(name: str) -> None:
    compute, warm_up = WARM_UP[name]
    values = compute(CLOSE[:600])
    assert values.shape == (600,)
    assert np.isnan(values[:warm_up]).all()
    assert not np.isnan(values[warm_up:]).any()
    # A series too short for one value is all NaN, of the input's shape.
    short = compute(CLOSE[:warm_up])
    assert short.shape == (warm_up,) and np.isnan(short).all()


@pytest.mark.parametrize(
    "compute",
    [
        lambda c: ind.sma(c, 0),
        lambda c: ind.ema(c, 0),
        lambda c: ind.rsi(c, 0),
        lambda c: ind.atr(c, c, c, 0),
        lambda c: ind.bollinger(c, 0),
        lambda c: ind.zscore(c, -1),
        lambda c: ind.vwap(c, c, c, c, 0),
        lambda c: vol.realized_volatility(c, 0, 365),
    ],
)
def test_a_window_below_one_is_refused(compute: Callable[[np.ndarray], object]) -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        compute(CLOSE[:50])


def test_windows_without_a_sample_std_give_nan() -> None:
    assert np.isnan(ind.zscore(CLOSE[:50], 1)).all()
    assert np.isnan(vol.realized_volatility(CLOSE[:50], 1, 365)).all()
    assert np.isnan(vol.vol_of_vol(CLOSE[:50], 5, 365, outer_window=1)).all()


def test_flat_stretches_have_defined_edge_values() -> None:
    flat = np.full(40, 100.0)
    assert np.all(ind.rsi(flat, 14)[14:] == 50.0)  # no gains and no losses
    rising = 100.0 + np.arange(40.0)
    assert np.all(ind.rsi(rising, 14)[14:] == 100.0)  # no losses
    assert np.isnan(ind.zscore(flat, 10)[9:]).all()  # zero std
    no_volume = ind.vwap(flat, flat, flat, np.zeros(40), 5)
    assert np.isnan(no_volume).all()
    # The first bar has no previous close: its true range is its own range.
    ranges = ind.true_range(np.array([11.0, 13.0]), np.array([9.0, 12.0]), np.array([10.0, 12.5]))
    np.testing.assert_allclose(ranges, [2.0, 3.0])  # then |high - previous close| = 3
