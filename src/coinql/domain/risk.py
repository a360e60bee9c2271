"""Risk: tail risk of a return stream, ex-ante risk of a weighted basket, what limits watch.

VaR and expected shortfall are positive loss fractions (0.05 = a 5 % loss) at a confidence
`level` such as 0.95, computed from the finite returns only (NaN is missing, and so is ±inf,
a return from a zero price); NaN below the observations a method needs. Covariance estimators
are in `coinql.domain.covariance` (per period), stress scenarios in `coinql.domain.stress`;
volatilities here are annualised by sqrt(P).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from coinql.domain import distribution
from coinql.domain.typing import FloatArray

CORNISH_FISHER_GRID = 2_000


class VarMethod(StrEnum):
    """How `value_at_risk` and `expected_shortfall` model the return distribution."""

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
    """Tell whether the Cornish-Fisher expansion is increasing over the lower half.

    Outside that domain (very large skew or kurtosis) its quantiles are not quantiles at all,
    and a "VaR" from it can even be a gain, so coinql reports it as undefined instead.

    Parameters
    ----------
    skew : float
        The bias-adjusted sample skewness.
    excess_kurtosis : float
        The bias-adjusted sample excess kurtosis.

    Returns
    -------
    bool
        Whether the expanded z increases on a grid of 400 normal quantiles from 1e-4 to 0.5.
    """
    return bool(np.all(np.diff(_cornish_fisher_z(_VALIDITY_GRID, skew, excess_kurtosis)) > 0))


def _moments(values: FloatArray) -> tuple[float, float, float, float]:
    """Return the mean, sample std (ddof 1), bias-adjusted skew and excess kurtosis.

    The skew and kurtosis are taken as 0 when they are undefined, e.g. for constant returns,
    where the std is 0 anyway.
    """
    skew, kurtosis = float(distribution.skew(values)), float(distribution.kurtosis(values))
    return (
        float(np.mean(values)),
        float(np.std(values, ddof=1)),
        0.0 if np.isnan(skew) else skew,
        0.0 if np.isnan(kurtosis) else kurtosis,
    )


def value_at_risk(returns: FloatArray, level: float, method: VarMethod) -> float:
    """Compute the loss not exceeded with probability `level`, as a positive fraction.

    HISTORICAL: minus the (1 - level) percentile of the returns, linearly interpolated.
    GAUSSIAN: minus (mean + z * std), z the normal (1 - level) quantile, std with ddof 1.
    CORNISH_FISHER: the same with z adjusted for the sample's skew and excess kurtosis.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        Non-finite returns (NaN, ±inf) are left out.
    level : float
        The confidence, strictly between 0 and 1, e.g. 0.95.
    method : VarMethod

    Returns
    -------
    float
        NaN with fewer than 2 finite returns (4 for Cornish-Fisher), and for Cornish-Fisher
        when the skew and kurtosis are outside the expansion's domain of validity
        (`cornish_fisher_valid`). Negative when even the tail is a gain.

    Raises
    ------
    ValueError
        When `level` is not strictly between 0 and 1.
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
    """Compute the mean loss in the worst (1 - level) of outcomes, as a positive fraction.

    HISTORICAL: minus the mean of the k = floor((n - 1) (1 - level)) + 1 lowest returns: the
    tail up to and including the observation at the VaR's interpolation point (empyrical's
    `conditional_value_at_risk` with cutoff 1 - level; ties at the boundary count once per
    observation). See `_tail_count` for the boundary.
    GAUSSIAN: std * pdf(z) / (1 - level) - mean.
    CORNISH_FISHER: minus the mean of the Cornish-Fisher quantile function over the tail
    (a 2,000-point midpoint rule).

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)
        Non-finite returns (NaN, ±inf) are left out.
    level : float
        The confidence, strictly between 0 and 1, e.g. 0.95.
    method : VarMethod

    Returns
    -------
    float
        NaN with fewer than 2 finite returns (4 for Cornish-Fisher), and for Cornish-Fisher
        outside the expansion's domain of validity.

    Raises
    ------
    ValueError
        When `level` is not strictly between 0 and 1.
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


@dataclass(frozen=True, slots=True)
class BasketRisk:
    """Ex-ante risk of weights w under covariance S, annualised by sqrt(P).

    Attributes
    ----------
    volatility : float
        sqrt(w' S w x P).
    marginal : ndarray of shape (n_assets,)
        d(volatility) / d(w); zeros when the volatility is 0.
    contributions : ndarray of shape (n_assets,)
        w * marginal, summing to `volatility`.
    diversification_ratio : float
        sum(|w| x each asset's volatility) / volatility; NaN when the volatility is 0.
    """

    volatility: float
    marginal: FloatArray
    contributions: FloatArray
    diversification_ratio: float


def basket_risk(weights: FloatArray, cov: FloatArray, periods_per_year: float) -> BasketRisk:
    """Compute the ex-ante volatility of a basket and each asset's contribution to it.

    Parameters
    ----------
    weights : ndarray of shape (n_assets,)
    cov : ndarray of shape (n_assets, n_assets)
        Per-period covariance of the assets' returns, expected finite.
    periods_per_year : float

    Returns
    -------
    BasketRisk
    """
    annual = cov * periods_per_year
    variance = float(weights @ annual @ weights)
    volatility = float(np.sqrt(max(variance, 0.0)))
    if volatility == 0:
        zeros = np.zeros_like(weights)
        return BasketRisk(0.0, zeros, zeros, np.nan)
    marginal = annual @ weights / volatility
    standalone = float(np.abs(weights) @ np.sqrt(np.diag(annual)))
    return BasketRisk(volatility, marginal, weights * marginal, standalone / volatility)


def undefined_reasons(returns: FloatArray) -> dict[str, str]:
    """Say why tail-risk measures of `returns` are undefined, by method.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,)

    Returns
    -------
    dict of str to str
        Keyed by `VarMethod` value: exactly the methods whose VaR and expected shortfall are
        NaN for these returns (at any level), each with the reason.
    """
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
    """Measure what risk limits watch, as positive fractions, from a NAV history ending now.

    Parameters
    ----------
    values : ndarray of shape (n_observations,)
        The portfolio's values, oldest first; non-finite ones are left out.
    weights : ndarray of shape (n_assets,)
        The positions' current weights.
    day_start_value : float or None
        The value at the start of the day; None (or 0) when unknown.

    Returns
    -------
    dict of str to float
        ``max_drawdown``: the current drawdown from the peak (with a positive peak);
        ``value_at_risk_99``: the 1-period historical VaR 99 of the values' returns (with
        more than 2 values); ``max_position_weight``: the largest weight (with positions);
        ``daily_loss``: the loss since the start of the day. A key is left out when its
        inputs are missing; drawdown and loss are floored at 0.
    """
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
