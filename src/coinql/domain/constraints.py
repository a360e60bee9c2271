"""Constraints on portfolio weights, and the solver plumbing that enforces them.

Weights are ndarrays of shape (n_assets,) summing to 1, each within its bounds (`min_weight`
and `max_weight`, or the asset's own `AssetBound`) and each group's sum within its floor and
cap. An impossible constraint set raises `Infeasible` naming the constraint; a bound, floor or
cap that is not a finite number, and asset bounds that cannot hold together, raise
`InvalidInput` naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linprog, minimize

from coinql.domain.errors import InvalidInput, UserError
from coinql.domain.typing import FloatArray

TOLERANCE = 1e-12
MAX_ITERATIONS = 1_000
ASSET_BOUNDS = "constraints.assetBounds"


class Infeasible(UserError):
    """No weights satisfy the constraints; `constraint` names the one at fault."""

    def __init__(self, constraint: str, message: str) -> None:
        super().__init__(message)
        self.constraint = constraint


@dataclass(frozen=True, slots=True)
class Group:
    """A cap and/or a floor on the summed weight of some assets (`members` are their columns).

    None is no cap (no floor).
    """

    name: str
    members: tuple[int, ...]
    max_weight: float | None = None
    min_weight: float | None = None


@dataclass(frozen=True, slots=True)
class AssetBound:
    """One asset's own bounds (`member` is its column), in place of min_weight and max_weight."""

    symbol: str
    member: int
    min_weight: float
    max_weight: float


@dataclass(frozen=True, slots=True)
class Constraints:
    """Bounds on each weight and limits on groups of them; long-only when no bound is negative."""

    min_weight: float = 0.0
    max_weight: float = 1.0
    groups: tuple[Group, ...] = field(default_factory=tuple)
    asset_bounds: tuple[AssetBound, ...] = field(default_factory=tuple)

    @property
    def long_only(self) -> bool:
        """Whether no weight may be negative."""
        return self.min_weight >= 0 and all(b.min_weight >= 0 for b in self.asset_bounds)

    def lower(self, n_assets: int) -> FloatArray:
        """Return each asset's lower bound, ndarray of shape (n_assets,)."""
        found = np.full(n_assets, self.min_weight, dtype=np.float64)
        for bound in self.asset_bounds:
            found[bound.member] = bound.min_weight
        return found

    def upper(self, n_assets: int) -> FloatArray:
        """Return each asset's upper bound, ndarray of shape (n_assets,)."""
        found = np.full(n_assets, self.max_weight, dtype=np.float64)
        for bound in self.asset_bounds:
            found[bound.member] = bound.max_weight
        return found


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
        For a bound, group floor or cap that is not a finite number, naming it; for asset
        bounds with min above max, an asset bounded twice or a column out of range, or bounds
        that cannot sum to 1 ("constraints.assetBounds").
    Infeasible
        For bounds or group limits that no weights summing to 1 can meet, naming them.
    """
    low, high = constraints.min_weight, constraints.max_weight
    check_finite("minWeight", low)
    check_finite("maxWeight", high)
    for group in constraints.groups:
        for limit in (group.max_weight, group.min_weight):
            if limit is not None:
                check_finite(f"groups.{group.name}", limit)
    if low > high:
        raise Infeasible("minWeight", f"minWeight {low} is above maxWeight {high}")
    _check_asset_bounds(constraints.asset_bounds, n_assets)
    lower, upper = constraints.lower(n_assets), constraints.upper(n_assets)
    if constraints.asset_bounds:
        if upper.sum() < 1 - 1e-9:
            raise InvalidInput(
                ASSET_BOUNDS, f"the upper bounds sum to {upper.sum():g} < 1: the weights cannot"
            )
        if lower.sum() > 1 + 1e-9:
            raise InvalidInput(
                ASSET_BOUNDS, f"the lower bounds sum to {lower.sum():g} > 1: the weights cannot"
            )
    elif high * n_assets < 1 - 1e-9:
        raise Infeasible(
            "maxWeight",
            f"maxWeight {high} x {n_assets} assets < 1: the weights cannot sum to 1",
        )
    elif low * n_assets > 1 + 1e-9:
        raise Infeasible(
            "minWeight",
            f"minWeight {low} x {n_assets} assets > 1: the weights cannot sum to 1",
        )
    for group in constraints.groups:
        _check_group(group, lower, upper)
    if constraints.groups:
        a_ub, b_ub = group_rows(constraints, n_assets)
        found = linprog(
            np.zeros(n_assets),
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=np.ones((1, n_assets)),
            b_eq=[1.0],
            bounds=list(zip(lower, upper, strict=True)),
            method="highs",
        )
        if not found.success:
            raise Infeasible(
                "groups", "the group limits and the bounds together leave no way to allocate 100 %"
            )


def _check_asset_bounds(bounds: Sequence[AssetBound], n_assets: int) -> None:
    """Raise `InvalidInput` ("constraints.assetBounds") for a bound that cannot hold by itself."""
    seen: set[int] = set()
    for bound in bounds:
        if not (np.isfinite(bound.min_weight) and np.isfinite(bound.max_weight)):
            raise InvalidInput(ASSET_BOUNDS, f"{bound.symbol}: the bounds must be finite numbers")
        if bound.min_weight > bound.max_weight:
            raise InvalidInput(
                ASSET_BOUNDS,
                f"{bound.symbol}: min {bound.min_weight} is above max {bound.max_weight}",
            )
        if bound.member in seen or not 0 <= bound.member < n_assets:
            raise InvalidInput(ASSET_BOUNDS, f"{bound.symbol}: bounded twice or not an asset")
        seen.add(bound.member)


def _check_group(group: Group, lower: FloatArray, upper: FloatArray) -> None:
    """Raise `Infeasible` ("groups.NAME") for a group whose own limits its members cannot meet."""
    named = f"groups.{group.name}"
    members = list(group.members)
    least, most = float(lower[members].sum()), float(upper[members].sum())
    cap, floor = group.max_weight, group.min_weight
    if cap is not None and floor is not None and floor > cap:
        raise Infeasible(named, f"group {group.name}'s minWeight {floor} is above its cap {cap}")
    if cap is not None and cap < least - 1e-9:
        raise Infeasible(
            named,
            f"group {group.name} is capped at {cap} but its"
            f" {len(members)} assets need at least {least:g}",
        )
    if floor is not None and floor > most + 1e-9:
        raise Infeasible(
            named,
            f"group {group.name} needs at least {floor} but its"
            f" {len(members)} assets can hold at most {most:g}",
        )


def group_rows(
    constraints: Constraints, n_assets: int
) -> tuple[FloatArray | None, FloatArray | None]:
    """Return the group limits as a linear program's A_ub w <= b_ub (None, None without any).

    Returns
    -------
    a_ub : ndarray of shape (n_limits, n_assets) or None
    b_ub : ndarray of shape (n_limits,) or None
        A cap is the row of its members <= cap, a floor minus that row <= -floor.
    """
    rows: list[FloatArray] = []
    limits: list[float] = []
    for group in constraints.groups:
        row = np.zeros(n_assets)
        row[list(group.members)] = 1.0
        if group.max_weight is not None:
            rows.append(row)
            limits.append(group.max_weight)
        if group.min_weight is not None:
            rows.append(-row)
            limits.append(-group.min_weight)
    if not rows:
        return None, None
    return np.array(rows), np.array(limits)


def linear_constraints(constraints: Constraints, n_assets: int) -> list[dict[str, object]]:
    """Weights sum to 1 and each group stays within its limits, with their (constant) gradients."""
    found: list[dict[str, object]] = [
        {"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones_like(w)}
    ]
    a_ub, b_ub = group_rows(constraints, n_assets)
    if a_ub is not None and b_ub is not None:
        found.append({"type": "ineq", "fun": lambda w: b_ub - a_ub @ w, "jac": lambda w: -a_ub})
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
    lower, upper = constraints.lower(n_assets), constraints.upper(n_assets)
    x0 = start if start is not None else np.full(n_assets, 1.0 / n_assets)
    every = [*linear_constraints(constraints, n_assets), *extra]
    result = minimize(
        objective,
        np.clip(x0, lower, upper),
        jac=gradient,
        method="SLSQP",
        bounds=list(zip(lower, upper, strict=True)),
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
    n = weights.shape[0]
    if np.any(weights < constraints.lower(n) - slack) or np.any(
        weights > constraints.upper(n) + slack
    ):
        return False
    return _meets_every(weights, every, slack)


def clean(weights: FloatArray, constraints: Constraints) -> FloatArray:
    """Clip solver noise at the bounds and renormalise to sum to exactly 1."""
    n = weights.shape[0]
    clipped = np.clip(weights, constraints.lower(n), constraints.upper(n))
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
    n = weights.shape[0]
    a_ub, b_ub = group_rows(constraints, n)
    if (
        np.all(weights >= constraints.lower(n) - 1e-12)
        and np.all(weights <= constraints.upper(n) + 1e-12)
        and (a_ub is None or b_ub is None or np.all(a_ub @ weights <= b_ub + 1e-12))
    ):
        return weights
    return solve(lambda w: np.sum((w - weights) ** 2), weights.shape[0], constraints, start=weights)
