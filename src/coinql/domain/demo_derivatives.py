"""Seeded synthetic perpetual futures for the demo market's assets: NOT market data.

Each volatile demo asset gets a perpetual over the whole span of its daily candles:

- an hourly spot index, a Brownian bridge inside each day from its open to its close (the
  hourly candles' closes where the demo has them), so that it closes each day at the day's
  close and each hour at the hour's close;
- an hourly basis, an AR(1) around a small premium whose shocks lean with the hour's return
  (rallies lift the premium), and the mark price index * (1 + basis);
- a funding every 8 hours (00:00, 08:00, 16:00 UTC), an AR(1) around a small positive mean
  (longs paying, as on most exchanges most of the time) driven by the basis of the 8 hours
  before it, so that the two move together;
- hourly open interest in USD: contracts whose log deviation is a slow AR(1) fed by the
  returns, times the index, so that it moves with the price.

Volatilities scale with each asset's daily volatility relative to a BTC-like 3.5 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from coinql.domain.demo import HOURS_PER_DAY, DemoAsset
from coinql.domain.derivatives import (
    FUNDING_PERIOD_MS,
    HOUR_MS,
    FundingRates,
    PerpetualBars,
)
from coinql.domain.typing import FloatArray

REFERENCE_VOLATILITY = 0.035  # daily, BTC-like: the scale of the parameters below
BASIS_MEAN = 0.0003
BASIS_PERSISTENCE = 0.95  # per hour: a half-life of about 13.5 hours
BASIS_SHOCK = 0.00012
BASIS_RETURN_LOADING = 0.5  # correlation of a basis shock with the hour's standardized return
FUNDING_MEAN = 0.0001  # 0.01 % per 8 hours, the usual interest component
FUNDING_PERSISTENCE = 0.5  # per funding period
FUNDING_BASIS_LOADING = 0.1
FUNDING_SHOCK = 0.00005
CONTRACTS_PERSISTENCE = 0.998  # per hour: a half-life of about two weeks
CONTRACTS_RETURN_LOADING = 0.5
CONTRACTS_SHOCK = 0.006
HOURS_PER_FUNDING = FUNDING_PERIOD_MS // HOUR_MS


@dataclass(frozen=True, slots=True)
class DemoPerpetual:
    """The demo perpetual of one asset.

    Parameters
    ----------
    symbol : str
        The asset's ticker ("BTC").
    contract : str
        The perpetual's symbol, in ccxt's notation ("BTC/USD:USD").
    funding : FundingRates
        A funding every 8 hours over the asset's daily history.
    bars : PerpetualBars
        Hourly open interest, mark and index over the same span.
    """

    symbol: str
    contract: str
    funding: FundingRates
    bars: PerpetualBars


def generate_demo_perpetuals(
    assets: Sequence[DemoAsset], *, seed: int = 20170108
) -> list[DemoPerpetual]:
    """Generate a perpetual for each volatile demo asset (stablecoins have none).

    The same assets and seed always give the same perpetuals.

    Parameters
    ----------
    assets : sequence of DemoAsset
        The demo market (`coinql.domain.demo.generate_demo_market`); daily candles opening at
        00:00 UTC, consecutive.
    seed : int, default 20170108
        Seed of the random generator.

    Returns
    -------
    list of DemoPerpetual
        In the order of `assets`, without the stablecoins; for an asset of n_days daily
        candles, 24 * n_days hourly bars (the first opening with its first day) and
        3 * n_days fundings (the first 8 hours in, the last at the close of its last day),
        all finite, open interest and prices positive.
    """
    rng = np.random.default_rng(seed)
    return [_perpetual(rng, asset) for asset in assets if not asset.stablecoin]


def _perpetual(rng: np.random.Generator, asset: DemoAsset) -> DemoPerpetual:
    daily = asset.daily
    days = len(daily)
    log_close = np.log(daily.close)
    daily_volatility = float(np.std(np.diff(log_close), ddof=1)) if days > 2 else 0.0
    hourly_volatility = max(daily_volatility, 1e-6) / np.sqrt(HOURS_PER_DAY)
    scale = max(daily_volatility, 1e-6) / REFERENCE_VOLATILITY

    opens = (daily.timestamps[:, None] + np.arange(HOURS_PER_DAY) * HOUR_MS).ravel()
    log_index = _hourly_index(rng, np.log(daily.open), log_close, hourly_volatility)
    # Where the demo has hourly candles, the index is their close exactly.
    known = np.searchsorted(opens, asset.hourly.timestamps)
    inside = (known < opens.size) & (
        opens[np.minimum(known, opens.size - 1)] == asset.hourly.timestamps
    )
    log_index[known[inside]] = np.log(asset.hourly.close[inside])
    returns = np.diff(log_index, prepend=np.log(daily.open[0]))
    standardized = returns / hourly_volatility

    shocks = BASIS_RETURN_LOADING * standardized + np.sqrt(
        1 - BASIS_RETURN_LOADING**2
    ) * rng.standard_normal(opens.size)
    basis = BASIS_MEAN + _ar1(BASIS_PERSISTENCE, BASIS_SHOCK * scale * shocks)

    premium = basis.reshape(-1, HOURS_PER_FUNDING).mean(axis=1) - BASIS_MEAN
    funding_noise = FUNDING_SHOCK * scale * rng.standard_normal(premium.size)
    rates = FUNDING_MEAN + _ar1(
        FUNDING_PERSISTENCE, FUNDING_BASIS_LOADING * premium + funding_noise
    )
    funding_times = daily.timestamps[0] + np.arange(1, premium.size + 1) * FUNDING_PERIOD_MS

    contracts = _ar1(
        CONTRACTS_PERSISTENCE,
        CONTRACTS_RETURN_LOADING * returns + CONTRACTS_SHOCK * rng.standard_normal(opens.size),
    )
    share = rng.uniform(0.005, 0.02)  # of the circulating supply held in open contracts
    index = np.exp(log_index)
    open_interest = share * asset.circulating_supply * np.exp(contracts) * index
    bars = PerpetualBars(opens.astype(np.int64), open_interest, index * (1 + basis), index)
    funding = FundingRates(funding_times.astype(np.int64), rates)
    return DemoPerpetual(asset.symbol, f"{asset.symbol}/USD:USD", funding, bars)


def _hourly_index(
    rng: np.random.Generator, log_open: FloatArray, log_close: FloatArray, volatility: float
) -> FloatArray:
    """Compute the log index at the close of each hour of each day.

    A Brownian bridge inside each day from its open to its close, so that the day's last
    hour closes at the day's close.
    """
    days = log_open.size
    walk = np.cumsum(rng.standard_normal((days, HOURS_PER_DAY)) * volatility, axis=1)
    through_day = np.arange(1, HOURS_PER_DAY + 1) / HOURS_PER_DAY
    bridge = walk - through_day * walk[:, -1:]
    drift = log_open[:, None] + through_day * (log_close - log_open)[:, None]
    result: FloatArray = (drift + bridge).ravel()
    return result


def _ar1(persistence: float, shocks: FloatArray) -> FloatArray:
    """x[t] = persistence * x[t - 1] + shocks[t], from x[-1] = 0 (a linear filter, no loop)."""
    result: FloatArray = lfilter([1.0], [1.0, -persistence], shocks)
    return result
