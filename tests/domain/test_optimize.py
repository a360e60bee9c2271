"""The optimizer against PyPortfolioOpt (mean-variance) and skfolio (risk parity, HRP)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coinql.domain import mean_variance as mv
from coinql.domain import optimize as opt
from coinql.domain.constraints import (
    Constraints,
    Group,
    Infeasible,
    check_feasible,
    feasible_scaled,
)
from coinql.domain.errors import InvalidInput
from tests.domain.optimizer_inputs import COV, MU, RETURNS, SYMBOLS, TOLERANCE, weights_of

BOUNDED = Constraints(0.0, 0.5)


def pypfopt_frontier():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientFrontier
    return EfficientFrontier(MU, COV, weight_bounds=(0.0, 0.5))


def test_max_sharpe_matches_pypfopt() -> None:
    theirs = pypfopt_frontier()
    theirs.max_sharpe(risk_free_rate=0.02)
    ours = mv.max_sharpe(MU, COV, BOUNDED, 0.02)
    np.testing.assert_allclose(ours, weights_of(theirs), atol=TOLERANCE)


def test_max_sharpe_with_shorts_matches_pypfopt() -> None:
    """Negative bounds: the scaled lower bounds and sum(y) >= 0 are general constraints."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientFrontier

        theirs = EfficientFrontier(MU, COV, weight_bounds=(-0.2, 0.6))
        theirs.max_sharpe(risk_free_rate=0.02)
    ours = mv.max_sharpe(MU, COV, Constraints(-0.2, 0.6), 0.02)
    np.testing.assert_allclose(ours, weights_of(theirs), atol=TOLERANCE)


@pytest.mark.parametrize("seed", range(12))
def test_max_sharpe_under_random_bounds_matches_pypfopt(seed: int) -> None:
    """Random books of 3 to 40 assets under box bounds (the active-set path, which falls back
    to SLSQP when unsure): the same Sharpe ratio as PyPortfolioOpt's, and the same weights."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 41))
    factors = rng.normal(size=(n, 3)) * rng.uniform(0.1, 0.6, size=3)
    cov = factors @ factors.T + np.diag(rng.uniform(0.01, 0.2, size=n))
    mu = rng.normal(0.15, 0.25, size=n)
    mu[0] = abs(mu[0]) + 0.05  # at least one asset above the risk-free rate
    low = float(rng.choice([0.0, -0.1]))
    high = float(max(1.5 / n, rng.uniform(1.0 / n, 0.6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientFrontier

        theirs = EfficientFrontier(mu, cov, weight_bounds=(low, high))
        theirs.max_sharpe(risk_free_rate=0.02)
    reference = weights_of(theirs)
    ours = mv.max_sharpe(mu, cov, Constraints(low, high), 0.02)
    direct = mv._box_tangency(mu - 0.02, cov, low, high)  # the path, not SLSQP's fallback
    assert direct is not None
    np.testing.assert_allclose(direct, ours, atol=1e-9)

    def sharpe(w: np.ndarray) -> float:
        return float((w @ mu - 0.02) / np.sqrt(w @ cov @ w))

    assert ours.sum() == pytest.approx(1.0)
    assert np.all(ours >= low - 1e-9) and np.all(ours <= high + 1e-9)
    assert sharpe(ours) >= sharpe(reference) - 1e-6
    np.testing.assert_allclose(ours, reference, atol=1e-3)


def test_max_sharpe_with_a_group_cap_and_no_upper_bound_matches_pypfopt() -> None:
    """maxWeight 1 needs no scaled upper bounds; a group cap is a scaled constraint."""
    sectors = {symbol: "alts" if i >= 3 else "majors" for i, symbol in enumerate(SYMBOLS)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandas as pd
        from pypfopt import EfficientFrontier

        theirs = EfficientFrontier(
            pd.Series(MU, index=SYMBOLS),
            pd.DataFrame(COV, index=SYMBOLS, columns=SYMBOLS),
            weight_bounds=(0.0, 1.0),
        )
        theirs.add_sector_constraints(sectors, {}, {"alts": 0.15})
        theirs.max_sharpe(risk_free_rate=0.02)
    capped = Constraints(0.0, 1.0, (Group("alts", (3, 4, 5), 0.15),))
    ours = mv.max_sharpe(MU, COV, capped, 0.02)
    np.testing.assert_allclose(ours, weights_of(theirs), atol=TOLERANCE)
    assert ours[3:].sum() <= 0.15 + 1e-9


def test_a_solver_failure_with_infeasible_weights_is_infeasible() -> None:
    every = [{"type": "eq", "fun": lambda x: np.sum(x) - 2.0}]
    assert feasible_scaled(np.array([1.0, 1.0]), every, 2.0)
    assert not feasible_scaled(np.array([1.0, 1.5]), every, 2.5)
    upper = [{"type": "ineq", "fun": lambda x: 0.5 * np.sum(x) - x}]
    assert not feasible_scaled(np.array([1.0, 3.0]), upper, 4.0)


def test_min_volatility_matches_pypfopt() -> None:
    theirs = pypfopt_frontier()
    theirs.min_volatility()
    np.testing.assert_allclose(mv.min_volatility(COV, BOUNDED), weights_of(theirs), atol=TOLERANCE)


@pytest.mark.parametrize("target", [1.2, 1.5, 1.8])
def test_efficient_return_matches_pypfopt(target: float) -> None:
    theirs = pypfopt_frontier()
    theirs.efficient_return(target)
    np.testing.assert_allclose(
        mv.efficient_return(MU, COV, target, BOUNDED), weights_of(theirs), atol=TOLERANCE
    )


def test_efficient_risk_matches_pypfopt() -> None:
    theirs = pypfopt_frontier()
    theirs.efficient_risk(0.95)
    np.testing.assert_allclose(
        mv.efficient_risk(MU, COV, 0.95, BOUNDED), weights_of(theirs), atol=TOLERANCE
    )


def test_frontier_is_ordered_and_efficient() -> None:
    portfolios = [opt.describe(w, MU, COV, 0.0) for w in mv.frontier(MU, COV, BOUNDED, 10)]
    returns = [p.expected_return for p in portfolios]
    vols = [p.volatility for p in portfolios]
    assert returns == sorted(returns) and vols == sorted(vols)
    # Each point is PyPortfolioOpt's efficient portfolio for its return.
    for p in portfolios[1:-1]:
        theirs = pypfopt_frontier()
        theirs.efficient_return(p.expected_return)
        np.testing.assert_allclose(p.weights, weights_of(theirs), atol=TOLERANCE)


def test_the_warm_started_frontier_equals_the_cold_one() -> None:
    """Each point solved from its neighbour's weights is the point solved from equal weights."""
    warm = mv.frontier(MU, COV, BOUNDED, 12)
    targets = np.linspace(MU @ warm[0], MU @ warm[-1], 12)
    for weights, target in zip(warm[1:-1], targets[1:-1], strict=True):
        cold = mv.efficient_return(MU, COV, float(target), BOUNDED)
        np.testing.assert_allclose(weights, cold, atol=1e-6)
        assert np.sqrt(weights @ COV @ weights) == pytest.approx(
            np.sqrt(cold @ COV @ cold), rel=1e-9
        )


def skfolio():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import skfolio.cluster
        import skfolio.moments
        import skfolio.optimization
        import skfolio.prior
        import skfolio.seriation
    return skfolio


def test_risk_parity_matches_skfolio() -> None:
    sk = skfolio()
    prior = sk.prior.EmpiricalPrior(covariance_estimator=sk.moments.EmpiricalCovariance())
    theirs = sk.optimization.RiskBudgeting(prior_estimator=prior).fit(RETURNS).weights_
    ours = opt.risk_parity(np.cov(RETURNS, rowvar=False), Constraints())
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)
    contributions = ours * (COV @ ours)
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-6)


def test_hrp_matches_skfolio_with_the_original_papers_choices() -> None:
    """Single linkage and no optimal leaf ordering, as Lopez de Prado (2016) and coinql;
    skfolio's defaults (Ward linkage, optimal ordering) give other weights by design."""
    sk = skfolio()
    prior = sk.prior.EmpiricalPrior(covariance_estimator=sk.moments.EmpiricalCovariance())
    seriation = sk.seriation.HierarchicalSeriation(
        hierarchical_clustering_estimator=sk.cluster.HierarchicalClustering(
            linkage_method=sk.cluster.LinkageMethod.SINGLE
        ),
        optimal_ordering=False,
    )
    theirs = (
        sk.optimization.HierarchicalRiskParity(seriation_estimator=seriation, prior_estimator=prior)
        .fit(RETURNS)
        .weights_
    )
    ours = opt.hrp(np.cov(RETURNS, rowvar=False), Constraints())
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


def test_simple_allocations() -> None:
    np.testing.assert_allclose(opt.equal_weight(4, Constraints()), 0.25)
    inverse = 1 / np.sqrt(np.diag(COV))
    np.testing.assert_allclose(opt.inverse_volatility(COV, Constraints()), inverse / inverse.sum())
    caps = np.array([600.0, 250.0, 50.0, 40.0, 30.0, 10.0])
    capped = opt.market_cap_weight(caps, BOUNDED)
    assert capped.max() <= 0.5 + 1e-9 and capped.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("constraints", "named"),
    [
        (Constraints(0.0, 0.1), "maxWeight"),
        (Constraints(0.2, 1.0), "minWeight"),
        (Constraints(0.5, 0.4), "minWeight"),
        (Constraints(0.0, 0.5, (Group("coins", (0, 1, 2, 3, 4, 5), 0.5),)), "groups"),
    ],
)
def test_infeasible_constraints_are_named(constraints: Constraints, named: str) -> None:
    with pytest.raises(Infeasible) as raised:
        mv.max_sharpe(MU, COV, constraints)
    assert raised.value.constraint == named


def test_unreachable_targets_are_named() -> None:
    with pytest.raises(Infeasible) as raised:
        mv.efficient_return(MU, COV, 50.0, BOUNDED)
    assert raised.value.constraint == "targetReturn"
    with pytest.raises(Infeasible) as raised:
        mv.efficient_risk(MU, COV, 0.01, BOUNDED)
    assert raised.value.constraint == "targetVolatility"


OBJECTIVES = {
    "min_volatility": lambda c: mv.min_volatility(COV, c),
    "max_sharpe": lambda c: mv.max_sharpe(MU, COV, c),
    "target_return": lambda c: mv.efficient_return(MU, COV, 1.2, c),
    "target_volatility": lambda c: mv.efficient_risk(MU, COV, 0.95, c),
    "risk_parity": lambda c: opt.risk_parity(COV, c),
    "hrp": lambda c: opt.hrp(COV, c),
    "inverse_volatility": lambda c: opt.inverse_volatility(COV, c),
    "equal_weight": lambda c: opt.equal_weight(6, c),
    "max_return": lambda c: mv.max_return(MU, c),
    "frontier": lambda c: mv.frontier(MU, COV, c, 3),
}
NON_FINITE_CONSTRAINTS = {
    "maxWeight inf": (Constraints(0.0, np.inf), "maxWeight"),
    "minWeight -inf": (Constraints(-np.inf, 1.0), "minWeight"),
    "both infinite": (Constraints(-np.inf, np.inf), "minWeight"),
    "maxWeight NaN": (Constraints(0.0, np.nan), "maxWeight"),
    "minWeight NaN": (Constraints(np.nan, 1.0), "minWeight"),
    "group cap NaN": (
        Constraints(0.0, 1.0, (Group("alts", (3, 4), np.nan),)),
        "groups.alts",
    ),
    "group cap inf": (
        Constraints(0.0, 1.0, (Group("alts", (3, 4), np.inf),)),
        "groups.alts",
    ),
}


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("case", list(NON_FINITE_CONSTRAINTS))
def test_non_finite_bounds_are_refused_naming_the_field(objective: str, case: str) -> None:
    """Not silently equal weights (MAX_SHARPE with infinite bounds) nor NaN weights."""
    constraints, named = NON_FINITE_CONSTRAINTS[case]
    with pytest.raises(InvalidInput) as raised:
        OBJECTIVES[objective](constraints)
    assert raised.value.field == named


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_targets_are_refused_naming_the_field(value: float) -> None:
    for call, named in (
        (lambda: mv.efficient_return(MU, COV, value, BOUNDED), "targetReturn"),
        (lambda: mv.efficient_risk(MU, COV, value, BOUNDED), "targetVolatility"),
        (lambda: mv.max_sharpe(MU, COV, BOUNDED, value), "riskFreeRate"),
    ):
        with pytest.raises(InvalidInput) as raised:
            call()
        assert raised.value.field == named


@settings(max_examples=25, deadline=None)
@given(
    st.floats(0.0, 0.15),
    st.floats(0.3, 1.0),
    st.sampled_from(
        ["min_volatility", "max_sharpe", "risk_parity", "hrp", "inverse_volatility", "equal"]
    ),
    st.floats(0.3, 0.9),
)
def test_every_objective_respects_the_constraints(
    low: float, high: float, objective: str, group_cap: float
) -> None:
    group = Group("alts", (3, 4, 5), group_cap)
    constraints = Constraints(low, high, (group,))
    try:
        check_feasible(constraints, 6)
    except Infeasible:
        return
    weights = {
        "min_volatility": lambda: mv.min_volatility(COV, constraints),
        "max_sharpe": lambda: mv.max_sharpe(MU, COV, constraints),
        "risk_parity": lambda: opt.risk_parity(COV, constraints),
        "hrp": lambda: opt.hrp(COV, constraints),
        "inverse_volatility": lambda: opt.inverse_volatility(COV, constraints),
        "equal": lambda: opt.equal_weight(6, constraints),
    }[objective]()
    assert weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert np.all(weights >= low - 1e-6) and np.all(weights <= high + 1e-6)
    assert weights[[3, 4, 5]].sum() <= group_cap + 1e-6
