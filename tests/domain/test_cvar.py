"""Minimum CVaR and CDaR against PyPortfolioOpt's EfficientCVaR and EfficientCDaR."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from coinql.domain import cvar, risk
from coinql.domain import optimize as opt
from coinql.domain.constraints import AssetBound, Constraints, Group, Infeasible
from coinql.domain.errors import InvalidInput
from tests.domain.optimizer_inputs import COV, MU, RETURNS, TOLERANCE


def pypfopt(kind: str, level: float, bounds: object = (0, 1)):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientCDaR, EfficientCVaR

        if kind == "cvar":
            found = EfficientCVaR(MU, RETURNS, beta=level, weight_bounds=bounds)
            found.min_cvar()
        else:
            found = EfficientCDaR(MU, RETURNS, beta=level, weight_bounds=bounds)
            found.min_cdar()
    weights = np.array(list(found.clean_weights(rounding=None).values()))
    return weights, found.portfolio_performance()[1]


MEASURES = {
    "cvar": (cvar.min_cvar, cvar.conditional_value_at_risk),
    "cdar": (cvar.min_cdar, cvar.conditional_drawdown_at_risk),
}


@pytest.mark.parametrize("kind", list(MEASURES))
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_min_tail_risk_matches_pypfopt(kind: str, level: float) -> None:
    """At least as low a CVaR (CDaR) as PyPortfolioOpt's optimum, and the same weights."""
    solve, measure = MEASURES[kind]
    ours = solve(RETURNS, Constraints(), level)
    theirs, their_value = pypfopt(kind, level)
    assert measure(ours, RETURNS, level) <= measure(theirs, RETURNS, level) + 1e-6
    assert measure(ours, RETURNS, level) == pytest.approx(their_value, abs=1e-6)
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


@pytest.mark.parametrize("kind", list(MEASURES))
def test_min_tail_risk_under_asset_bounds_matches_pypfopt(kind: str) -> None:
    solve, measure = MEASURES[kind]
    bounds = Constraints(0.0, 0.4, (), (AssetBound("BTC", 0, 0.2, 0.5),))
    ours = solve(RETURNS, bounds, 0.95)
    theirs, _ = pypfopt(kind, 0.95, [(0.2, 0.5)] + [(0.0, 0.4)] * 5)
    assert measure(ours, RETURNS, 0.95) <= measure(theirs, RETURNS, 0.95) + 1e-6
    np.testing.assert_allclose(ours, theirs, atol=TOLERANCE)


@pytest.mark.parametrize("kind", list(MEASURES))
def test_min_tail_risk_keeps_group_limits(kind: str) -> None:
    solve, _ = MEASURES[kind]
    groups = (Group("alts", (3, 4, 5), 0.5, 0.3), Group("majors", (0, 1), 0.4))
    weights = solve(RETURNS, Constraints(0.0, 1.0, groups), 0.95)
    assert weights.sum() == pytest.approx(1.0)
    assert 0.3 - 1e-9 <= weights[3:].sum() <= 0.5 + 1e-9 and weights[:2].sum() <= 0.4 + 1e-9


def test_the_tail_mean_is_the_rockafellar_uryasev_minimum() -> None:
    """The closed form equals min over alpha of alpha + E[(L - alpha)+] / (1 - level), and the
    house's historical expected shortfall when T (1 - level) is a whole number."""
    rng = np.random.default_rng(0)
    losses = rng.standard_t(3, size=250) * 0.02
    for level in (0.9, 0.95, 0.975, 0.99, 0.999):
        alphas = np.sort(losses)
        objective = alphas + np.maximum(losses[None, :] - alphas[:, None], 0).sum(axis=1) / (
            250 * (1 - level)
        )
        assert cvar.tail_mean(losses, level) == pytest.approx(objective.min(), rel=1e-12)
    whole = cvar.tail_mean(losses[:200], 0.95)  # 200 x 0.05 = 10 periods
    assert whole == pytest.approx(
        risk.expected_shortfall(-losses[:200], 0.95, risk.VarMethod.HISTORICAL), rel=1e-12
    )


def test_drawdowns_of_the_uncompounded_path() -> None:
    np.testing.assert_allclose(
        cvar.drawdowns(np.array([-0.1, 0.05, 0.2, -0.3, 0.1])), [0.1, 0.05, 0.0, 0.3, 0.2]
    )


def test_describe_reports_the_tail_measures_only_with_scenarios() -> None:
    weights = np.full(6, 1 / 6)
    with_scenarios = opt.describe(weights, MU, COV, 0.0, RETURNS, 0.95)
    assert with_scenarios.expected_shortfall == pytest.approx(
        cvar.conditional_value_at_risk(weights, RETURNS, 0.95)
    )
    assert with_scenarios.conditional_drawdown > 0
    assert np.isnan(opt.describe(weights, MU, COV, 0.0).expected_shortfall)


@pytest.mark.parametrize("objective", [opt.Objective.MIN_CVAR, opt.Objective.MIN_CDAR])
def test_the_dispatch_reaches_the_tail_objectives(objective: opt.Objective) -> None:
    found = opt.optimal_weights(
        objective, MU, COV, Constraints(), scenarios=RETURNS, cvar_level=0.9
    )
    solve = cvar.min_cvar if objective is opt.Objective.MIN_CVAR else cvar.min_cdar
    np.testing.assert_allclose(found, solve(RETURNS, Constraints(), 0.9), atol=1e-12)
    with pytest.raises(ValueError, match="scenarios"):
        opt.optimal_weights(objective, MU, COV, Constraints())


@pytest.mark.parametrize("level", [0.0, 1.0, np.nan, -0.5])
def test_a_bad_level_is_invalid_input(level: float) -> None:
    for solve, _ in MEASURES.values():
        with pytest.raises(InvalidInput) as raised:
            solve(RETURNS, Constraints(), level)
        assert raised.value.field == "cvarLevel"


def test_too_few_or_missing_scenarios_are_refused() -> None:
    gappy = RETURNS[:10].copy()
    gappy[3, 2] = np.nan
    for scenarios in (RETURNS[:1], gappy):
        with pytest.raises(Infeasible) as raised:
            cvar.min_cvar(scenarios, Constraints())
        assert raised.value.constraint == "symbols"
    np.testing.assert_array_equal(cvar.complete_periods(gappy), np.delete(RETURNS[:10], 3, 0))


def test_impossible_constraints_are_refused_before_the_program() -> None:
    with pytest.raises(Infeasible) as raised:
        cvar.min_cdar(RETURNS, Constraints(0.0, 0.1))
    assert raised.value.constraint == "maxWeight"
