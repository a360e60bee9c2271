"""The demo perpetuals: consistent with the demo prices, and with the statistical shape asked
of them (funding and basis mean-reverting around small positive means, moving together; open
interest moving with the price). Each check is shown to fail on a series without the
property."""

from __future__ import annotations

import numpy as np
import pytest

from coinql.domain.candles import DAY_MS
from coinql.domain.demo import DemoAsset, generate_demo_market
from coinql.domain.demo_derivatives import DemoPerpetual, generate_demo_perpetuals
from coinql.domain.derivatives import FUNDING_PERIOD_MS, HOUR_MS, basis
from coinql.domain.typing import FloatArray

END = 20_000 * DAY_MS
DAYS = 4 * 365
Demo = tuple[dict[str, DemoAsset], list[DemoPerpetual]]


@pytest.fixture(scope="module")
def demo() -> Demo:
    market = generate_demo_market(end_day_ms=END, days=DAYS)
    return {asset.symbol: asset for asset in market}, generate_demo_perpetuals(market)


def autocorrelation(values: FloatArray, lag: int) -> float:
    deviations = values - values.mean()
    return float(deviations[:-lag] @ deviations[lag:] / (deviations @ deviations))


def ar1_coefficient(values: FloatArray) -> float:
    """OLS slope of x[t] on x[t - 1], both demeaned."""
    deviations = values - values.mean()
    return float(deviations[:-1] @ deviations[1:] / (deviations[:-1] @ deviations[:-1]))


def mean_reverting(values: FloatArray, *, horizon: int) -> bool:
    """The AR(1) coefficient of the deviations is clearly below 1, and after `horizon` steps
    the series has forgotten where it was. A random walk of as many steps has an
    autocorrelation near 1 at that horizon."""
    return ar1_coefficient(values) < 0.97 and abs(autocorrelation(values, horizon)) < 0.15


def premium_before_each_funding(perpetual: DemoPerpetual) -> FloatArray:
    """Mean basis of the 8 hourly bars before each funding."""
    hours = FUNDING_PERIOD_MS // HOUR_MS
    result: FloatArray = basis(perpetual.bars).reshape(-1, hours).mean(axis=1)
    return result


def test_each_volatile_asset_has_a_perpetual_over_its_whole_daily_history(demo: Demo) -> None:
    assets, perpetuals = demo
    assert [p.symbol for p in perpetuals] == [s for s, a in assets.items() if not a.stablecoin]
    assert {"USDT", "USDC"}.isdisjoint(p.symbol for p in perpetuals)
    first_day = END - (DAYS - 1) * DAY_MS
    for perpetual in perpetuals:
        bars, funding = perpetual.bars, perpetual.funding
        np.testing.assert_array_equal(
            bars.timestamps, first_day + np.arange(24 * DAYS, dtype=np.int64) * HOUR_MS
        )
        # 00:00, 08:00 and 16:00 UTC, the last at the close of the last day.
        assert np.all(np.diff(funding.timestamps) == FUNDING_PERIOD_MS)
        assert funding.timestamps[0] == first_day + FUNDING_PERIOD_MS
        assert funding.timestamps[-1] == END + DAY_MS and np.all(
            funding.timestamps % FUNDING_PERIOD_MS == 0
        )
        for values in (funding.rates, bars.open_interest, bars.mark_price, bars.index_price):
            assert np.all(np.isfinite(values))
        assert np.all(bars.open_interest > 0) and np.all(bars.index_price > 0)


def test_the_index_closes_each_day_and_each_demo_hour_at_the_spot_close(demo: Demo) -> None:
    assets, perpetuals = demo
    for perpetual in perpetuals:
        asset = assets[perpetual.symbol]
        index = perpetual.bars.index_price
        np.testing.assert_allclose(index[23::24], asset.daily.close, rtol=1e-12)
        hourly = asset.hourly
        at = np.searchsorted(perpetual.bars.timestamps, hourly.timestamps)
        np.testing.assert_allclose(index[at], hourly.close, rtol=1e-12)
        np.testing.assert_allclose(
            basis(perpetual.bars), perpetual.bars.mark_price / index - 1, atol=1e-15
        )


def test_funding_reverts_to_a_small_positive_mean(demo: Demo) -> None:
    _, perpetuals = demo
    for perpetual in perpetuals:
        rates = perpetual.funding.rates
        assert mean_reverting(rates, horizon=21), perpetual.symbol  # a week of fundings
        assert ar1_coefficient(rates) < 0.9
        # Significantly positive, with the sample size shrunk for the autocorrelation.
        rho = autocorrelation(rates, 1)
        effective = rates.size * (1 - rho) / (1 + rho)
        assert rates.mean() / (rates.std(ddof=1) / np.sqrt(effective)) > 3, perpetual.symbol
        assert 0 < rates.mean() < 0.0005  # about 0.01 % per 8 hours
        assert 0.05 < np.mean(rates < 0) < 0.5  # shorts pay sometimes, not mostly


def test_basis_reverts_too_and_moves_with_funding(demo: Demo) -> None:
    _, perpetuals = demo
    for perpetual in perpetuals:
        hourly_basis = basis(perpetual.bars)
        assert mean_reverting(hourly_basis, horizon=24 * 7), perpetual.symbol
        half_life = np.log(0.5) / np.log(ar1_coefficient(hourly_basis))
        assert 2 < half_life < 48  # hours
        assert 0 < hourly_basis.mean() < 0.002 and np.abs(hourly_basis).max() < 0.05
        correlation = np.corrcoef(perpetual.funding.rates, premium_before_each_funding(perpetual))
        assert correlation[0, 1] > 0.3, perpetual.symbol


def test_open_interest_moves_with_the_price(demo: Demo) -> None:
    assets, perpetuals = demo
    for perpetual in perpetuals:
        bars = perpetual.bars
        changes = np.corrcoef(
            np.diff(np.log(bars.open_interest)), np.diff(np.log(bars.index_price))
        )
        assert changes[0, 1] > 0.5, perpetual.symbol
        supply = assets[perpetual.symbol].circulating_supply
        share = bars.open_interest / (bars.index_price * supply)
        assert 0.001 < share.min() and share.max() < 0.1  # a few percent of the coins


def test_the_checks_fail_on_series_without_the_property() -> None:
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.0001, 4380))
    assert not mean_reverting(walk, horizon=21)
    assert not mean_reverting(np.cumsum(rng.normal(0, 0.0001, 24 * DAYS)), horizon=24 * 7)


def test_the_same_market_and_seed_give_the_same_perpetuals() -> None:
    market = generate_demo_market(end_day_ms=END, days=30)
    first, second = generate_demo_perpetuals(market), generate_demo_perpetuals(market)
    other = generate_demo_perpetuals(market, seed=1)
    for a, b, c in zip(first, second, other, strict=True):
        np.testing.assert_array_equal(a.funding.rates, b.funding.rates)
        np.testing.assert_array_equal(a.bars.mark_price, b.bars.mark_price)
        assert not np.array_equal(a.funding.rates, c.funding.rates)
