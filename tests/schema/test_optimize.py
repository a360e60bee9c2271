"""The research contract's OptimizeConstrained and OptimizeCvar through the API, against
PyPortfolioOpt on the same daily returns, and their inputs' typed errors."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from coinql.domain import cvar
from coinql.resolvers.optimize import MAX_SCENARIOS
from tests.client import GraphQLClient
from tests.conftest import import_real_files, upload
from tests.domain.coins import aligned_returns

SYMBOLS = ["BTC", "ETH", "BNB", "ADA", "DOGE", "LTC"]
WINDOW = {"start": "2019-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"}
START, END = 1546300800000, 1625011200000  # WINDOW in epoch ms


@pytest.fixture
async def market(client: GraphQLClient, admin: str) -> GraphQLClient:
    await import_real_files(client, admin)
    return client


def window_returns() -> np.ndarray:
    """The API's returns over WINDOW: the first is dated the day after the start."""
    timestamps, returns = aligned_returns(SYMBOLS)
    return returns[(timestamps >= START + 86_400_000) & (timestamps <= END)]


def weights(found: dict[str, list[dict[str, float]]]) -> np.ndarray:
    assert [w["symbol"] for w in found["weights"]] == SYMBOLS
    return np.array([w["weight"] for w in found["weights"]])


async def test_optimize_constrained_is_pypfopt_with_bounds_and_l2(market: GraphQLClient) -> None:
    found = (await market.contract("research", "OptimizeConstrained", WINDOW)).ok()["optimize"]
    r = window_returns()
    mu, cov = r.mean(axis=0) * 365, np.cov(r, rowvar=False) * 365
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientFrontier, objective_functions

        frontier = EfficientFrontier(
            mu, cov, weight_bounds=[(0.2, 0.5), (0, 1), (0, 1), (0, 1), (0, 0.05), (0, 1)]
        )
        frontier.add_objective(objective_functions.L2_reg, gamma=0.1)
        frontier.min_volatility()
    theirs = np.array(list(frontier.clean_weights(rounding=None).values()))
    ours = weights(found)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert 0.2 - 1e-9 <= ours[0] <= 0.5 + 1e-9 and ours[4] <= 0.05 + 1e-9
    assert found["volatility"] == pytest.approx(np.sqrt(ours @ cov @ ours), rel=1e-9)


async def test_optimize_cvar_is_pypfopt_min_cvar(market: GraphQLClient) -> None:
    found = (await market.contract("research", "OptimizeCvar", WINDOW)).ok()["optimize"]
    r = window_returns()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientCVaR

        efficient = EfficientCVaR(r.mean(axis=0) * 365, r, beta=0.95)
        efficient.min_cvar()
    theirs = np.array(list(efficient.clean_weights(rounding=None).values()))
    ours = weights(found)
    their_cvar = efficient.portfolio_performance()[1]
    assert found["expectedShortfall"] <= their_cvar + 1e-6
    assert found["expectedShortfall"] == pytest.approx(
        cvar.conditional_value_at_risk(ours, r, 0.95), rel=1e-9
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


async def test_min_cdar_group_floors_and_every_figure(market: GraphQLClient) -> None:
    query = """
    query ($start: DateTime, $end: DateTime) {
      optimize(input: {symbols: ["BTC", "ETH", "BNB", "ADA", "DOGE", "LTC"], objective: MIN_CDAR,
                       start: $start, end: $end, cvarLevel: 0.9,
                       constraints: {groups: [{name: "alts", symbols: ["ADA", "DOGE", "LTC"],
                                               minWeight: 0.3}]}}) {
        weights { symbol weight } expectedReturn volatility sharpe expectedShortfall
        conditionalDrawdownAtRisk riskContributions { contribution } observations
      }
    }
    """
    found = (await market.execute(query, WINDOW)).ok()["optimize"]
    ours = weights(found)
    r = window_returns()
    assert ours[3:].sum() >= 0.3 - 1e-9 and ours.sum() == pytest.approx(1.0)
    assert found["conditionalDrawdownAtRisk"] == pytest.approx(
        cvar.conditional_drawdown_at_risk(ours, r, 0.9), rel=1e-9
    )
    assert all(isinstance(value, float | int | list) for value in found.values())


@pytest.mark.parametrize(
    ("constraints", "extra", "field"),
    [
        ('assetBounds: [{symbol: "XRP", max: 0.5}]', "", "constraints.assetBounds"),
        ('assetBounds: [{symbol: "BTC", min: 0.6, max: 0.5}]', "", "constraints.assetBounds"),
        ('assetBounds: [{symbol: "BTC", min: -0.1}]', "", "constraints.assetBounds"),
        (
            'assetBounds: [{symbol: "BTC", max: 0.1}, {symbol: "ETH", max: 0.1}]',
            "",
            "constraints.assetBounds",
        ),
        ('assetBounds: [{symbol: "BTC", max: 2}]', "", "constraints.assetBounds[0].max"),
        ("l2Gamma: 0.1", "objective: HRP", "constraints.l2Gamma"),
        ("l2Gamma: -1", "", "constraints.l2Gamma"),
        ("maxWeight: 1", "objective: MIN_CVAR, cvarLevel: 1", "cvarLevel"),
        ('groups: [{name: "g", symbols: ["BTC"]}]', "", "constraints.groups.g"),
        (
            'groups: [{name: "g", symbols: ["BTC", "btc"], maxWeight: 0.6}]',
            "",
            "constraints.groups.g",
        ),
        ('groups: [{name: "g", symbols: ["BTC"], minWeight: 1.5}]', "", None),
    ],
)
async def test_bad_new_inputs_are_typed_errors_naming_the_field(
    market: GraphQLClient, constraints: str, extra: str, field: str | None
) -> None:
    query = (
        '{ optimize(input: {symbols: ["BTC", "ETH"], '
        f"{extra + ', ' if extra else ''}constraints: {{{constraints}}}}}) {{ volatility }} }}"
    )
    (error,) = (await market.execute(query)).errors
    assert error["extensions"]["code"] == "InvalidInput"
    assert error["extensions"]["field"] == (field or "constraints.groups[0].minWeight")


async def test_an_impossible_group_floor_is_infeasible(market: GraphQLClient) -> None:
    response = await market.execute(
        '{ optimize(input: {symbols: ["BTC", "ETH", "LTC"], objective: MIN_CVAR, constraints:'
        ' {maxWeight: 0.4, groups: [{name: "g", symbols: ["BTC", "ETH"], minWeight: 0.9}]}})'
        " { expectedShortfall } }"
    )
    (error,) = response.errors
    assert error["extensions"] == {"code": "Infeasible", "constraint": "groups.g"}


async def test_the_frontier_reports_expected_shortfall_and_refuses_l2(
    market: GraphQLClient,
) -> None:
    found = (
        await market.execute(
            '{ efficientFrontier(input: {symbols: ["BTC", "ETH"]}, points: 3)'
            " { expectedShortfall } }"
        )
    ).ok()["efficientFrontier"]
    assert all(p["expectedShortfall"] > 0 for p in found)
    refused = await market.execute(
        '{ efficientFrontier(input: {symbols: ["BTC", "ETH"], constraints: {l2Gamma: 1}})'
        " { volatility } }"
    )
    assert refused.errors[0]["extensions"]["field"] == "constraints.l2Gamma"


async def test_a_tail_objective_over_too_many_periods_is_refused_naming_start(
    client: GraphQLClient, admin: str
) -> None:
    """Its linear program grows with the periods: more than MAX_SCENARIOS is refused before
    any solving, and the caller is told how to narrow it."""
    hours = pd.date_range("2021-01-01", periods=MAX_SCENARIOS + 10, freq="h")
    rng = np.random.default_rng(3)
    for symbol in ("AAA", "BBB"):
        prices = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, hours.size)))
        rows = [
            f"{t:%Y-%m-%d %H:%M:%S},{p:.6f},{p:.6f},{p:.6f},{p:.6f},1"
            for t, p in zip(hours, prices, strict=True)
        ]
        content = ("time,open,high,low,close,volume\n" + "\n".join(rows) + "\n").encode()
        report = await upload(client, content, token=admin, symbol=symbol, interval="H1")
        assert report["__typename"] == "ImportReport", report
    refused = await client.execute(
        '{ optimize(input: {symbols: ["AAA", "BBB"], objective: MIN_CVAR, interval: H1})'
        " { expectedShortfall } }"
    )
    error = refused.body["errors"][0]
    assert error["extensions"]["field"] == "start", error
    assert f"at most {MAX_SCENARIOS:,}" in error["message"]
