"""Portfolio optimization: the objectives, risk parity, HRP and the simple allocations.

`optimal_weights` dispatches an `Objective` to its solver: the mean-variance ones are in
`coinql.domain.mean_variance`, the tail-risk ones (MIN_CVAR, MIN_CDAR) in `coinql.domain.cvar`,
the risk-based and simple allocations here. Inputs are
annualised: `mu` of shape (n_assets,) (arithmetic mean return x P, `expected_returns`) and
`cov` of shape (n_assets, n_assets) (per-period covariance x P). Weights sum to 1 and respect
the constraints (`coinql.domain.constraints`); an impossible constraint set raises
`Infeasible`, naming the constraint, and a bound or group cap that is not a finite number
raises `InvalidInput` naming it. A function's docstring names only what is its own beyond
these `mu`, `cov`, `constraints`, weights (ndarray of shape (n_assets,)) and errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.optimize import minimize
from scipy.spatial.distance import squareform

from coinql.domain.constraints import (
    MAX_ITERATIONS,
    Constraints,
    Infeasible,
    bounded,
    check_feasible,
    clean,
    solve,
)
from coinql.domain.cvar import (
    conditional_drawdown_at_risk,
    conditional_value_at_risk,
    min_cdar,
    min_cvar,
)
from coinql.domain.errors import InvalidInput
from coinql.domain.mean_variance import (
    L2_GAMMA,
    check_l2_gamma,
    efficient_return,
    efficient_risk,
    max_sharpe,
    min_volatility,
)
from coinql.domain.typing import FloatArray


class Objective(StrEnum):
    """What `optimal_weights` optimizes or allocates by."""

    MIN_VOLATILITY = "MIN_VOLATILITY"
    MAX_SHARPE = "MAX_SHARPE"
    TARGET_RETURN = "TARGET_RETURN"
    TARGET_VOLATILITY = "TARGET_VOLATILITY"
    RISK_PARITY = "RISK_PARITY"
    HRP = "HRP"
    EQUAL_WEIGHT = "EQUAL_WEIGHT"
    INVERSE_VOLATILITY = "INVERSE_VOLATILITY"
    MARKET_CAP = "MARKET_CAP"
    MIN_CVAR = "MIN_CVAR"
    MIN_CDAR = "MIN_CDAR"


# The objectives with a quadratic (or no) penalty term to add an L2 one to.
REGULARISED = frozenset(
    {
        Objective.MIN_VOLATILITY,
        Objective.MAX_SHARPE,
        Objective.TARGET_RETURN,
        Objective.TARGET_VOLATILITY,
    }
)


def risk_parity(cov: FloatArray, constraints: Constraints) -> FloatArray:
    """Return the weights of equal risk contributions.

    Without binding bounds this is the unique long-only solution of
    min 0.5 y'Sy - sum(log y) / n, normalised; with bounds or group caps, the risk shares are made
    as equal as the constraints allow.
    """
    n = cov.shape[0]
    check_feasible(constraints, n)
    result = minimize(
        lambda y: 0.5 * y @ cov @ y - np.sum(np.log(y)) / n,
        np.full(n, 1.0 / np.sqrt(np.mean(np.diag(cov)))),
        jac=lambda y: cov @ y - 1.0 / (n * y),
        method="L-BFGS-B",
        bounds=[(1e-12, None)] * n,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": MAX_ITERATIONS},
    )
    weights = result.x / result.x.sum()
    if (
        np.all(weights >= constraints.min_weight - 1e-9)
        and np.all(weights <= constraints.max_weight + 1e-9)
        and not constraints.groups
    ):
        return clean(weights, constraints)

    def spread(w: FloatArray) -> float:
        """Squared distance of the risk shares from equal shares (scale-free)."""
        shares = w * (cov @ w) / (w @ cov @ w)
        return float(np.sum((shares - 1.0 / n) ** 2))

    return solve(spread, n, constraints, start=bounded(weights, constraints))


def hrp(cov: FloatArray, constraints: Constraints) -> FloatArray:
    """Return the hierarchical risk parity weights (Lopez de Prado, 2016).

    Single-linkage clustering on the correlation distance sqrt((1 - rho) / 2), quasi-diagonal
    order, recursive bisection with inverse-variance weights inside each half. Projected onto
    the constraints by least squares when it breaks them.
    """
    n = cov.shape[0]
    check_feasible(constraints, n)
    std = np.sqrt(np.diag(cov))
    correlation = np.clip(cov / np.outer(std, std), -1.0, 1.0)
    distance = np.sqrt(np.clip((1.0 - correlation) / 2.0, 0.0, None))
    np.fill_diagonal(distance, 0.0)
    order = leaves_list(linkage(squareform(distance, checks=False), method="single"))
    weights = np.ones(n)
    clusters = [list(order)]
    while clusters:
        clusters = [
            part
            for cluster in clusters
            if len(cluster) > 1
            for part in (cluster[: len(cluster) // 2], cluster[len(cluster) // 2 :])
        ]
        for left, right in zip(clusters[::2], clusters[1::2], strict=True):
            left_var, right_var = _cluster_variance(cov, left), _cluster_variance(cov, right)
            alpha = 1.0 - left_var / (left_var + right_var)
            weights[left] *= alpha
            weights[right] *= 1.0 - alpha
    return bounded(weights, constraints)


def _cluster_variance(cov: FloatArray, members: list[int]) -> float:
    block = cov[np.ix_(members, members)]
    inverse = 1.0 / np.diag(block)
    weights = inverse / inverse.sum()
    return float(weights @ block @ weights)


def inverse_volatility(cov: FloatArray, constraints: Constraints) -> FloatArray:
    """Return weights proportional to 1 / volatility.

    Projected onto the constraints by least squares when it breaks them.
    """
    check_feasible(constraints, cov.shape[0])
    inverse = 1.0 / np.sqrt(np.diag(cov))
    return bounded(inverse / inverse.sum(), constraints)


def equal_weight(n_assets: int, constraints: Constraints) -> FloatArray:
    """Return 1 / n_assets for each asset.

    Projected onto the constraints by least squares when it breaks them.

    Parameters
    ----------
    n_assets : int
    """
    check_feasible(constraints, n_assets)
    return bounded(np.full(n_assets, 1.0 / n_assets), constraints)


def market_cap_weight(market_caps: FloatArray, constraints: Constraints) -> FloatArray:
    """Return weights proportional to the market caps.

    Projected onto the constraints by least squares when it breaks them.

    Parameters
    ----------
    market_caps : ndarray of shape (n_assets,)
        Every cap known (not NaN) and positive.

    Raises
    ------
    Infeasible
        ("symbols") When a market cap is NaN, infinite or not positive.
    """
    check_feasible(constraints, market_caps.shape[0])
    if np.any(~np.isfinite(market_caps)) or np.any(market_caps <= 0):
        raise Infeasible("symbols", "MARKET_CAP needs a known, positive market cap for every asset")
    return bounded(market_caps / market_caps.sum(), constraints)


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A portfolio's weights and their annualised figures.

    Parameters
    ----------
    weights : ndarray of shape (n_assets,)
    expected_return : float
        mu'w.
    volatility : float
        sqrt(w'Sw).
    sharpe : float
        (expected_return - risk_free) / volatility; NaN at zero volatility.
    risk_contributions : ndarray of shape (n_assets,)
        w * (Sw) / volatility, summing to the volatility; zeros at zero volatility.
    expected_shortfall, conditional_drawdown : float
        Historical CVaR and CDaR per period at the level (`coinql.domain.cvar`); NaN without
        scenarios.
    """

    weights: FloatArray
    expected_return: float
    volatility: float
    sharpe: float
    risk_contributions: FloatArray
    expected_shortfall: float = np.nan
    conditional_drawdown: float = np.nan


def describe(
    weights: FloatArray,
    mu: FloatArray,
    cov: FloatArray,
    risk_free: float,
    scenarios: FloatArray | None = None,
    level: float = 0.95,
) -> Portfolio:
    """Compute the expected return, volatility, Sharpe ratio and risk contributions of weights.

    Parameters
    ----------
    weights : ndarray of shape (n_assets,)
    risk_free : float
        The annual risk-free rate.
    scenarios : ndarray of shape (n_observations, n_assets), optional
        Per-period returns without NaN, for the CVaR and CDaR at `level`.
    level : float, default 0.95

    Returns
    -------
    Portfolio
        Its Sharpe ratio NaN and its contributions zero when the volatility is zero; its CVaR
        and CDaR NaN without 2 or more scenarios.
    """
    volatility = float(np.sqrt(max(float(weights @ cov @ weights), 0.0)))
    expected = float(mu @ weights)
    contributions = (
        weights * (cov @ weights) / volatility if volatility > 0 else np.zeros_like(weights)
    )
    sharpe = (expected - risk_free) / volatility if volatility > 0 else np.nan
    shortfall = drawdown = np.nan
    if scenarios is not None and scenarios.shape[0] >= 2:
        shortfall = conditional_value_at_risk(weights, scenarios, level)
        drawdown = conditional_drawdown_at_risk(weights, scenarios, level)
    return Portfolio(weights, expected, volatility, sharpe, contributions, shortfall, drawdown)


def expected_returns(returns: FloatArray, periods_per_year: float) -> FloatArray:
    """Return the optimizer's `mu`: the arithmetic mean return of each asset x P.

    Parameters
    ----------
    returns : ndarray of shape (n_observations, n_assets)
        NaN periods are left out of each asset's mean.
    periods_per_year : float

    Returns
    -------
    ndarray of shape (n_assets,)
    """
    return np.nanmean(returns, axis=0) * periods_per_year


def optimal_weights(
    objective: Objective,
    mu: FloatArray,
    cov: FloatArray,
    constraints: Constraints,
    *,
    risk_free: float = 0.0,
    target_return: float | None = None,
    target_volatility: float | None = None,
    market_caps: Sequence[float] | None = None,
    l2_gamma: float = 0.0,
    scenarios: FloatArray | None = None,
    cvar_level: float = 0.95,
) -> FloatArray:
    """Return the weights of one objective under the constraints.

    Parameters
    ----------
    objective : Objective
    risk_free : float, default 0.0
        Annual, for MAX_SHARPE.
    target_return, target_volatility : float, optional
        Annual, required by TARGET_RETURN and TARGET_VOLATILITY.
    market_caps : sequence of float of length n_assets, optional
        Required by MARKET_CAP; NaN for an unknown cap.
    l2_gamma : float, default 0.0
        PyPortfolioOpt's L2_reg weight, for the objectives in `REGULARISED`.
    scenarios : ndarray of shape (n_observations, n_assets), optional
        Per-period returns without NaN, required by MIN_CVAR and MIN_CDAR.
    cvar_level : float, default 0.95
        Their confidence.

    Returns
    -------
    ndarray of shape (n_assets,)
        Summing to 1.

    Raises
    ------
    InvalidInput
        When the objective's target is missing, naming it; ("constraints.l2Gamma") for an L2
        weight the objective has no use for.
    Infeasible
        When no weights meet the constraints.
    """
    check_l2_gamma(l2_gamma)
    if l2_gamma and objective not in REGULARISED:
        raise InvalidInput(L2_GAMMA, f"{objective} takes no l2Gamma")
    if objective is Objective.MIN_VOLATILITY:
        return min_volatility(cov, constraints, l2_gamma)
    if objective is Objective.MAX_SHARPE:
        return max_sharpe(mu, cov, constraints, risk_free, l2_gamma)
    if objective is Objective.TARGET_RETURN:
        if target_return is None:
            raise InvalidInput("targetReturn", "TARGET_RETURN needs targetReturn")
        return efficient_return(mu, cov, target_return, constraints, l2_gamma)
    if objective is Objective.TARGET_VOLATILITY:
        if target_volatility is None:
            raise InvalidInput("targetVolatility", "TARGET_VOLATILITY needs targetVolatility")
        return efficient_risk(mu, cov, target_volatility, constraints, l2_gamma)
    if objective in (Objective.MIN_CVAR, Objective.MIN_CDAR):
        if scenarios is None:
            raise ValueError(f"{objective} needs the scenarios")
        solver = min_cvar if objective is Objective.MIN_CVAR else min_cdar
        return solver(scenarios, constraints, cvar_level)
    if objective is Objective.RISK_PARITY:
        return risk_parity(cov, constraints)
    if objective is Objective.HRP:
        return hrp(cov, constraints)
    if objective is Objective.EQUAL_WEIGHT:
        return equal_weight(cov.shape[0], constraints)
    if objective is Objective.INVERSE_VOLATILITY:
        return inverse_volatility(cov, constraints)
    if market_caps is None:
        raise ValueError("MARKET_CAP needs the assets' market caps")
    return market_cap_weight(np.asarray(market_caps, dtype=np.float64), constraints)
