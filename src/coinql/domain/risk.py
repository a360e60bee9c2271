"""Risk: tail risk of a return stream, ex-ante risk of a weighted basket, PCA and stress.

VaR and expected shortfall are positive loss fractions (0.05 = a 5 % loss) at a confidence
`level` such as 0.95, computed from the finite returns only (NaN is missing, and so is ±inf,
a return from a zero price); NaN below the observations a method needs. Covariances are per
period; volatilities are annualised by sqrt(P).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from coinql.domain import distribution
from coinql.domain.typing import FloatArray, IntArray

CORNISH_FISHER_GRID = 2_000
EWMA_DEFAULT_DECAY = 0.94


class VarMethod(StrEnum):
    HISTORICAL = "HISTORICAL"
    GAUSSIAN = "GAUSSIAN"
    CORNISH_FISHER = "CORNISH_FISHER"


def _clean(returns: FloatArray) -> FloatArray:
    return returns[np.isfinite(returns)]


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    return 1.0 - level


def _cornish_fisher_z(z: Any, skew: float, excess_kurtosis: float) -> Any:
    return (
        z
        + (z**2 - 1) * skew / 6
        + (z**3 - 3 * z) * excess_kurtosis / 24
        - (2 * z**3 - 5 * z) * skew**2 / 36
    )


_VALIDITY_GRID = stats.norm.ppf(np.linspace(1e-4, 0.5, 400))


def cornish_fisher_valid(skew: float, excess_kurtosis: float) -> bool:
    """Whether the expansion is increasing over the lower half of the distribution. Outside
    that domain (very large skew or kurtosis) its quantiles are not quantiles at all, and a
    "VaR" from it can even be a gain, so coinql reports it as undefined instead."""
    return bool(np.all(np.diff(_cornish_fisher_z(_VALIDITY_GRID, skew, excess_kurtosis)) > 0))


def _moments(values: FloatArray) -> tuple[float, float, float, float]:
    """Mean, sample std (ddof 1), and the bias-adjusted skew and excess kurtosis (taken as 0
    when they are undefined, e.g. for constant returns, where the std is 0 anyway)."""
    skew, kurtosis = float(distribution.skew(values)), float(distribution.kurtosis(values))
    return (
        float(np.mean(values)),
        float(np.std(values, ddof=1)),
        0.0 if np.isnan(skew) else skew,
        0.0 if np.isnan(kurtosis) else kurtosis,
    )


def value_at_risk(returns: FloatArray, level: float, method: VarMethod) -> float:
    """The loss not exceeded with probability `level`, as a positive fraction.

    HISTORICAL: the (1 - level) percentile of the returns, linearly interpolated.
    GAUSSIAN: mean + z * std with z the normal (1 - level) quantile.
    CORNISH_FISHER: the same with z adjusted for the sample's skew and excess kurtosis.
    NaN with fewer than 2 observations (4 for Cornish-Fisher), and for Cornish-Fisher when the
    skew and kurtosis are outside the expansion's domain of validity.
    """
    tail = _check_level(level)
    values = _clean(returns)
    if values.size < 2:
        return np.nan
    if method is VarMethod.HISTORICAL:
        return float(-np.percentile(values, 100 * tail))
    mean, std, skew, kurtosis = _moments(values)
    z = stats.norm.ppf(tail)
    if method is VarMethod.CORNISH_FISHER:
        if values.size < 4 or not cornish_fisher_valid(skew, kurtosis):
            return np.nan
        z = _cornish_fisher_z(z, skew, kurtosis)
    return float(-(mean + z * std))


def _tail_count(n: int, tail: float) -> int:
    """floor((n - 1) x tail) + 1, the product taken as the integer it is within 1e-9 of.

    In floating point 1 - 0.9 is 0.09999999999999998, so for n = 1001 the product is
    99.99999999999997 and a plain floor would drop the boundary observation that the
    decimal level (and empyrical given cutoff=0.1) includes. Rounding errors here are below
    n x 2.2e-16; a real fractional part of (n - 1) x tail, for a level with up to 8 decimals,
    is at least 1e-8.
    """
    position = (n - 1) * tail
    nearest = round(position)
    return int(nearest if abs(position - nearest) <= 1e-9 else position) + 1


def expected_shortfall(returns: FloatArray, level: float, method: VarMethod) -> float:
    """The mean loss in the worst (1 - level) of outcomes, as a positive fraction.

    HISTORICAL: the mean of the k = floor((n - 1) (1 - level)) + 1 lowest returns: the tail
    up to and including the observation at the VaR's interpolation point (empyrical's
    `conditional_value_at_risk` with cutoff 1 - level; ties at the boundary count once per
    observation). See `_tail_count` for the boundary.
    GAUSSIAN: std * pdf(z) / (1 - level) - mean.
    CORNISH_FISHER: the mean of the Cornish-Fisher quantile function over the tail.
    """
    tail = _check_level(level)
    values = _clean(returns)
    if values.size < 2:
        return np.nan
    if method is VarMethod.HISTORICAL:
        count = _tail_count(values.size, tail)
        return float(-np.mean(np.partition(values, count - 1)[:count]))
    mean, std, skew, kurtosis = _moments(values)
    if method is VarMethod.GAUSSIAN:
        z = stats.norm.ppf(tail)
        return float(std * stats.norm.pdf(z) / tail - mean)
    if values.size < 4 or not cornish_fisher_valid(skew, kurtosis):
        return np.nan
    # Midpoints of the tail probabilities: the mean quantile over (0, 1 - level).
    probabilities = (np.arange(CORNISH_FISHER_GRID) + 0.5) / CORNISH_FISHER_GRID * tail
    quantiles = mean + _cornish_fisher_z(stats.norm.ppf(probabilities), skew, kurtosis) * std
    return float(-np.mean(quantiles))


class CovarianceMethod(StrEnum):
    SAMPLE = "SAMPLE"
    EWMA = "EWMA"
    LEDOIT_WOLF = "LEDOIT_WOLF"


def _complete_rows(returns: FloatArray) -> FloatArray:
    return returns[~np.isnan(returns).any(axis=1)]


def sample_covariance(returns: FloatArray) -> FloatArray:
    """Sample covariance (ddof 1) of returns of shape (n_observations, n_assets)."""
    return np.atleast_2d(np.cov(_complete_rows(returns), rowvar=False, ddof=1))


def ewma_covariance(returns: FloatArray, decay: float = EWMA_DEFAULT_DECAY) -> FloatArray:
    """RiskMetrics' exponentially weighted covariance of returns of shape (n_observations,
    n_assets): sum_t w_t r_t r_t' over the complete rows, w_t = decay ** (T - 1 - t)
    normalised to sum to one (the newest row has age 0), around a zero mean.

    Zero-mean as RiskMetrics (1996): centring on the weighted mean without a bias correction
    would shrink the estimate by 1 - sum(w ** 2), a third at decay 0.5, and daily means are
    noise next to daily volatility anyway. Equals pandas' `ewm(alpha=1 - decay).mean()` of
    the cross products r_i r_j.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be between 0 and 1 (exclusive), got {decay}")
    rows = _complete_rows(returns)
    weights = decay ** np.arange(rows.shape[0] - 1, -1, -1, dtype=np.float64)
    weights /= weights.sum()
    result: FloatArray = (rows * weights[:, None]).T @ rows
    return result


def ledoit_wolf_covariance(returns: FloatArray) -> tuple[FloatArray, float]:
    """Ledoit-Wolf (2004) shrinkage towards a scaled identity, as scikit-learn's
    `LedoitWolf` (centred data, maximum-likelihood covariance). Returns (covariance,
    shrinkage)."""
    rows = _complete_rows(returns)
    n, p = rows.shape
    centered = rows - rows.mean(axis=0)
    empirical = centered.T @ centered / n
    mu = np.trace(empirical) / p
    squared = centered**2
    beta_ = np.sum(squared.T @ squared) / n - np.sum(empirical**2)
    delta = np.sum(empirical**2) - 2 * mu * np.trace(empirical) + p * mu**2
    beta_ = min(beta_ / n, delta)
    shrinkage = 0.0 if delta == 0 else beta_ / delta
    covariance = (1 - shrinkage) * empirical
    covariance.flat[:: p + 1] += shrinkage * mu
    return covariance, float(shrinkage)


def covariance(
    returns: FloatArray, method: CovarianceMethod, *, decay: float = EWMA_DEFAULT_DECAY
) -> FloatArray:
    if method is CovarianceMethod.SAMPLE:
        return sample_covariance(returns)
    if method is CovarianceMethod.EWMA:
        return ewma_covariance(returns, decay)
    return ledoit_wolf_covariance(returns)[0]


def correlation_from(cov: FloatArray) -> FloatArray:
    scale = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        result = cov / np.outer(scale, scale)
    np.fill_diagonal(result, 1.0)
    return result


@dataclass(frozen=True, slots=True)
class BasketRisk:
    """Ex-ante risk of weights w under covariance S, annualised by sqrt(P).

    marginal : d(volatility) / d(w), shape (n_assets,)
    contributions : w * marginal, summing to `volatility`
    """

    volatility: float
    marginal: FloatArray
    contributions: FloatArray
    diversification_ratio: float


def basket_risk(weights: FloatArray, cov: FloatArray, periods_per_year: float) -> BasketRisk:
    annual = cov * periods_per_year
    variance = float(weights @ annual @ weights)
    volatility = float(np.sqrt(max(variance, 0.0)))
    if volatility == 0:
        zeros = np.zeros_like(weights)
        return BasketRisk(0.0, zeros, zeros, np.nan)
    marginal = annual @ weights / volatility
    standalone = float(np.abs(weights) @ np.sqrt(np.diag(annual)))
    return BasketRisk(volatility, marginal, weights * marginal, standalone / volatility)


@dataclass(frozen=True, slots=True)
class Pca:
    """Principal components of the covariance of returns.

    explained_variance_ratio : shape (n_components,)
    loadings : shape (n_components, n_assets); each row's largest-magnitude entry is positive
    """

    explained_variance_ratio: FloatArray
    loadings: FloatArray


def pca(returns: FloatArray, components: int) -> Pca:
    rows = _complete_rows(returns)
    centered = rows - rows.mean(axis=0)
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    variance = singular**2
    components = min(components, vt.shape[0])
    loadings = vt[:components]
    # Sign-normalise so that results are stable: the largest |loading| is positive.
    signs = np.sign(loadings[np.arange(components), np.argmax(np.abs(loadings), axis=1)])
    signs[signs == 0] = 1.0
    total = variance.sum()
    ratio = variance[:components] / total if total > 0 else np.full(components, np.nan)
    return Pca(ratio, loadings * signs[:, None])


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    basket_return: float
    window: int | None = None
    start: int | None = None
    end: int | None = None


def worst_window(closes: FloatArray, window: int) -> tuple[int, int] | None:
    """(start, end) indexes of the worst `window`-period price change of a close series."""
    if closes.shape[0] <= window:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        change = closes[window:] / closes[:-window] - 1
    if np.all(np.isnan(change)):
        return None
    end = int(np.nanargmin(change)) + window
    return end - window, end


def historical_scenarios(
    timestamps: IntArray,
    closes: FloatArray,
    weights: FloatArray,
    *,
    anchor: int = 0,
    windows: tuple[int, ...] = (1, 7, 30),
) -> list[Scenario]:
    """Replay the anchor asset's worst 1-, 7- and 30-period moves on today's weights.

    closes : shape (n_observations, n_assets), aligned on `timestamps`
    Each asset's own move over the same window is applied to its weight.
    """
    scenarios = []
    for window in windows:
        found = worst_window(closes[:, anchor], window)
        if found is None:
            continue
        start, end = found
        with np.errstate(divide="ignore", invalid="ignore"):
            moves = closes[end] / closes[start] - 1
        scenarios.append(
            Scenario(
                name=f"worst {window}-period move of asset {anchor}",
                basket_return=float(np.nansum(weights * moves)),
                window=window,
                start=int(timestamps[start]),
                end=int(timestamps[end]),
            )
        )
    return scenarios


def beta_shock(returns: FloatArray, weights: FloatArray, *, anchor: int, shock: float) -> float:
    """The basket return when the anchor moves by `shock` and every asset moves by its beta
    to the anchor times the shock (the anchor's own beta is 1)."""
    rows = _complete_rows(returns)
    if rows.shape[0] < 2:
        return np.nan
    factor = rows[:, anchor] - rows[:, anchor].mean()
    variance = np.mean(factor**2)
    if variance == 0:
        return np.nan
    betas = (factor @ (rows - rows.mean(axis=0))) / rows.shape[0] / variance
    return float(weights @ (betas * shock))


def undefined_reasons(returns: FloatArray) -> dict[str, str]:
    """Why tail-risk measures of 1-D `returns` are undefined, by method name."""
    values = _clean(returns)
    if values.size < 2:
        return {method.value: "needs at least 2 observations" for method in VarMethod}
    if values.size < 4:
        return {VarMethod.CORNISH_FISHER.value: "needs at least 4 observations"}
    _, _, skew, kurtosis = _moments(values)
    if not cornish_fisher_valid(skew, kurtosis):
        return {
            VarMethod.CORNISH_FISHER.value: f"skew {skew:.2f} and excess kurtosis {kurtosis:.2f}"
            " are outside the Cornish-Fisher expansion's domain of validity"
        }
    return {}


def limit_observations(
    values: FloatArray, weights: FloatArray, day_start_value: float | None
) -> dict[str, float]:
    """What risk limits watch, as positive fractions, from a NAV history ending now:
    the current drawdown from the peak, the 1-period historical VaR 99 of the NAV's returns,
    the largest position weight and the loss since the start of the day."""
    found: dict[str, float] = {}
    clean = values[np.isfinite(values)]
    if clean.size:
        peak = float(np.max(clean))
        if peak > 0:
            found["max_drawdown"] = max(0.0, 1.0 - float(clean[-1]) / peak)
    if clean.size > 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = clean[1:] / clean[:-1] - 1.0
        var = value_at_risk(returns[np.isfinite(returns)], 0.99, VarMethod.HISTORICAL)
        if np.isfinite(var):
            found["value_at_risk_99"] = var
    if weights.size:
        found["max_position_weight"] = float(np.max(weights))
    if day_start_value and clean.size:
        found["daily_loss"] = max(0.0, 1.0 - float(clean[-1]) / day_start_value)
    return found
