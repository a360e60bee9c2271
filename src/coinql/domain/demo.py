"""A seeded synthetic market for the embedded demo: NOT market prices.

Calibrated to the real daily series (parameters in `demo_params.py`): per-asset volatility in a
calm and a turbulent regime that switch as a Markov chain, fat tails (Student-t marginals), and
the assets' correlation (a Gaussian copula). Each series is scaled so that its last close is the
asset's last real close, so magnitudes look familiar. Hourly candles of the last weeks are a
Brownian bridge inside each day, and the daily candles of those days are their aggregate, so the
two intervals agree. Two stablecoins hover around 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from coinql.domain.candles import DAY_MS, Candles, Interval, aggregate
from coinql.domain.demo_params import DEMO_PARAMS
from coinql.domain.typing import FloatArray

HOURS_PER_DAY = 24
STABLECOINS = (("USDT", "Tether"), ("USDC", "USD Coin"))
STABLECOIN_NOISE = 0.0004


@dataclass(frozen=True, slots=True)
class DemoAsset:
    """One asset of the demo market.

    Parameters
    ----------
    symbol, name : str
        The ticker ("BTC") and the asset's name.
    stablecoin : bool
        Whether it is one of the two stablecoins hovering around 1.
    circulating_supply : float
        Units in circulation, for the market cap.
    daily : Candles
        Daily candles, the last days being the aggregate of `hourly`.
    hourly : Candles
        Hourly candles of the last days.
    """

    symbol: str
    name: str
    stablecoin: bool
    circulating_supply: float
    daily: Candles
    hourly: Candles

    @property
    def market_cap(self) -> float:
        """Market cap at the last daily close: close times circulating supply."""
        return float(self.daily.close[-1] * self.circulating_supply)


def generate_demo_market(
    *, end_day_ms: int, days: int = 4 * 365, hourly_days: int = 21, seed: int = 20170101
) -> list[DemoAsset]:
    """Generate the demo market: 6 volatile assets and 2 stablecoins.

    The same arguments always give the same market.

    Parameters
    ----------
    end_day_ms : int
        Epoch milliseconds (UTC) of the opening of the last day.
    days : int, default 4 * 365
        Daily candles per asset, ending with that day.
    hourly_days : int, default 21
        Of those days, the last ones that also get hourly candles (capped at `days`).
    seed : int, default 20170101
        Seed of the random generator.

    Returns
    -------
    list of DemoAsset
        The assets in `DEMO_PARAMS` order, then USDT and USDC; each with `days` daily candles
        and `24 * hourly_days` hourly ones, all finite (no NaN).
    """
    rng = np.random.default_rng(seed)
    params: list[dict[str, Any]] = DEMO_PARAMS["assets"]
    n_assets = len(params)
    regimes = _regime_path(rng, days)
    # A multivariate Student-t: correlated normals over one shared chi-square mixing variable,
    # so that crashes hit every asset on the same day and the correlation is kept exactly.
    tail = float(np.mean([asset["tail_index"] for asset in params]))
    correlated = (
        rng.standard_normal((days, n_assets))
        @ np.linalg.cholesky(np.asarray(DEMO_PARAMS["correlation"])).T
    )
    mixing = np.sqrt(rng.chisquare(tail, days) / tail)[:, None]
    shocks = correlated / mixing * np.sqrt((tail - 2) / tail)
    first_day = end_day_ms - (days - 1) * DAY_MS
    day_opens = first_day + np.arange(days, dtype=np.int64) * DAY_MS
    assets = []
    for column, asset in enumerate(params):
        volatility = np.asarray(asset["volatility"])[regimes]
        log_returns = float(asset["drift"]) + volatility * shocks[:, column]
        daily, hourly = _candles(
            rng,
            day_opens,
            log_returns,
            volatility,
            float(asset["price"]),
            hourly_days,
            float(asset["quote_volume"]),
        )
        assets.append(
            DemoAsset(asset["symbol"], asset["name"], False, float(asset["supply"]), daily, hourly)
        )
    for symbol, name in STABLECOINS:
        log_returns = _mean_reverting(rng, days)
        volatility = np.full(days, STABLECOIN_NOISE)
        daily, hourly = _candles(rng, day_opens, log_returns, volatility, 1.0, hourly_days, 5e10)
        assets.append(
            DemoAsset(symbol, name, True, 8e10 if symbol == "USDT" else 3e10, daily, hourly)
        )
    return assets


def recent_volatility(closes: FloatArray, *, days: int = 90) -> float | None:
    """Measure the daily volatility the demo market continues at, over its last `days` returns.

    Parameters
    ----------
    closes : ndarray of shape (n_days,)
        Daily closes, oldest first; positive.
    days : int, default 90
        How many of the newest daily returns to measure (the last `days` + 1 closes).

    Returns
    -------
    float or None
        The sample standard deviation (ddof=1) of the log returns; None with fewer than three
        closes (two returns), too few to measure.
    """
    recent = closes[-(days + 1) :]
    if recent.size < 3:
        return None
    return float(np.std(np.diff(np.log(recent)), ddof=1))


def _regime_path(rng: np.random.Generator, days: int) -> Any:
    transitions = np.asarray(DEMO_PARAMS["regime_transitions"])
    draws = rng.random(days)
    path = np.empty(days, dtype=np.int64)
    state = 0
    for day in range(days):  # a Markov chain is sequential; `days` is a few thousand at most
        path[day] = state
        state = int(draws[day] >= transitions[state, 0])
    return path


def _mean_reverting(rng: np.random.Generator, days: int) -> FloatArray:
    """Log returns of a price pulled back towards 1 (an AR(1) log price)."""
    level = np.zeros(days + 1)
    noise = rng.normal(0.0, STABLECOIN_NOISE, days)
    for day in range(days):
        level[day + 1] = 0.7 * level[day] + noise[day]
    return np.diff(level)


def _candles(
    rng: np.random.Generator,
    day_opens: Any,
    log_returns: FloatArray,
    volatility: FloatArray,
    last_price: float,
    hourly_days: int,
    quote_volume: float,
) -> tuple[Candles, Candles]:
    days = log_returns.size
    log_close = np.cumsum(log_returns)
    log_close += np.log(last_price) - log_close[-1]
    log_open = np.concatenate([[log_close[0] - log_returns[0]], log_close[:-1]])
    daily = _bars(rng, day_opens, log_open, log_close, volatility, quote_volume)

    # The last `hourly_days` days: a Brownian bridge from each day's open to its close.
    hourly_days = min(hourly_days, days)
    recent = slice(days - hourly_days, days)
    sigma = volatility[recent, None] / np.sqrt(HOURS_PER_DAY)
    steps = rng.standard_normal((hourly_days, HOURS_PER_DAY)) * sigma
    steps += (log_returns[recent, None] - steps.sum(axis=1, keepdims=True)) / HOURS_PER_DAY
    path = log_open[recent, None] + np.cumsum(steps, axis=1)
    hour_close = path.ravel()
    hour_open = np.concatenate([[log_open[recent][0]], hour_close[:-1]])
    hour_opens = (
        day_opens[recent, None] + np.arange(HOURS_PER_DAY, dtype=np.int64) * (DAY_MS // 24)
    ).ravel()
    hourly = _bars(
        rng,
        hour_opens,
        hour_open,
        hour_close,
        np.repeat(sigma[:, 0], HOURS_PER_DAY),
        quote_volume / 24,
    )
    from_hours = aggregate(hourly, Interval.H1, Interval.D1)
    keep = day_opens < from_hours.timestamps[0] if len(from_hours) else np.ones(days, bool)
    merged = Candles(
        *(
            np.concatenate([getattr(daily, name)[keep], getattr(from_hours, name)])
            for name in ("timestamps", "open", "high", "low", "close", "volume", "quote_volume")
        )
    )
    return merged, hourly


def _bars(
    rng: np.random.Generator,
    opens_ms: Any,
    log_open: FloatArray,
    log_close: FloatArray,
    volatility: FloatArray,
    quote_volume: float,
) -> Candles:
    """OHLCV bars: highs and lows reach beyond open and close by half-normal excursions."""
    count = log_open.size
    upper = np.abs(rng.standard_normal(count)) * volatility * 0.5
    lower = np.abs(rng.standard_normal(count)) * volatility * 0.5
    open_, close = np.exp(log_open), np.exp(log_close)
    high = np.maximum(open_, close) * np.exp(upper)
    low = np.minimum(open_, close) * np.exp(-lower)
    activity = np.abs(log_close - log_open) / np.maximum(volatility, 1e-12)
    quote = quote_volume * np.exp(rng.normal(0.0, 0.3, count)) * (0.6 + 0.4 * activity)
    typical = (high + low + close) / 3
    return Candles(
        np.asarray(opens_ms, dtype=np.int64), open_, high, low, close, quote / typical, quote
    )
