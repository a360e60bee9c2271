"""The operations of ../shared/contract/analytics.graphql on the six real series."""

from __future__ import annotations

from typing import Any

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from coinql.domain import performance as pf
from tests.client import GraphQLClient
from tests.conftest import import_real_files, upload
from tests.domain.coins import aligned_returns, parsed
from tests.domain.tear_oracles import as_series, close, oracle, quantstats
from tests.helpers import ewma_reference

VARIABLES = {"symbol": "BTC", "start": "2018-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"}
START_MS, END_MS = 1514764800000, 1625011200000


@pytest.fixture
async def loaded(client: GraphQLClient, admin: str) -> GraphQLClient:
    await import_real_files(client, admin)
    return client


def window_returns(symbol: str) -> np.ndarray:
    candles = parsed(symbol).candles.between(START_MS, END_MS)
    return candles.close[1:] / candles.close[:-1] - 1


def no_nan_or_infinity(value: Any) -> None:
    if isinstance(value, float):
        assert np.isfinite(value)
    elif isinstance(value, dict):
        for item in value.values():
            no_nan_or_infinity(item)
    elif isinstance(value, list):
        for item in value:
            no_nan_or_infinity(item)


async def test_asset_performance(loaded: GraphQLClient) -> None:
    response = await loaded.contract("analytics", "AssetPerformance", VARIABLES)
    perf = response.ok()["asset"]["performance"]
    no_nan_or_infinity({k: v for k, v in perf.items() if k not in ("rolling", "calendar")})
    r = window_returns("BTC")
    assert perf["periodsPerYear"] == 365
    assert perf["observations"] == r.size
    assert perf["totalReturn"] == pytest.approx(ep.cum_returns_final(r), rel=1e-9)
    assert perf["cagr"] == pytest.approx(ep.annual_return(r, annualization=365), rel=1e-9)
    assert perf["volatility"] == pytest.approx(ep.annual_volatility(r, annualization=365), rel=1e-9)
    assert perf["sharpe"] == pytest.approx(ep.sharpe_ratio(r, annualization=365), rel=1e-9)
    assert perf["sortino"] == pytest.approx(ep.sortino_ratio(r, annualization=365), rel=1e-9)
    assert perf["maxDrawdown"] == pytest.approx(-ep.max_drawdown(r), rel=1e-9)
    assert perf["valueAtRisk"] == pytest.approx(-ep.value_at_risk(r, 0.05), rel=1e-9)
    assert perf["expectedShortfall"] == pytest.approx(
        -ep.conditional_value_at_risk(r, 0.05), rel=1e-9
    )
    assert perf["parametricVar"] > 0 and perf["cornishFisherVar"] > perf["parametricVar"]
    assert len(perf["drawdowns"]) == 3
    deepest = perf["drawdowns"][0]
    assert deepest["depth"] == pytest.approx(perf["maxDrawdown"])
    assert deepest["peak"] < deepest["trough"]
    years = [row["year"] for row in perf["calendar"]]
    assert years == [2018, 2019, 2020, 2021]
    assert len(perf["calendar"][0]["months"]) == 12
    assert len(perf["equity"]["values"]) == r.size
    assert perf["equity"]["values"][-1] == pytest.approx(1 + perf["totalReturn"], rel=1e-12)
    assert min(perf["drawdownSeries"]["values"]) == pytest.approx(-perf["maxDrawdown"])
    rolling = perf["rolling"]["values"]
    assert rolling[:29] == [None] * 29 and rolling[29] == pytest.approx(
        np.std(r[:30], ddof=1) * np.sqrt(365)
    )
    eth = window_returns("ETH")
    bench = perf["benchmark"]
    alpha, beta = ep.alpha_beta(r, eth, annualization=365)
    assert bench["beta"] == pytest.approx(beta, rel=1e-9)
    assert bench["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert bench["correlation"] == pytest.approx(np.corrcoef(r, eth)[0, 1], rel=1e-9)


async def test_calendar_year_totals_compound_the_months(loaded: GraphQLClient) -> None:
    response = await loaded.execute(
        'query { asset(symbol: "ETH") { performance(start: "2019-12-31T00:00:00Z",'
        ' end: "2020-12-31T00:00:00Z") { calendar { year months total } totalReturn } } }'
    )
    perf = response.ok()["asset"]["performance"]
    (year,) = perf["calendar"]
    assert year["year"] == 2020
    assert year["total"] == pytest.approx(np.prod(1 + np.array(year["months"])) - 1, rel=1e-12)
    assert year["total"] == pytest.approx(perf["totalReturn"], rel=1e-12)


async def test_selecting_only_sharpe_computes_nothing_heavy(
    loaded: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: dict[str, int] = {}

    def counted(name: str) -> None:
        original = getattr(pf, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] = calls.get(name, 0) + 1
            return original(*args, **kwargs)

        monkeypatch.setattr(pf, name, wrapper)

    for name in ("drawdown_periods", "calendar", "rolling", "drawdown", "sharpe"):
        counted(name)
    only_sharpe = '{ asset(symbol: "BTC") { performance { sharpe } } }'
    assert (await loaded.execute(only_sharpe)).ok()["asset"]["performance"]["sharpe"] > 0
    assert calls == {"sharpe": 1}
    full = await loaded.contract("analytics", "AssetPerformance", VARIABLES)
    assert full.ok()
    assert calls["drawdown_periods"] == 1 and calls["calendar"] == 1


async def test_risk_report(loaded: GraphQLClient) -> None:
    variables = {"start": VARIABLES["start"], "end": VARIABLES["end"]}
    report = (await loaded.contract("analytics", "RiskReport", variables)).ok()["riskReport"]
    no_nan_or_infinity(report)
    symbols = ["BTC", "ETH", "LTC", "DOGE"]
    timestamps, r = aligned_returns(symbols)
    keep = (timestamps >= START_MS + 86_400_000) & (timestamps <= END_MS)
    r = r[keep]
    weights = np.array([0.4, 0.3, 0.2, 0.1])
    cov = LedoitWolf().fit(r).covariance_ * 365
    volatility = float(np.sqrt(weights @ cov @ weights))
    assert report["volatility"] == pytest.approx(volatility, rel=1e-9)
    contributions = report["contributions"]
    assert [c["symbol"] for c in contributions] == symbols
    assert sum(c["riskContribution"] for c in contributions) == pytest.approx(volatility)
    assert report["valueAtRisk"] == pytest.approx(-np.percentile(r @ weights, 1), rel=1e-9)
    assert report["expectedShortfall"] >= report["valueAtRisk"]
    assert report["diversificationRatio"] > 1
    matrix = np.array(report["correlation"]["matrix"])
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    np.testing.assert_allclose(matrix, matrix.T)
    names = [s["scenario"] for s in report["stress"]]
    assert "BTC worst 30-period move" in names and "BTC -30%, others through their beta" in names
    assert all(s["portfolioReturn"] < 0 for s in report["stress"])


async def test_pca(loaded: GraphQLClient) -> None:
    variables = {"start": VARIABLES["start"], "end": VARIABLES["end"]}
    found = (await loaded.contract("analytics", "Pca", variables)).ok()["pca"]
    ratio = found["explainedVarianceRatio"]
    assert len(ratio) == 3 and ratio == sorted(ratio, reverse=True) and sum(ratio) < 1
    assert [row["symbol"] for row in found["loadings"]] == [
        "BTC",
        "ETH",
        "BNB",
        "ADA",
        "DOGE",
        "LTC",
    ]
    assert all(row["values"][0] > 0 for row in found["loadings"])  # the market factor


async def test_indicators_one_of_specs(loaded: GraphQLClient) -> None:
    response = await loaded.execute(
        '{ asset(symbol: "BTC") { indicators(start: "2021-01-01T00:00:00Z",'
        " specs: [{ema: {window: 20}}, {bollinger: {window: 20}}, {rsi: {window: 14}},"
        " {trendRegime: {window: 20}}]) { timestamps series { name values } legend } } }"
    )
    found = response.ok()["asset"]["indicators"]
    names = [series["name"] for series in found["series"]]
    assert names == [
        "ema(20)",
        "bollinger(20,2).lower",
        "bollinger(20,2).middle",
        "bollinger(20,2).upper",
        "rsi(14)",
        "trendRegime(20)",
    ]
    assert all(len(series["values"]) == len(found["timestamps"]) for series in found["series"])
    assert "trendRegime 1 = UP" in found["legend"]
    two_at_once = await loaded.execute(
        '{ asset(symbol: "BTC") { indicators(specs: [{ema: {window: 2}, sma: {window: 2}}])'
        " { timestamps } } }"
    )
    assert "exactly one" in two_at_once.errors[0]["message"].lower()


async def test_undefined_metrics_are_null_with_a_reason(loaded: GraphQLClient) -> None:
    response = await loaded.execute(
        '{ asset(symbol: "BTC") { performance(start: "2021-01-01T00:00:00Z",'
        ' end: "2021-01-02T00:00:00Z") { observations volatility sharpe totalReturn'
        " undefined { metric reason } } } }"
    )
    perf = response.ok()["asset"]["performance"]
    assert perf["observations"] == 1
    assert perf["volatility"] is None and perf["sharpe"] is None
    assert perf["totalReturn"] is not None
    reasons = {item["metric"]: item["reason"] for item in perf["undefined"]}
    assert reasons["sharpe"] == "needs at least 2 observations, has 1"


async def test_bad_analytics_input_names_the_argument(loaded: GraphQLClient) -> None:
    wrong_weights = await loaded.execute(
        '{ riskReport(symbols: ["BTC", "ETH"], weights: [1.0]) { volatility } }'
    )
    assert wrong_weights.errors[0]["message"] == "give one weight per symbol"
    bad_level = await loaded.execute(
        '{ asset(symbol: "BTC") { performance { valueAtRisk(level: 95) } } }'
    )
    assert "level" in bad_level.errors[0]["message"]
    unknown = await loaded.execute('{ pca(symbols: ["BTC", "NOPE"]) { symbols } }')
    assert unknown.errors[0]["message"] == "unknown symbols: NOPE"


RISK_REPORT_EWMA = """
query ($decay: Float!, $start: DateTime, $end: DateTime) {
  riskReport(symbols: ["BTC", "ETH", "LTC"], weights: [0.5, 0.3, 0.2], start: $start,
             end: $end, covariance: EWMA, ewmaDecay: $decay) {
    observations volatility
    contributions { riskContribution }
    correlation { matrix }
  }
}
"""


async def test_ewma_decay_reaches_the_risk_report(loaded: GraphQLClient) -> None:
    """0.5 and 0.99 give different answers, each the RiskMetrics estimate of the domain."""
    timestamps, r = aligned_returns(["BTC", "ETH", "LTC"])
    r = r[(timestamps >= START_MS + 86_400_000) & (timestamps <= END_MS)]
    weights = np.array([0.5, 0.3, 0.2])
    answers = {}
    for decay in (0.5, 0.99):
        variables = {"decay": decay, "start": VARIABLES["start"], "end": VARIABLES["end"]}
        report = (await loaded.execute(RISK_REPORT_EWMA, variables)).ok()["riskReport"]
        assert report["observations"] == r.shape[0]
        cov = ewma_reference(r, decay) * 365
        assert report["volatility"] == pytest.approx(np.sqrt(weights @ cov @ weights), rel=1e-9)
        contributions = [c["riskContribution"] for c in report["contributions"]]
        np.testing.assert_allclose(
            contributions, weights * (cov @ weights) / np.sqrt(weights @ cov @ weights), rtol=1e-9
        )
        scale = np.sqrt(np.diag(cov))
        np.testing.assert_allclose(
            np.array(report["correlation"]["matrix"]), cov / np.outer(scale, scale), rtol=1e-9
        )
        answers[decay] = report["volatility"]
    assert answers[0.5] != pytest.approx(answers[0.99], rel=1e-3)
    bad = await loaded.execute(RISK_REPORT_EWMA, {"decay": 1.0})
    assert bad.errors[0]["extensions"]["field"] == "ewmaDecay"


async def test_returns_that_do_not_vary_are_null_with_the_reason(
    loaded: GraphQLClient,
    admin: str,
) -> None:
    """Prices growing 0.1 % a day: their returns are equal up to rounding (a std of ~1e-16),
    which gave a Sharpe ratio of ~1e14 and a skew of ~0.05 from the noise."""
    days = pd.date_range("2021-01-01", periods=200, freq="D")
    prices = [float(price) for price in 100.0 * 1.001 ** np.arange(200)]
    rows = [f"{d:%Y-%m-%d},{p!r},{p!r},{p!r},{p!r},1" for d, p in zip(days, prices, strict=True)]
    content = ("time,open,high,low,close,volume\n" + "\n".join(rows) + "\n").encode()
    report = await upload(loaded, content, token=admin, symbol="GROW", interval="D1")
    assert report["candlesWritten"] == 200
    query = (
        '{ asset(symbol: "GROW") { performance { volatility sharpe skew kurtosis cagr'
        " undefined { metric reason } } }"
        ' btc: asset(symbol: "BTC") { performance(start: "2021-01-01T00:00:00Z",'
        ' end: "2021-07-19T00:00:00Z") { benchmark(symbol: "GROW") { observations beta'
        " correlation alpha } } } }"
    )
    found = (await loaded.execute(query)).ok()
    perf = found["asset"]["performance"]
    assert perf["volatility"] == 0.0
    assert perf["sharpe"] is None and perf["skew"] is None and perf["kurtosis"] is None
    assert perf["cagr"] == pytest.approx(1.001**365 - 1, rel=1e-9)
    reasons = {item["metric"]: item["reason"] for item in perf["undefined"]}
    for metric in ("sharpe", "skew", "kurtosis"):
        assert reasons[metric] == "returns do not vary (zero standard deviation)"
    bench = found["btc"]["performance"]["benchmark"]
    assert bench["observations"] > 100
    assert bench["beta"] is None and bench["correlation"] is None and bench["alpha"] is None


async def test_an_unknown_benchmark_fails_only_its_own_field(loaded: GraphQLClient) -> None:
    """`benchmark(symbol: "NOPE")` is null with an error at its path; its siblings, and the
    universe around it, still answer."""
    response = await loaded.execute(
        '{ asset(symbol: "BTC") { symbol performance { totalReturn benchmark(symbol: "NOPE")'
        " { beta } } } universe(top: 2) { symbol performance { sharpe"
        ' benchmark(symbol: "NOPE") { beta } } } }'
    )
    data = response.data
    assert data["asset"]["symbol"] == "BTC"
    assert data["asset"]["performance"]["totalReturn"] is not None
    assert data["asset"]["performance"]["benchmark"] is None
    assert [asset["performance"]["benchmark"] for asset in data["universe"]] == [None, None]
    assert all(asset["performance"]["sharpe"] is not None for asset in data["universe"])
    paths = [error["path"] for error in response.errors]
    assert ["asset", "performance", "benchmark"] in paths
    assert {error["extensions"]["code"] for error in response.errors} == {"NotFound"}


async def test_every_return_stream_compares_with_a_benchmark(loaded: GraphQLClient) -> None:
    """A portfolio's and a backtest run's tear sheets take a benchmark (and rolling BETA) like
    an asset's; and a benchmark may be a portfolio or a backtest run, named by its id."""
    loaded.token = (await loaded.sign_up("bench@example.com"))["accessToken"]
    created = (await loaded.contract("portfolio", "CreatePortfolio")).ok()["createPortfolio"]
    transactions = [
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "10000", "time": "2019-01-01T00:00:00Z"},
        {
            "kind": "BUY",
            "asset": "ETH",
            "quantity": "70",
            "price": "140",
            "time": "2019-01-02T00:00:00Z",
        },
    ]
    variables = {"portfolioId": created["id"], "transactions": transactions}
    assert (await loaded.contract("portfolio", "AddTransactions", variables)).ok()
    selection = (
        'benchmark(symbol: "BTC") { observations beta correlation }'
        ' rolling(window: 30, metric: BETA, benchmark: "BTC") { values }'
    )
    portfolio = await loaded.execute(
        f'{{ portfolio(id: "{created["id"]}") {{ performance {{ {selection} }} }} }}'
    )
    found = portfolio.ok()["portfolio"]["performance"]
    assert found["benchmark"]["observations"] > 500
    assert 0 < found["benchmark"]["correlation"] < 1
    assert any(value is not None for value in found["rolling"]["values"])
    by_id = await loaded.execute(
        '{ asset(symbol: "ETH") { performance(start: "2019-01-03T00:00:00Z") {'
        f' benchmark(of: "{created["id"]}") {{ observations beta correlation }} }} }} }}'
    )
    # ETH against a portfolio holding mostly ETH: close to one another.
    against_portfolio = by_id.ok()["asset"]["performance"]["benchmark"]
    assert against_portfolio["correlation"] > 0.99 and against_portfolio["observations"] > 500
    refused = await loaded.execute(
        '{ asset(symbol: "ETH") { performance { benchmark(symbol: "BTC", of: "x") { beta } } } }'
    )
    assert refused.errors[0]["extensions"]["field"] == "symbol"


async def test_the_whole_tear_sheet_is_quantstats_on_the_same_returns(
    loaded: GraphQLClient,
) -> None:
    """The research contract's TearSheet on BTC against ETH, field by field, equal to quantstats
    0.0.86 (empyrical for stability) on the same daily returns with 365 periods a year."""
    response = await loaded.contract("research", "TearSheet", VARIABLES)
    perf = response.ok()["asset"]["performance"]
    no_nan_or_infinity(perf)
    qs = quantstats()
    candles = parsed("BTC").candles.between(START_MS, END_MS)
    r = as_series(window_returns("BTC"), candles.timestamps[1:])
    eth = as_series(window_returns("ETH"), candles.timestamps[1:])
    stats = qs.stats
    expected = {
        "smartSharpe": oracle(stats.smart_sharpe, r, periods=365),
        "smartSortino": oracle(stats.smart_sortino, r, periods=365),
        "probabilisticSharpe": oracle(stats.probabilistic_sharpe_ratio, r, periods=365),
        "adjustedSortino": oracle(stats.adjusted_sortino, r, periods=365),
        "kelly": oracle(stats.kelly_criterion, r),
        "profitFactor": oracle(stats.profit_factor, r),
        "payoffRatio": oracle(stats.payoff_ratio, r),
        "gainToPain": oracle(stats.gain_to_pain_ratio, r),
        "commonSenseRatio": oracle(stats.common_sense_ratio, r),
        "cpcIndex": oracle(stats.cpc_index, r),
        "recoveryFactor": oracle(stats.recovery_factor, r),
        "riskOfRuin": oracle(stats.risk_of_ruin, r),
        "ulcerPerformanceIndex": oracle(stats.ulcer_performance_index, r),
        "serenityIndex": oracle(stats.serenity_index, r),
        "consecutiveWins": oracle(stats.consecutive_wins, r),
        "consecutiveLosses": oracle(stats.consecutive_losses, r),
        "averageWin": oracle(stats.avg_win, r),
        "averageLoss": oracle(stats.avg_loss, r),
        "expectedReturn": oracle(stats.expected_return, r),
        "outlierWinRatio": oracle(stats.outlier_win_ratio, r),
        "outlierLossRatio": oracle(stats.outlier_loss_ratio, r),
        "stability": ep.stability_of_timeseries(r.to_numpy()),
        "treynor": oracle(stats.treynor_ratio, r, eth, periods=365),
        "rSquared": oracle(stats.r_squared, r, eth),
    }
    for name, value in expected.items():
        close(perf[name], value, name)
    weekly = r.resample("W-MON", closed="left", label="left").apply(lambda x: (1 + x).prod() - 1)
    assert perf["aggregate"]["values"] == pytest.approx(weekly.tolist(), rel=1e-12)
    starts = weekly.index.as_unit("ms").asi8.tolist()  # Mondays 00:00 UTC, in epoch ms
    assert perf["aggregate"]["timestamps"] == starts and starts[0] == START_MS  # a Monday


async def test_a_rolling_metric_too_large_for_one_request_fails_alone(
    loaded: GraphQLClient,
) -> None:
    """MAX_DRAWDOWN and the relative metrics read each window whole: periods x window is
    bounded, and past it that field alone fails, naming the window."""
    response = await loaded.execute(
        '{ asset(symbol: "BTC") { performance { sharpe'
        " rolling(window: 4000, metric: MAX_DRAWDOWN) { values }"
        " small: rolling(window: 30, metric: MAX_DRAWDOWN) { values } } } }"
    )
    perf = response.body["data"]["asset"]["performance"]
    assert perf["sharpe"] is not None and perf["rolling"] is None
    assert len(perf["small"]["values"]) > 1000
    (error,) = response.body["errors"]
    assert error["path"] == ["asset", "performance", "rolling"]
    assert error["extensions"]["field"] == "window"
