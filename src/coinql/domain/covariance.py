"""Covariance of asset returns: the estimators, correlation and principal components.

`returns` is an ndarray of shape (n_observations, n_assets) of per-period returns aligned on
shared timestamps; every estimator uses the complete rows only (a row holding a NaN is left
out whole, as `complete_rows` does) and needs at least two of them: with fewer the estimate
is NaN or degenerate. Covariances are per period (annualise by multiplying by P).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from coinql.domain.typing import FloatArray

EWMA_DEFAULT_DECAY = 0.94


class CovarianceMethod(StrEnum):
    """The estimators `covariance` chooses from."""

    SAMPLE = "SAMPLE"
    EWMA = "EWMA"
    LEDOIT_WOLF = "LEDOIT_WOLF"


def complete_rows(returns: FloatArray) -> FloatArray:
    """Keep the rows where every asset has a return.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)

    Returns
    -------
    ndarray of shape (n_complete, n_assets)
        The rows without NaN, in order.
    """
    return returns[~np.isnan(returns).any(axis=1)]


def sample_covariance(returns: FloatArray) -> FloatArray:
    """Estimate the sample covariance (ddof 1) over the complete rows.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        NaN below two complete rows.
    """
    return np.atleast_2d(np.cov(complete_rows(returns), rowvar=False, ddof=1))


def ewma_covariance(returns: FloatArray, decay: float = EWMA_DEFAULT_DECAY) -> FloatArray:
    """Estimate RiskMetrics' exponentially weighted covariance around a zero mean.

    sum_t w_t r_t r_t' over the complete rows, w_t = decay ** (T - 1 - t) normalised to sum
    to one (the newest row has age 0). Zero-mean as RiskMetrics (1996): centring on the
    weighted mean without a bias correction would shrink the estimate by 1 - sum(w ** 2), a
    third at decay 0.5, and daily means are noise next to daily volatility anyway. Equals
    pandas' `ewm(alpha=1 - decay).mean()` of the cross products r_i r_j.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
    decay : float, default 0.94
        The weight of each row relative to the next newer one.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        NaN without complete rows.

    Raises
    ------
    ValueError
        When `decay` is not strictly between 0 and 1 (NaN included).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be between 0 and 1 (exclusive), got {decay}")
    rows = complete_rows(returns)
    weights = decay ** np.arange(rows.shape[0] - 1, -1, -1, dtype=np.float64)
    weights /= weights.sum()
    result: FloatArray = (rows * weights[:, None]).T @ rows
    return result


def ledoit_wolf_covariance(returns: FloatArray) -> tuple[FloatArray, float]:
    """Shrink the covariance towards a scaled identity (Ledoit and Wolf, 2004).

    As scikit-learn's `LedoitWolf`: centred data, maximum-likelihood (ddof 0) covariance.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)

    Returns
    -------
    covariance : ndarray of shape (n_assets, n_assets)
        NaN without complete rows.
    shrinkage : float
        The weight of the target, in [0, 1].
    """
    rows = complete_rows(returns)
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
    """Estimate the covariance with the chosen method.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
    method : CovarianceMethod
    decay : float, default 0.94
        For EWMA only.

    Returns
    -------
    ndarray of shape (n_assets, n_assets)

    Raises
    ------
    ValueError
        For EWMA with a `decay` outside (0, 1).
    """
    if method is CovarianceMethod.SAMPLE:
        return sample_covariance(returns)
    if method is CovarianceMethod.EWMA:
        return ewma_covariance(returns, decay)
    return ledoit_wolf_covariance(returns)[0]


def correlation_from(cov: FloatArray) -> FloatArray:
    """Scale a covariance matrix to correlations.

    Parameters
    ----------
    cov : ndarray of shape (n_assets, n_assets)

    Returns
    -------
    ndarray of shape (n_assets, n_assets)
        Ones on the diagonal; NaN off it for an asset with zero variance.
    """
    scale = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        result = cov / np.outer(scale, scale)
    np.fill_diagonal(result, 1.0)
    return result


@dataclass(frozen=True, slots=True)
class Pca:
    """Principal components of the covariance of returns.

    Attributes
    ----------
    explained_variance_ratio : ndarray of shape (n_components,)
        Each component's share of the total variance; NaN when the returns do not vary.
    loadings : ndarray of shape (n_components, n_assets)
        Unit rows; each row's largest-magnitude entry is positive.
    """

    explained_variance_ratio: FloatArray
    loadings: FloatArray


def pca(returns: FloatArray, components: int) -> Pca:
    """Decompose the centred complete rows by singular value decomposition.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
    components : int
        At most this many, and at most min(n_complete, n_assets).

    Returns
    -------
    Pca
    """
    rows = complete_rows(returns)
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
