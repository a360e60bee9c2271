"""Mean-variance optimization: minimum volatility, maximum Sharpe, the efficient frontier.

Inputs are annualised: `mu` of shape (n_assets,) (arithmetic mean return x P) and `cov` of
shape (n_assets, n_assets) (per-period covariance x P); they are not checked for NaN, which the
caller's estimators leave out. Weights sum to 1 and respect the constraints; an impossible
constraint set raises `Infeasible`, naming the constraint, and a bound, group cap, target or
risk-free rate that is not a finite number raises `InvalidInput` naming it (SLSQP would
otherwise hand back its starting point, equal weights, or NaN).

`l2_gamma` adds PyPortfolioOpt's `L2_reg`, gamma x ||w||^2, to the objective (to the scaled
variables' y'Sy in MAX_SHARPE's convex form, as PyPortfolioOpt does, which is the same problem on
S + gamma x I); it must be finite and >= 0 ("constraints.l2Gamma").

The quadratic problems are solved with SLSQP, the maximum return with a linear program.
MAX_SHARPE uses the convex reformulation of Cornuejols and Tutuncu (as PyPortfolioOpt does):
minimise y'Sy subject to (mu - rf)'y = 1, then w = y / sum(y), so the solver never sees the
non-convex ratio. Under bounds alone (no group caps) that problem is solved first by a
primal-dual active-set method, a few small linear solves whose answer is checked against the
optimality (KKT) conditions; SLSQP takes over when the method does not settle.

A function's docstring names only what is its own: `mu`, `cov`, `constraints`, the weights it
returns (ndarray of shape (n_assets,)) and the two errors are as stated here.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog, minimize

from coinql.domain.constraints import (
    MAX_ITERATIONS,
    Constraints,
    Infeasible,
    check_feasible,
    check_finite,
    clean,
    feasible_scaled,
    group_rows,
    solve,
    variance_of,
)
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import BoolArray, FloatArray

L2_GAMMA = "constraints.l2Gamma"


def min_volatility(cov: FloatArray, constraints: Constraints, l2_gamma: float = 0.0) -> FloatArray:
    """Return the weights of the lowest volatility (plus L2 penalty) under the constraints."""
    check_feasible(constraints, cov.shape[0])
    variance, gradient = variance_of(regularised(cov, l2_gamma))
    return solve(variance, cov.shape[0], constraints, gradient=gradient)


def regularised(cov: FloatArray, l2_gamma: float) -> FloatArray:
    """Return S + gamma x I, whose quadratic form is w'Sw + gamma x ||w||^2.

    Raises
    ------
    InvalidInput
        ("constraints.l2Gamma") When `l2_gamma` is negative or not finite.
    """
    check_l2_gamma(l2_gamma)
    return cov + l2_gamma * np.eye(cov.shape[0]) if l2_gamma else cov


def check_l2_gamma(l2_gamma: float) -> None:
    """Raise `InvalidInput` ("constraints.l2Gamma") unless `l2_gamma` is finite and >= 0."""
    check_finite(L2_GAMMA, l2_gamma)
    if l2_gamma < 0:
        raise InvalidInput(L2_GAMMA, f"l2Gamma must be >= 0, got {l2_gamma}")


def max_sharpe(
    mu: FloatArray,
    cov: FloatArray,
    constraints: Constraints,
    risk_free: float = 0.0,
    l2_gamma: float = 0.0,
) -> FloatArray:
    """Return the weights of the highest Sharpe ratio under the constraints.

    Solved in the convex form (minimise y'Sy subject to (mu - rf)'y = 1, then w = y / sum(y)):
    under bounds alone by `_box_tangency`, otherwise (or when it does not settle) by SLSQP.

    Parameters
    ----------
    risk_free : float, default 0.0
        The annual risk-free rate.

    Raises
    ------
    InvalidInput
        When a bound or group cap or `risk_free` is not finite, naming it.
    Infeasible
        ("riskFreeRate") When no asset's expected return exceeds `risk_free`, or no book
        within the constraints does; ("constraints") when the solver finds no solution.
    """
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("riskFreeRate", risk_free)
    cov = regularised(cov, l2_gamma)
    excess = mu - risk_free
    if np.all(excess <= 0):
        raise Infeasible("riskFreeRate", "no asset's expected return exceeds the risk-free rate")
    low, high = constraints.lower(n), constraints.upper(n)
    if not constraints.groups:
        found = _box_tangency(excess, cov, low, high)
        if found is not None:
            return clean(found, constraints)
    # Variables y, w = y / kappa with kappa = sum(y) eliminated, bounds scaled by it. Long
    # only, y >= low x sum(y) with low = 0 is the plain bound y >= 0, and y <= high x sum(y)
    # holds by itself once high >= 1: SLSQP's work grows with its general constraints.
    ones = np.ones(n)
    scaled: list[dict[str, object]] = [
        {"type": "eq", "fun": lambda y: excess @ y - 1.0, "jac": lambda y: excess}
    ]
    if np.any(low < 0):
        scaled.append({"type": "ineq", "fun": lambda y: np.sum(y), "jac": lambda y: ones})
    if np.any(low != 0):
        lower_jacobian = np.eye(n) - low[:, None]
        scaled.append(
            {
                "type": "ineq",
                "fun": lambda y: y - low * np.sum(y),
                "jac": lambda y: lower_jacobian,
            }
        )
    if np.any(high < 1) or np.any(low < 0):
        upper_jacobian = high[:, None] - np.eye(n)
        scaled.append(
            {
                "type": "ineq",
                "fun": lambda y: high * np.sum(y) - y,
                "jac": lambda y: upper_jacobian,
            }
        )
    a_ub, b_ub = group_rows(constraints, n)
    if a_ub is not None and b_ub is not None:
        # A w <= b with w = y / sum(y): b x sum(y) - A y >= 0.
        group_jacobian = b_ub[:, None] - a_ub
        scaled.append(
            {
                "type": "ineq",
                "fun": lambda y: group_jacobian @ y,
                "jac": lambda y: group_jacobian,
            }
        )
    # Start from the book of the highest excess return the constraints allow (a linear
    # program), scaled onto (mu - rf)'y = 1: an equal-weight start can have none, and SLSQP
    # would then give up on a feasible problem.
    start_w = _best_excess(excess, low, high, a_ub, b_ub)
    if start_w is None or float(excess @ start_w) <= 0:
        raise Infeasible(
            "riskFreeRate",
            "no book within the constraints earns more than the risk-free rate",
        )
    kappa0 = 1.0 / float(excess @ start_w)
    result = minimize(
        lambda y: float(y @ cov @ y),
        start_w * kappa0,
        jac=lambda y: 2.0 * cov @ y,
        method="SLSQP",
        bounds=[(0.0 if bound >= 0 else None, None) for bound in low],
        constraints=scaled,
        options={"ftol": 1e-15, "maxiter": MAX_ITERATIONS},
    )
    kappa = float(np.sum(result.x))
    if kappa <= 0 or not (result.success or feasible_scaled(result.x, scaled, kappa)):
        raise Infeasible("constraints", f"the optimizer found no solution: {result.message}")
    return clean(result.x / kappa, constraints)


def _best_excess(
    excess: FloatArray,
    low: FloatArray,
    high: FloatArray,
    a_ub: FloatArray | None,
    b_ub: FloatArray | None,
) -> FloatArray | None:
    """Return the fully invested weights of the highest excess return, or None.

    A linear program within the bounds and the group limits; None when nothing meets them.
    """
    n = excess.shape[0]
    found = linprog(
        -excess,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.ones((1, n)),
        b_eq=[1.0],
        bounds=list(zip(low, high, strict=True)),
        method="highs",
    )
    return np.asarray(found.x, dtype=np.float64) if found.status == 0 else None


def _box_tangency(
    excess: FloatArray, cov: FloatArray, low: FloatArray | float, high: FloatArray | float
) -> FloatArray | None:
    """Return the MAX_SHARPE weights under the bounds alone, or None when the method is unsure.

    A primal-dual active-set method (Hintermueller, Ito and Kunisch 2002) on the convex form:
    minimise y'Sy subject to excess'y = 1 and low x s <= y_i <= high x s, s = sum(y). A guess
    puts each asset free, at its lower bound (y_i = low x s) or at its upper (y_i = high x s);
    the problem restricted to the guess, in the free y and s under two linear equalities, is
    one KKT solve. The guess is then revised all at once: a free asset outside its bounds goes
    to the bound it crosses, a bound one whose multiplier has the wrong sign is freed. A guess
    that survives its own solve meets the KKT conditions of the convex problem, so it is the
    optimum. The first guess is the highest-return vertex (the best assets at `high` while the
    budget lasts, one in between, the rest at `low`), so that s > 0 from the start; on real
    covariances it takes a handful of solves of size (free assets + 3).

    Parameters
    ----------
    excess : ndarray of shape (n_assets,)
        Expected returns less the risk-free rate.
    cov : ndarray of shape (n_assets, n_assets)
    low, high : float or ndarray of shape (n_assets,)
        The bounds on each weight, finite and feasible (`check_feasible`).

    Returns
    -------
    ndarray of shape (n_assets,) or None
        Weights summing to 1, within the bounds up to 1e-10; None when a restricted problem is
        singular, its sum(y) is not positive (no book of positive excess return, or a guess
        the method cannot recover from), the guesses cycle, or the solve is inaccurate, for the
        caller to fall back to SLSQP.
    """
    n = excess.shape[0]
    low, high = np.broadcast_to(low, (n,)), np.broadcast_to(high, (n,))
    if np.any(high <= low):
        return None
    order = np.argsort(-excess)
    # The best assets at `high` while the budget over the lower bounds lasts.
    spans = np.cumsum((high - low)[order])
    top = int(min(n - 1, np.searchsorted(spans, 1.0 - low.sum() + 1e-12, side="right")))
    lower: BoolArray = np.ones(n, dtype=bool)
    upper: BoolArray = np.zeros(n, dtype=bool)
    lower[order[: top + 1]] = False
    upper[order[:top]] = True
    seen: set[bytes] = set()
    for _ in range(2 * n + 10):
        free = np.flatnonzero(~(lower | upper))
        k = free.size
        at_bound = low * lower + high * upper  # y_i / s at the bound assets, 0 for free ones
        cov_free = cov[:, free]
        cov_bound = cov @ at_bound
        # Unknowns (y_free, s, -eta, -nu): eta, nu multiply excess'y = 1 and sum(y) = s.
        kkt = np.zeros((k + 3, k + 3))
        kkt[:k, :k] = 2.0 * cov_free[free]
        kkt[:k, k] = kkt[k, :k] = 2.0 * cov_bound[free]
        kkt[k, k] = 2.0 * (at_bound @ cov_bound)
        kkt[k + 1, :k] = excess[free]
        kkt[k + 1, k] = excess @ at_bound
        kkt[k + 2, :k] = 1.0
        kkt[k + 2, k] = at_bound.sum() - 1.0
        kkt[: k + 1, k + 1 :] = kkt[k + 1 :, : k + 1].T
        rhs = np.zeros(k + 3)
        rhs[k + 1] = 1.0
        try:
            z = np.linalg.solve(kkt, rhs)
        except np.linalg.LinAlgError:
            return None
        s = float(z[k])
        if not (np.all(np.isfinite(z)) and s > 0):
            return None
        y = at_bound * s
        y[free] = z[:k]
        slope = 2.0 * (cov @ y)
        # The gradient less the equalities' part: 0 at free assets, a bound's multiplier at its
        # assets (>= 0 for the lower, <= 0 for the upper).
        g = slope + z[k + 1] * excess + z[k + 2]
        dual_tol = 1e-10 * (
            np.max(np.abs(slope)) + abs(z[k + 1]) * np.max(np.abs(excess)) + abs(z[k + 2])
        )
        primal_tol = 1e-10 * s
        is_free = ~(lower | upper)
        next_lower = (is_free & (y < low * s - primal_tol)) | (lower & (g > -dual_tol))
        next_upper = (is_free & (y > high * s + primal_tol)) | (upper & (g < dual_tol))
        if np.array_equal(next_lower, lower) and np.array_equal(next_upper, upper):
            residual = np.max(np.abs(kkt @ z - rhs))
            if residual > 1e-9 * (1.0 + np.max(np.abs(kkt)) * np.max(np.abs(z))):
                return None
            return y / s
        key = next_lower.tobytes() + next_upper.tobytes()
        if key in seen:
            return None
        seen.add(key)
        lower, upper = next_lower, next_upper
    return None


def efficient_return(
    mu: FloatArray,
    cov: FloatArray,
    target: float,
    constraints: Constraints,
    l2_gamma: float = 0.0,
) -> FloatArray:
    """Return the minimum-volatility weights for an expected return of at least `target`.

    As PyPortfolioOpt's `efficient_return`.

    Parameters
    ----------
    target : float
        The annual expected return to reach.

    Raises
    ------
    InvalidInput
        When a bound or group cap or `target` is not finite, naming it.
    Infeasible
        ("targetReturn") When `target` is above the highest expected return the constraints
        allow.
    """
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("targetReturn", target)
    highest = float(mu @ max_return(mu, constraints))
    if target > highest + 1e-9:
        raise Infeasible(
            "targetReturn", f"targetReturn {target} is above the highest expected return {highest}"
        )
    return _efficient_return(mu, regularised(cov, l2_gamma), target, constraints)


def _efficient_return(
    mu: FloatArray,
    cov: FloatArray,
    target: float,
    constraints: Constraints,
    start: FloatArray | None = None,
) -> FloatArray:
    """Solve `efficient_return` from `start` (equal weights if None), the checks done."""
    variance, gradient = variance_of(cov)
    return solve(
        variance,
        cov.shape[0],
        constraints,
        [{"type": "ineq", "fun": lambda w: mu @ w - target, "jac": lambda w: mu}],
        start=start,
        gradient=gradient,
    )


def efficient_risk(
    mu: FloatArray,
    cov: FloatArray,
    target: float,
    constraints: Constraints,
    l2_gamma: float = 0.0,
) -> FloatArray:
    """Return the maximum-return weights (less the L2 penalty) for a volatility <= `target`.

    Parameters
    ----------
    target : float
        The annual volatility not to exceed.

    Raises
    ------
    InvalidInput
        When a bound or group cap or `target` is not finite, naming it.
    Infeasible
        ("targetVolatility") When `target` is below the lowest achievable volatility.
    """
    n = cov.shape[0]
    check_feasible(constraints, n)
    check_finite("targetVolatility", target)
    check_l2_gamma(l2_gamma)
    least = min_volatility(cov, constraints)
    lowest = float(np.sqrt(least @ cov @ least))
    if target < lowest - 1e-9:
        raise Infeasible(
            "targetVolatility",
            f"targetVolatility {target} is below the lowest achievable volatility {lowest}",
        )
    return solve(
        lambda w: l2_gamma * (w @ w) - mu @ w,
        n,
        constraints,
        [
            {
                "type": "ineq",
                "fun": lambda w: target**2 - w @ cov @ w,
                "jac": lambda w: -2.0 * cov @ w,
            }
        ],
        gradient=lambda w: 2.0 * l2_gamma * w - mu,
    )


def max_return(mu: FloatArray, constraints: Constraints) -> FloatArray:
    """Return the weights of the highest expected return: a linear program, solved exactly."""
    n = mu.shape[0]
    check_feasible(constraints, n)
    a_ub, b_ub = group_rows(constraints, n)
    result = linprog(
        -mu,
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=np.ones((1, n)),
        b_eq=[1.0],
        bounds=list(zip(constraints.lower(n), constraints.upper(n), strict=True)),
        method="highs",
    )
    if not result.success:
        raise Infeasible("constraints", f"no weights meet the constraints: {result.message}")
    return clean(result.x, constraints)


def frontier(
    mu: FloatArray, cov: FloatArray, constraints: Constraints, points: int
) -> list[FloatArray]:
    """Return `points` efficient portfolios, equally spaced in expected return.

    From the minimum-volatility portfolio to the highest return reachable under the constraints.

    Parameters
    ----------
    points : int
        The number of portfolios; at least 2 (fewer still gives the two ends).

    Returns
    -------
    list of ndarray of shape (n_assets,)
        Weights, lowest expected return first.
    """
    lowest = min_volatility(cov, constraints)
    highest = max_return(mu, constraints)
    targets = np.linspace(float(mu @ lowest), float(mu @ highest), points)
    portfolios = [lowest]
    for target in targets[1:-1]:  # warm: each point starts from its neighbour's weights
        portfolios.append(_efficient_return(mu, cov, float(target), constraints, portfolios[-1]))
    portfolios.append(highest)
    return portfolios
