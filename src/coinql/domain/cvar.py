"""Tail-risk optimization on historical scenarios: minimum CVaR and minimum CDaR.

Both are the linear programs of Rockafellar and Uryasev (2000), as PyPortfolioOpt's
`EfficientCVaR` and `EfficientCDaR` write them, solved by `scipy.optimize.linprog` (HiGHS).
`scenarios` is an ndarray of shape (n_observations, n_assets) of per-period simple returns, no
NaN (the caller keeps the periods where every asset has one); `level` is the confidence beta,
strictly between 0 and 1. The measures are per period, not annualised, and are positive losses.

CVaR at beta of losses L_1..L_T is min over alpha of alpha + sum((L_t - alpha)+) / (T (1 - beta)):
the mean of the worst T (1 - beta) losses, the boundary one counted by its fraction. When
T (1 - beta) is a whole number it is `risk.expected_shortfall`'s historical figure. CDaR is
the same tail mean of the drawdowns of the uncompounded cumulative return, sum(r_1..r_t)'w,
from its running peak (0 before the first period).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from coinql.domain.constraints import Constraints, Infeasible, check_feasible, clean, group_rows
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray

CVAR_LEVEL = "cvarLevel"


def complete_periods(returns: FloatArray) -> FloatArray:
    """Return the scenarios: the rows of `returns` (n_observations, n_assets) without NaN."""
    return returns[np.all(np.isfinite(returns), axis=1)]


def tail_mean(losses: FloatArray, level: float) -> float:
    """Return the CVaR of losses at `level`: the mean of the worst T (1 - level) of them.

    Parameters
    ----------
    losses : ndarray of shape (n_observations,)
        Finite, at least one.
    level : float

    Returns
    -------
    float
        The Rockafellar-Uryasev minimum, exact (no solver).
    """
    size = (1.0 - level) * losses.shape[0]
    whole = int(np.floor(size + 1e-9))
    worst = np.sort(losses)[::-1]
    fraction = max(size - whole, 0.0)
    boundary = float(worst[whole]) * fraction if whole < worst.shape[0] else 0.0
    return (float(np.sum(worst[:whole])) + boundary) / size


def drawdowns(portfolio_returns: FloatArray) -> FloatArray:
    """Return the drawdown of each period's uncompounded cumulative return from its peak.

    Parameters
    ----------
    portfolio_returns : ndarray of shape (n_observations,)

    Returns
    -------
    ndarray of shape (n_observations,)
        Non-negative; the peak includes the start at 0.
    """
    cumulative = np.cumsum(portfolio_returns)
    return np.maximum.accumulate(np.maximum(cumulative, 0.0)) - cumulative


def conditional_value_at_risk(weights: FloatArray, scenarios: FloatArray, level: float) -> float:
    """Return the portfolio's historical CVaR at `level` over the scenarios, a positive loss."""
    return tail_mean(-(scenarios @ weights), level)


def conditional_drawdown_at_risk(weights: FloatArray, scenarios: FloatArray, level: float) -> float:
    """Return the portfolio's historical CDaR at `level` over the scenarios."""
    return tail_mean(drawdowns(scenarios @ weights), level)


def check_scenarios(scenarios: FloatArray, level: float) -> None:
    """Check the level and the scenarios of a tail-risk objective.

    Raises
    ------
    InvalidInput
        ("cvarLevel") When `level` is not strictly between 0 and 1.
    Infeasible
        ("symbols") With fewer than 2 scenarios or a non-finite return in them.
    """
    if not (np.isfinite(level) and 0 < level < 1):
        raise InvalidInput(CVAR_LEVEL, f"cvarLevel must be between 0 and 1, got {level}")
    if scenarios.shape[0] < 2 or not np.all(np.isfinite(scenarios)):
        raise Infeasible(
            "symbols", "the tail-risk objectives need 2 or more periods with every asset's return"
        )


def min_cvar(scenarios: FloatArray, constraints: Constraints, level: float = 0.95) -> FloatArray:
    """Return the weights of the lowest historical CVaR at `level` under the constraints.

    Variables (w, alpha, u) of sizes (n_assets, 1, T): minimise alpha + sum(u) / (T (1 - level))
    subject to u >= 0 and u_t >= -r_t'w - alpha, with the weights' constraints.

    Returns
    -------
    ndarray of shape (n_assets,)

    Raises
    ------
    InvalidInput, Infeasible
        As `check_feasible` and `check_scenarios`; Infeasible ("constraints") when HiGHS finds
        no solution.
    """
    periods, n = scenarios.shape
    check_feasible(constraints, n)
    check_scenarios(scenarios, level)
    # -R w - alpha - u <= 0
    tail = sparse.hstack(
        [
            sparse.csr_matrix(-scenarios),
            sparse.csr_matrix(-np.ones((periods, 1))),
            -sparse.identity(periods, format="csr"),
        ]
    )
    cost = np.concatenate([np.zeros(n), [1.0], np.full(periods, 1.0 / (periods * (1 - level)))])
    found = _solve(cost, tail, np.zeros(periods), n, 1 + periods, constraints)
    return clean(found[:n], constraints)


def min_cdar(scenarios: FloatArray, constraints: Constraints, level: float = 0.95) -> FloatArray:
    """Return the weights of the lowest historical CDaR at `level` under the constraints.

    Variables (w, alpha, u, z) of sizes (n_assets, 1, T, T), u_0 = 0: minimise
    alpha + sum(z) / (T (1 - level)) subject to z >= 0, z_t >= u_t - alpha, u >= 0 and
    u_t >= u_(t-1) - r_t'w (u the drawdowns), with the weights' constraints.

    Returns
    -------
    ndarray of shape (n_assets,)

    Raises
    ------
    InvalidInput, Infeasible
        As `min_cvar`.
    """
    periods, n = scenarios.shape
    check_feasible(constraints, n)
    check_scenarios(scenarios, level)
    identity = sparse.identity(periods, format="csr")
    previous = sparse.eye(periods, k=-1, format="csr")  # picks u_(t-1), none for t = 1
    zeros = sparse.csr_matrix((periods, 1))
    rows = sparse.vstack(
        [
            # u - alpha - z <= 0
            sparse.hstack(
                [
                    sparse.csr_matrix((periods, n)),
                    sparse.csr_matrix(-np.ones((periods, 1))),
                    identity,
                    -identity,
                ]
            ),
            # u_(t-1) - u_t - r_t'w <= 0
            sparse.hstack(
                [
                    sparse.csr_matrix(-scenarios),
                    zeros,
                    previous - identity,
                    sparse.csr_matrix((periods, periods)),
                ]
            ),
        ]
    )
    cost = np.concatenate(
        [np.zeros(n), [1.0], np.zeros(periods), np.full(periods, 1.0 / (periods * (1 - level)))]
    )
    found = _solve(cost, rows, np.zeros(2 * periods), n, 1 + 2 * periods, constraints)
    return clean(found[:n], constraints)


def _solve(
    cost: FloatArray,
    rows: sparse.spmatrix,
    limits: FloatArray,
    n_assets: int,
    n_auxiliary: int,
    constraints: Constraints,
) -> FloatArray:
    """Solve the program in (w, alpha, rest...) with the weights' constraints added.

    alpha (the first auxiliary variable) is free, the rest non-negative.
    """
    a_groups, b_groups = group_rows(constraints, n_assets)
    if a_groups is not None and b_groups is not None:
        padded = sparse.hstack(
            [sparse.csr_matrix(a_groups), sparse.csr_matrix((a_groups.shape[0], n_auxiliary))]
        )
        rows = sparse.vstack([rows, padded])
        limits = np.concatenate([limits, b_groups])
    budget = np.concatenate([np.ones(n_assets), np.zeros(n_auxiliary)])[None, :]
    bounds = [
        *zip(constraints.lower(n_assets), constraints.upper(n_assets), strict=True),
        (None, None),
        *[(0.0, None)] * (n_auxiliary - 1),
    ]
    result = linprog(
        cost,
        A_ub=sparse.csr_matrix(rows),
        b_ub=limits,
        A_eq=budget,
        b_eq=[1.0],
        bounds=bounds,
        method="highs",
    )
    if not result.success:
        raise Infeasible("constraints", f"the optimizer found no solution: {result.message}")
    return np.asarray(result.x, dtype=np.float64)
