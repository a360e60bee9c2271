"""Portfolio optimization: mean-variance, risk parity, HRP and the simple allocations.

Inputs are annualised: `mu` of shape (n_assets,) (arithmetic mean return x P) and `cov` of
shape (n_assets, n_assets) (per-period covariance x P). Weights sum to 1 and respect the
constraints; an impossible constraint set raises `Infeasible`, naming the constraint, and a
bound, group cap, target or risk-free rate that is not a finite number raises `InvalidInput`
naming it (SLSQP would otherwise hand back its starting point, equal weights, or NaN).

Mean-variance problems are solved with SLSQP. MAX_SHARPE uses the convex reformulation of
Cornuejols and Tutuncu (as PyPortfolioOpt does): minimise y'Sy subject to (mu - rf)'y = 1,
then w = y / sum(y), so the solver never sees the non-convex ratio.

The constraints and the SLSQP plumbing are in `coinql.domain.constraints`; `Constraints`,
`Group`, `Infeasible` and `check_feasible` are part of this module's interface too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.optimize import linprog, minimize
from scipy.spatial.distance import squareform

from coinql.domain.constraints import (
    MAX_ITERATIONS,
    Constraints,
    Group,
    Infeasible,
    bounded,
    check_feasible,
    check_finite,
    clean,
    feasible_scaled,
    solve,
    variance_of,
)
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray

__all__ = [
    "Constraints",
    "Group",
    "Infeasible",
    "Objective",
    "Portfolio",
    "check_feasible",
    "describe",
    "efficient_return",
    "efficient_risk",
    "equal_weight",
    "expected_returns",
    "frontier",
    "hrp",
    "inverse_volatility",
    "market_cap_weight",
    "max_return",
    "max_sharpe",
    "min_volatility",
    "optimal_weights",
    "risk_parity",
]


class Objective(StrEnum):
    MIN_VOLATILITY = "MIN_VOLATILITY"
    MAX_SHARPE = "MAX_SHARPE"
    TARGET_RETURN = "TARGET_RETURN"
    TARGET_VOLATILITY = "TARGET_VOLATILITY"
    RISK_PARITY = "RISK_PARITY"
    HRP = "HRP"
    EQUAL_WEIGHT = "EQUAL_WEIGHT"
    INVERSE_VOLATILITY = "INVERSE_VOLATILITY"
    MARKET_CAP = "MARKET_CAP"


def min_volatility(cov: FloatArray, constraints: Constraints) -> FloatArray:
    check_feasible(constraints, cov.shape[0])
    variance, gradient = variance_of(cov)
    return solve(variance, cov.shape[0], constraints, gradient=gradient)


def max_sharpe(
    mu: FloatArray, cov: FloatArray, constraints: Constraints, risk_free: float = 0.0
) -> FloatArray:
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("riskFreeRate", risk_free)
    excess = mu - risk_free
    if np.all(excess <= 0):
        raise Infeasible("riskFreeRate", "no asset's expected return exceeds the risk-free rate")
    # Variables (y, kappa): w = y / kappa with sum(y) = kappa and bounds scaled by kappa.
    low, high = constraints.min_weight, constraints.max_weight

    def objective(x: FloatArray) -> float:
        return float(x[:n] @ cov @ x[:n])

    def gradient(x: FloatArray) -> FloatArray:
        return np.concatenate([2.0 * cov @ x[:n], [0.0]])

    lower_jacobian = np.hstack([np.eye(n), -low * np.ones((n, 1))])
    upper_jacobian = np.hstack([-np.eye(n), high * np.ones((n, 1))])
    scaled: list[dict[str, object]] = [
        {
            "type": "eq",
            "fun": lambda x: excess @ x[:n] - 1.0,
            "jac": lambda x: np.concatenate([excess, [0.0]]),
        },
        {
            "type": "eq",
            "fun": lambda x: np.sum(x[:n]) - x[n],
            "jac": lambda x: np.concatenate([np.ones(n), [-1.0]]),
        },
        {
            "type": "ineq",
            "fun": lambda x: x[:n] - low * x[n],
            "jac": lambda x: lower_jacobian,
        },
        {
            "type": "ineq",
            "fun": lambda x: high * x[n] - x[:n],
            "jac": lambda x: upper_jacobian,
        },
    ]
    for group in constraints.groups:
        members = list(group.members)
        row = np.zeros(n + 1)
        row[members] = -1.0
        row[n] = group.max_weight
        scaled.append(
            {
                "type": "ineq",
                "fun": lambda x, m=members, cap=group.max_weight: cap * x[n] - np.sum(x[m]),
                "jac": lambda x, r=row: r,
            }
        )
    # Start from the feasible equal-weight book scaled onto the constraint (mu - rf)'y = 1.
    start_w = bounded(np.full(n, 1.0 / n), constraints)
    kappa0 = 1.0 / max(float(excess @ start_w), 1e-12)
    result = minimize(
        objective,
        np.concatenate([start_w * kappa0, [kappa0]]),
        jac=gradient,
        method="SLSQP",
        bounds=[(None, None)] * n + [(0.0, None)],
        constraints=scaled,
        options={"ftol": 1e-15, "maxiter": MAX_ITERATIONS},
    )
    if result.x[n] <= 0 or not (result.success or feasible_scaled(result.x, scaled)):
        raise Infeasible("constraints", f"the optimizer found no solution: {result.message}")
    return clean(result.x[:n] / result.x[n], constraints)


def efficient_return(
    mu: FloatArray, cov: FloatArray, target: float, constraints: Constraints
) -> FloatArray:
    """Minimum volatility for an expected return of at least `target` (as PyPortfolioOpt's
    `efficient_return`)."""
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("targetReturn", target)
    highest = float(mu @ max_return(mu, constraints))
    if target > highest + 1e-9:
        raise Infeasible(
            "targetReturn", f"targetReturn {target} is above the highest expected return {highest}"
        )
    variance, gradient = variance_of(cov)
    return solve(
        variance,
        n,
        constraints,
        [{"type": "ineq", "fun": lambda w: mu @ w - target, "jac": lambda w: mu}],
        gradient=gradient,
    )


def efficient_risk(
    mu: FloatArray, cov: FloatArray, target: float, constraints: Constraints
) -> FloatArray:
    """Maximum expected return for a volatility of at most `target`."""
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("targetVolatility", target)
    lowest = float(
        np.sqrt(min_volatility(cov, constraints) @ cov @ min_volatility(cov, constraints))
    )
    if target < lowest - 1e-9:
        raise Infeasible(
            "targetVolatility",
            f"targetVolatility {target} is below the lowest achievable volatility {lowest}",
        )
    return solve(
        lambda w: -(mu @ w),
        n,
        constraints,
        [
            {
                "type": "ineq",
                "fun": lambda w: target**2 - w @ cov @ w,
                "jac": lambda w: -2.0 * cov @ w,
            }
        ],
        gradient=lambda w: -mu,
    )


def risk_parity(cov: FloatArray, constraints: Constraints) -> FloatArray:
    """Equal risk contributions. Without binding bounds this is the unique long-only solution
    of min 0.5 y'Sy - sum(log y) / n, normalised; with bounds, the contributions are made as
    equal as the bounds allow."""
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
    """Hierarchical risk parity (Lopez de Prado, 2016): single-linkage clustering on the
    correlation distance sqrt((1 - rho) / 2), quasi-diagonal order, recursive bisection with
    inverse-variance weights inside each half."""
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
    check_feasible(constraints, cov.shape[0])
    inverse = 1.0 / np.sqrt(np.diag(cov))
    return bounded(inverse / inverse.sum(), constraints)


def equal_weight(n_assets: int, constraints: Constraints) -> FloatArray:
    check_feasible(constraints, n_assets)
    return bounded(np.full(n_assets, 1.0 / n_assets), constraints)


def market_cap_weight(market_caps: FloatArray, constraints: Constraints) -> FloatArray:
    check_feasible(constraints, market_caps.shape[0])
    if np.any(~np.isfinite(market_caps)) or np.any(market_caps <= 0):
        raise Infeasible("symbols", "MARKET_CAP needs a known, positive market cap for every asset")
    return bounded(market_caps / market_caps.sum(), constraints)


def max_return(mu: FloatArray, constraints: Constraints) -> FloatArray:
    """The highest expected return under the constraints: a linear program, solved exactly."""
    n = mu.shape[0]
    check_feasible(constraints, n)
    caps = [(list(g.members), g.max_weight) for g in constraints.groups]
    a_ub = np.zeros((len(caps), n))
    for row, (members, _) in enumerate(caps):
        a_ub[row, members] = 1.0
    result = linprog(
        -mu,
        A_ub=a_ub if caps else None,
        b_ub=[cap for _, cap in caps] if caps else None,
        A_eq=np.ones((1, n)),
        b_eq=[1.0],
        bounds=[(constraints.min_weight, constraints.max_weight)] * n,
        method="highs",
    )
    if not result.success:
        raise Infeasible("constraints", f"no weights meet the constraints: {result.message}")
    return clean(result.x, constraints)


@dataclass(frozen=True, slots=True)
class Portfolio:
    weights: FloatArray
    expected_return: float
    volatility: float
    sharpe: float
    risk_contributions: FloatArray


def describe(weights: FloatArray, mu: FloatArray, cov: FloatArray, risk_free: float) -> Portfolio:
    volatility = float(np.sqrt(max(float(weights @ cov @ weights), 0.0)))
    expected = float(mu @ weights)
    contributions = (
        weights * (cov @ weights) / volatility if volatility > 0 else np.zeros_like(weights)
    )
    sharpe = (expected - risk_free) / volatility if volatility > 0 else np.nan
    return Portfolio(weights, expected, volatility, sharpe, contributions)


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
) -> FloatArray:
    """Return the weights of one objective under the constraints.

    Parameters
    ----------
    objective : Objective
    mu : ndarray of shape (n_assets,)
        Annualised expected returns (`expected_returns`).
    cov : ndarray of shape (n_assets, n_assets)
        Annualised covariance.
    constraints : Constraints
    risk_free : float, default 0.0
        Annual, for MAX_SHARPE.
    target_return, target_volatility : float, optional
        Annual, required by TARGET_RETURN and TARGET_VOLATILITY.
    market_caps : sequence of float of length n_assets, optional
        Required by MARKET_CAP; NaN for an unknown cap.

    Returns
    -------
    ndarray of shape (n_assets,)
        Summing to 1.

    Raises
    ------
    InvalidInput
        When the objective's target is missing, naming it.
    Infeasible
        When no weights meet the constraints.
    """
    if objective is Objective.MIN_VOLATILITY:
        return min_volatility(cov, constraints)
    if objective is Objective.MAX_SHARPE:
        return max_sharpe(mu, cov, constraints, risk_free)
    if objective is Objective.TARGET_RETURN:
        if target_return is None:
            raise InvalidInput("targetReturn", "TARGET_RETURN needs targetReturn")
        return efficient_return(mu, cov, target_return, constraints)
    if objective is Objective.TARGET_VOLATILITY:
        if target_volatility is None:
            raise InvalidInput("targetVolatility", "TARGET_VOLATILITY needs targetVolatility")
        return efficient_risk(mu, cov, target_volatility, constraints)
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


def frontier(
    mu: FloatArray, cov: FloatArray, constraints: Constraints, points: int
) -> list[FloatArray]:
    """`points` efficient portfolios, from the minimum-volatility one to the highest return
    reachable under the constraints, equally spaced in expected return."""
    lowest = min_volatility(cov, constraints)
    highest = max_return(mu, constraints)
    targets = np.linspace(float(mu @ lowest), float(mu @ highest), points)
    portfolios = [lowest]
    for target in targets[1:-1]:
        portfolios.append(efficient_return(mu, cov, float(target), constraints))
    portfolios.append(highest)
    return portfolios
