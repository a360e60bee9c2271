"""Constraints on portfolio weights, and the solver plumbing that enforces them.

Weights are ndarrays of shape (n_assets,) summing to 1, each within [min_weight, max_weight]
and each group's sum under its cap. An impossible constraint set raises `Infeasible` naming the
constraint; a bound or cap that is not a finite number raises `InvalidInput` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from coinql.domain.errors import InvalidInput, UserError
from coinql.domain.typing import FloatArray

TOLERANCE = 1e-12
MAX_ITERATIONS = 1_000


class Infeasible(UserError):
    """No weights satisfy the constraints; `constraint` names the one at fault."""

    def __init__(self, constraint: str, message: str) -> None:
        super().__init__(message)
        self.constraint = constraint


@dataclass(frozen=True, slots=True)
class Group:
    """A cap on the summed weight of some assets (`members` are their columns)."""

    name: str
    members: tuple[int, ...]
    max_weight: float


@dataclass(frozen=True, slots=True)
class Constraints:
    """Bounds on each weight and caps on groups of them; long-only when min_weight >= 0."""

    min_weight: float = 0.0
    max_weight: float = 1.0
    groups: tuple[Group, ...] = field(default_factory=tuple)

    @property
    def long_only(self) -> bool:
        """Whether no weight may be negative."""
        return self.min_weight >= 0


def check_finite(field: str, value: float) -> None:
    """Raise `InvalidInput` naming `field` unless `value` is a finite number."""
    if not np.isfinite(value):
        raise InvalidInput(field, f"{field} must be a finite number, got {value}")


def check_feasible(constraints: Constraints, n_assets: int) -> None:
    """Check that weights summing to 1 can meet the constraints.

    Parameters
    ----------
    constraints : Constraints
    n_assets : int

    Raises
    ------
    InvalidInput
        For a bound or group cap that is not a finite number, naming it.
    Infeasible
        For bounds or group caps that no weights summing to 1 can meet, naming them.
    """
    low, high = constraints.min_weight, constraints.max_weight
    check_finite("minWeight", low)
    check_finite("maxWeight", high)
    for group in constraints.groups:
        check_finite(f"groups.{group.name}", group.max_weight)
    if low > high:
        raise Infeasible("minWeight", f"minWeight {low} is above maxWeight {high}")
    if high * n_assets < 1 - 1e-9:
        raise Infeasible(
            "maxWeight",
            f"maxWeight {high} x {n_assets} assets < 1: the weights cannot sum to 1",
        )
    if low * n_assets > 1 + 1e-9:
        raise Infeasible(
            "minWeight",
            f"minWeight {low} x {n_assets} assets > 1: the weights cannot sum to 1",
        )
    capped = np.zeros(n_assets)
    for group in constraints.groups:
        if group.max_weight < low * len(group.members) - 1e-9:
            raise Infeasible(
                f"groups.{group.name}",
                f"group {group.name} is capped at {group.max_weight} but its"
                f" {len(group.members)} assets need at least {low * len(group.members)}",
            )
        capped[list(group.members)] = 1
    # Capacity: each asset can take at most its bound, each group at most its cap.
    capacity = high * (n_assets - int(capped.sum()))
    for group in constraints.groups:
        capacity += min(group.max_weight, high * len(group.members))
    if capacity < 1 - 1e-9:
        raise Infeasible(
            "groups", "the group caps and maxWeight together leave less than 100 % to allocate"
        )


def linear_constraints(constraints: Constraints, n_assets: int) -> list[dict[str, object]]:
    """Weights sum to 1 and each group stays under its cap, with their (constant) gradients."""
    found: list[dict[str, object]] = [
        {"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}
    ]
    for group in constraints.groups:
        members = list(group.members)
        gradient = np.zeros(n_assets)
        gradient[members] = -1.0
        found.append(
            {
                "type": "ineq",
                "fun": lambda w, m=members, cap=group.max_weight: cap - np.sum(w[m]),
                "jac": lambda w, g=gradient: g,
            }
        )
    return found


def solve(
    objective: object,
    n_assets: int,
    constraints: Constraints,
    extra: Sequence[dict[str, object]] = (),
    start: FloatArray | None = None,
    gradient: object = None,
) -> FloatArray:
    """Minimise `objective` over weights meeting the constraints (and `extra` ones) by SLSQP.

    Parameters
    ----------
    objective : callable
        Of weights of shape (n_assets,), returning a float.
    n_assets : int
    constraints : Constraints
    extra : sequence of dict, optional
        Further SLSQP constraints (``type``, ``fun``, ``jac``).
    start : ndarray of shape (n_assets,), optional
        Equal weights if omitted; clipped to the bounds.
    gradient : callable, optional
        The objective's gradient.

    Returns
    -------
    ndarray of shape (n_assets,)
        Clipped at the bounds and summing to exactly 1 (`clean`).

    Raises
    ------
    Infeasible
        When the solver fails and its answer does not meet the constraints.
    """
    bounds = [(constraints.min_weight, constraints.max_weight)] * n_assets
    x0 = start if start is not None else np.full(n_assets, 1.0 / n_assets)
    every = [*linear_constraints(constraints, n_assets), *extra]
    result = minimize(
        objective,
        np.clip(x0, constraints.min_weight, constraints.max_weight),
        jac=gradient,
        method="SLSQP",
        bounds=bounds,
        constraints=every,
        options={"ftol": TOLERANCE, "maxiter": MAX_ITERATIONS},
    )
    # SLSQP can stop with "positive directional derivative" at an optimum it cannot improve
    # within its tolerance; a feasible answer then is the answer.
    if not (result.success or feasible(result.x, constraints, every)):
        raise Infeasible("constraints", f"the optimizer found no solution: {result.message}")
    return clean(result.x, constraints)


def feasible(
    weights: FloatArray, constraints: Constraints, every: Sequence[dict[str, object]]
) -> bool:
    """Whether weights meet the bounds and every SLSQP constraint, up to 1e-7."""
    slack = 1e-7
    if np.any(weights < constraints.min_weight - slack) or np.any(
        weights > constraints.max_weight + slack
    ):
        return False
    return _meets_every(weights, every, slack)


def clean(weights: FloatArray, constraints: Constraints) -> FloatArray:
    """Clip solver noise at the bounds and renormalise to sum to exactly 1."""
    clipped = np.clip(weights, constraints.min_weight, constraints.max_weight)
    clipped[np.abs(clipped) < 1e-10] = 0.0
    return clipped / clipped.sum()


def variance_of(cov: FloatArray) -> tuple[Callable[[FloatArray], Any], Callable[[FloatArray], Any]]:
    """Return the portfolio variance w'Sw and its gradient 2Sw, functions of weights."""
    return (lambda w: w @ cov @ w), (lambda w: 2.0 * cov @ w)


def feasible_scaled(x: FloatArray, every: Sequence[dict[str, object]], kappa: float) -> bool:
    """Whether scaled variables x = w x kappa meet every constraint, up to 1e-7 x max(1, kappa)."""
    return _meets_every(x, every, 1e-7 * max(1.0, kappa))


def _meets_every(x: FloatArray, every: Sequence[dict[str, object]], slack: float) -> bool:
    """Whether x meets every SLSQP constraint ("eq" within +-slack, "ineq" down to -slack)."""
    for constraint in every:
        value = np.atleast_1d(constraint["fun"](x))  # type: ignore[operator]
        if constraint["type"] == "eq" and np.any(np.abs(value) > slack):
            return False
        if constraint["type"] == "ineq" and np.any(value < -slack):
            return False
    return True


def bounded(weights: FloatArray, constraints: Constraints) -> FloatArray:
    """Return the closest weights (least squares) to an allocation that meet the constraints.

    Parameters
    ----------
    weights : ndarray of shape (n_assets,)
        A heuristic allocation summing to 1.
    constraints : Constraints

    Returns
    -------
    ndarray of shape (n_assets,)
        `weights` themselves when they already meet the constraints.
    """
    if (
        np.all(weights >= constraints.min_weight - 1e-12)
        and np.all(weights <= constraints.max_weight + 1e-12)
        and all(weights[list(g.members)].sum() <= g.max_weight + 1e-12 for g in constraints.groups)
    ):
        return weights
    return solve(lambda w: np.sum((w - weights) ** 2), weights.shape[0], constraints, start=weights)
