"""Per-asset bounds, group floors and L2 regularisation against PyPortfolioOpt."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from coinql.domain import mean_variance as mv
from coinql.domain import optimize as opt
from coinql.domain.constraints import (
    ASSET_BOUNDS,
    AssetBound,
    Constraints,
    Group,
    Infeasible,
    bounded,
    check_feasible,
)
from coinql.domain.errors import InvalidInput
from tests.domain.optimizer_inputs import COV, MU, SYMBOLS, TOLERANCE, weights_of

# The research contract's OptimizeConstrained bounds: BTC in [0.2, 0.5], DOGE in [0, 0.05].
PER_ASSET = Constraints(
    0.0, 1.0, (), (AssetBound("BTC", 0, 0.2, 0.5), AssetBound("DOGE", 4, 0.0, 0.05))
)
PER_ASSET_PYPFOPT = [(0.2, 0.5), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (0.0, 0.05), (0.0, 1.0)]
SOLVERS: dict[str, tuple[Callable[[Constraints, float], np.ndarray], str, tuple[float, ...]]] = {
    "min_volatility": (lambda c, g: mv.min_volatility(COV, c, g), "min_volatility", ()),
    "max_sharpe": (lambda c, g: mv.max_sharpe(MU, COV, c, 0.02, g), "max_sharpe", (0.02,)),
    "target_return": (
        lambda c, g: mv.efficient_return(MU, COV, 1.2, c, g),
        "efficient_return",
        (1.2,),
    ),
    "target_volatility": (
        lambda c, g: mv.efficient_risk(MU, COV, 1.05, c, g),
        "efficient_risk",
        (1.05,),
    ),
}


def pypfopt(bounds: object, gamma: float, method: str, *args: float) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_sharpe warns about any added objective
        from pypfopt import EfficientFrontier, objective_functions

        frontier = EfficientFrontier(MU, COV, weight_bounds=bounds)
        if gamma:
            frontier.add_objective(objective_functions.L2_reg, gamma=gamma)
        getattr(frontier, method)(*args)
    return weights_of(frontier)


@pytest.mark.parametrize("objective", list(SOLVERS))
@pytest.mark.parametrize("gamma", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("bounds", ["per_asset", "box"])
def test_l2_and_asset_bounds_match_pypfopt(objective: str, gamma: float, bounds: str) -> None:
    """EfficientFrontier(weight_bounds=...) with add_objective(L2_reg, gamma=...), to 1e-4."""
    solver, method, args = SOLVERS[objective]
    ours_constraints, theirs_bounds = {
        "per_asset": (PER_ASSET, PER_ASSET_PYPFOPT),
        "box": (Constraints(0.0, 0.5), (0.0, 0.5)),
    }[bounds]
    ours = solver(ours_constraints, gamma)
    theirs = pypfopt(theirs_bounds, gamma, method, *args)
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)
    if bounds == "per_asset":
        assert 0.2 - 1e-9 <= ours[0] <= 0.5 + 1e-9 and ours[4] <= 0.05 + 1e-9


def test_l2_spreads_the_weights() -> None:
    """The penalty's point: more, smaller weights as gamma grows."""
    books = [mv.min_volatility(COV, Constraints(), gamma) for gamma in (0.0, 0.1, 1000.0)]
    squares = [float(w @ w) for w in books]
    assert squares[0] > squares[1] > squares[2]
    np.testing.assert_allclose(books[2], 1 / 6, atol=1e-3)


@pytest.mark.parametrize("gamma", [-0.1, np.nan, np.inf])
def test_a_bad_l2_gamma_is_invalid_input(gamma: float) -> None:
    for solver, _, _ in SOLVERS.values():
        with pytest.raises(InvalidInput) as raised:
            solver(Constraints(), gamma)
        assert raised.value.field == "constraints.l2Gamma"


@pytest.mark.parametrize("objective", [opt.Objective.HRP, opt.Objective.MIN_CVAR])
def test_l2_gamma_is_refused_where_it_does_not_apply(objective: opt.Objective) -> None:
    with pytest.raises(InvalidInput) as raised:
        opt.optimal_weights(objective, MU, COV, Constraints(), l2_gamma=0.1)
    assert raised.value.field == "constraints.l2Gamma"


@pytest.mark.parametrize(
    ("bounds", "reason"),
    [
        ((AssetBound("BTC", 0, 0.6, 0.5),), "above max"),
        ((AssetBound("BTC", 0, 0.1, np.nan),), "finite"),
        ((AssetBound("BTC", 0, 0.1, 0.2), AssetBound("BTC", 0, 0.1, 0.2)), "twice"),
        ((AssetBound("XRP", 9, 0.0, 0.2),), "not an asset"),
        (tuple(AssetBound(s, i, 0.0, 0.1) for i, s in enumerate(SYMBOLS)), "sum to 0.6 < 1"),
        ((AssetBound("BTC", 0, 0.7, 1.0), AssetBound("ETH", 1, 0.4, 1.0)), "sum to 1.1 > 1"),
    ],
)
def test_infeasible_asset_bounds_are_invalid_input_before_solving(
    bounds: tuple[AssetBound, ...], reason: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        mv.min_volatility(COV, Constraints(0.0, 1.0, (), bounds))
    assert raised.value.field == ASSET_BOUNDS and reason in raised.value.message


def test_asset_bounds_lift_the_general_max_weight() -> None:
    """maxWeight 0.1 x 6 < 1, but BTC may take up to 0.9: feasible, BTC holding 0.5 or more."""
    constraints = Constraints(0.0, 0.1, (), (AssetBound("BTC", 0, 0.0, 0.9),))
    weights = mv.min_volatility(COV, constraints)
    assert 0.5 - 1e-9 <= weights[0] <= 0.9 + 1e-9 and np.all(weights[1:] <= 0.1 + 1e-9)
    assert weights.sum() == pytest.approx(1.0)


FLOORED = Constraints(0.0, 0.5, (Group("alts", (3, 4, 5), 0.6, 0.3),))


def test_a_group_floor_matches_pypfopt_sector_lower_bounds() -> None:
    sectors = {symbol: "alts" if i >= 3 else "majors" for i, symbol in enumerate(SYMBOLS)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd
        from pypfopt import EfficientFrontier

        frontier = EfficientFrontier(
            pd.Series(MU, index=SYMBOLS),
            pd.DataFrame(COV, index=SYMBOLS, columns=SYMBOLS),
            weight_bounds=(0.0, 0.5),
        )
        frontier.add_sector_constraints(sectors, {"alts": 0.3}, {"alts": 0.6})
        frontier.min_volatility()
    ours = mv.min_volatility(COV, FLOORED)
    np.testing.assert_allclose(ours, weights_of(frontier), atol=TOLERANCE)
    assert ours[3:].sum() == pytest.approx(0.3, abs=1e-7)  # the floor binds


@pytest.mark.parametrize(
    "solve",
    [
        lambda c: mv.min_volatility(COV, c),
        lambda c: mv.max_sharpe(MU, COV, c),
        lambda c: mv.max_return(MU, c),
        lambda c: opt.risk_parity(COV, c),
        lambda c: opt.inverse_volatility(COV, c),
    ],
)
def test_every_solver_keeps_a_group_floor(solve: Callable[[Constraints], np.ndarray]) -> None:
    floor = Constraints(0.0, 1.0, (Group("alts", (3, 4, 5), None, 0.4),))
    weights = solve(floor)
    assert weights.sum() == pytest.approx(1.0) and weights[3:].sum() >= 0.4 - 1e-7


@pytest.mark.parametrize(
    ("group", "named"),
    [
        (Group("alts", (3, 4, 5), 0.2, 0.3), "groups.alts"),  # floor above cap
        (Group("alts", (3, 4), None, 0.9), "groups.alts"),  # two assets of at most 0.4
        (Group("alts", (3, 4), None, np.inf), "groups.alts"),
    ],
)
def test_impossible_group_floors_are_named(group: Group, named: str) -> None:
    with pytest.raises((Infeasible, InvalidInput)) as raised:
        check_feasible(Constraints(0.0, 0.4, (group,)), 6)
    error = raised.value
    assert (error.constraint if isinstance(error, Infeasible) else error.field) == named


def test_groups_that_conflict_only_together_are_found_by_the_program() -> None:
    """Each group alone is possible; a floor of 0.7 on two and a floor of 0.7 on two others
    need 1.4 in all."""
    groups = (Group("a", (0, 1), None, 0.7), Group("b", (2, 3), None, 0.7))
    with pytest.raises(Infeasible) as raised:
        check_feasible(Constraints(0.0, 1.0, groups), 6)
    assert raised.value.constraint == "groups"


def test_the_projection_meets_asset_bounds_and_floors() -> None:
    constraints = Constraints(
        0.0, 1.0, (Group("alts", (3, 4, 5), None, 0.5),), (AssetBound("BTC", 0, 0.3, 0.4),)
    )
    weights = bounded(np.array([0.9, 0.1, 0.0, 0.0, 0.0, 0.0]), constraints)
    assert 0.3 - 1e-9 <= weights[0] <= 0.4 + 1e-9 and weights[3:].sum() >= 0.5 - 1e-9


def test_max_sharpe_starts_where_the_constraints_allow_an_excess_return() -> None:
    """Equal weights projected onto these bounds earn less than the risk-free rate, though
    other books within them earn more: the solver used to start there and give up
    ("Inequality constraints incompatible"); it now starts from the best excess return."""
    mu = np.array([0.11, -0.121, -0.126, -0.011])
    rng = np.random.default_rng(4)
    factors = rng.normal(0, 0.2, (4, 4))
    cov = factors @ factors.T + np.eye(4) * 0.01
    low, high = [0.138, 0.128, 0.033, 0.025], [0.874, 0.296, 0.651, 0.309]
    bounds = tuple(
        AssetBound(symbol, index, lo, hi)
        for index, (symbol, lo, hi) in enumerate(zip("ABCD", low, high, strict=True))
    )
    everything = Constraints(groups=(Group("all", (0, 1, 2, 3), 1.0),), asset_bounds=bounds)
    weights = mv.max_sharpe(mu, cov, everything)
    assert weights.sum() == pytest.approx(1.0)
    assert np.all(weights >= np.array(low) - 1e-9) and np.all(weights <= np.array(high) + 1e-9)
    sharpe = float(mu @ weights) / float(np.sqrt(weights @ cov @ weights))
    # No feasible book drawn at random does better.
    draws = rng.dirichlet(np.ones(4), 20_000)
    feasible = draws[np.all((draws >= low) & (draws <= high), axis=1)]
    assert feasible.size
    others = (feasible @ mu) / np.sqrt(np.einsum("ij,jk,ik->i", feasible, cov, feasible))
    assert sharpe >= others.max() - 1e-9
    with pytest.raises(Infeasible) as refused:  # no book within them beats 0.2
        mv.max_sharpe(mu, cov, everything, risk_free=0.2)
    assert refused.value.constraint == "riskFreeRate"
