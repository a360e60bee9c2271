from __future__ import annotations

import numpy as np

from coinql.domain.candles import DAY_MS, Interval, aggregate, validate
from coinql.domain.demo import generate_demo_market
from coinql.domain.demo_params import DEMO_PARAMS

END = 20_000 * DAY_MS


def test_same_seed_same_market() -> None:
    first = generate_demo_market(end_day_ms=END, days=200)
    second = generate_demo_market(end_day_ms=END, days=200)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.daily.close, b.daily.close)
        np.testing.assert_array_equal(a.hourly.close, b.hourly.close)


def test_at_least_eight_valid_assets_with_daily_and_hourly_candles() -> None:
    market = generate_demo_market(end_day_ms=END)
    assert len(market) >= 8
    for asset in market:
        assert len(asset.daily) == 4 * 365 and asset.daily.timestamps[-1] == END
        assert len(asset.hourly) == 21 * 24
        assert validate(asset.daily, Interval.D1) == []
        assert validate(asset.hourly, Interval.H1) == []


def test_daily_candles_of_the_hourly_weeks_are_their_aggregate() -> None:
    for asset in generate_demo_market(end_day_ms=END, days=60):
        from_hours = aggregate(asset.hourly, Interval.H1, Interval.D1)
        tail = asset.daily.between(int(from_hours.timestamps[0]), None)
        np.testing.assert_array_equal(tail.close, from_hours.close)
        np.testing.assert_array_equal(tail.high, from_hours.high)


def test_calibration_follows_the_fitted_parameters() -> None:
    market = {asset.symbol: asset for asset in generate_demo_market(end_day_ms=END, days=4000)}
    params = {asset["symbol"]: asset for asset in DEMO_PARAMS["assets"]}
    returns = {s: np.diff(np.log(a.daily.close)) for s, a in market.items()}
    for symbol, fitted in params.items():
        calm, wild = fitted["volatility"]
        assert calm * 0.8 < np.std(returns[symbol]) < wild * 1.5, symbol
        # Fat tails: excess kurtosis well above a normal's 0.
        centered = returns[symbol] - returns[symbol].mean()
        assert np.mean(centered**4) / np.var(centered) ** 2 - 3 > 1.0, symbol
    correlation = np.corrcoef(returns["BTC"], returns["ETH"])[0, 1]
    assert abs(correlation - DEMO_PARAMS["correlation"][0][1]) < 0.1
    # The last close is the real series' last close, so magnitudes look familiar.
    assert np.isclose(market["BTC"].daily.close[-1], params["BTC"]["price"], rtol=1e-12)


def test_stablecoins_stay_near_one() -> None:
    for asset in generate_demo_market(end_day_ms=END):
        if asset.stablecoin:
            assert np.all(np.abs(asset.daily.close - 1) < 0.01)


def test_market_cap_is_the_last_close_times_the_supply() -> None:
    for asset in generate_demo_market(end_day_ms=END, days=30, hourly_days=2):
        assert asset.market_cap == float(asset.daily.close[-1] * asset.circulating_supply) > 0
