"""The operations of ../shared/contract/backtest.graphql: jobs on the process pool (SQLite) or
on a `coinql worker` through Redis (PostgreSQL), the registry, cancellation and failures."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain.strategies import StrategySpec
from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import Backend, free_port, import_real_files, make_settings, worker_for
from tests.domain.coins import parsed
from tests.helpers import WINDOW, run_contract_backtest, wait_for

START_MS, END_MS = 1514764800000, 1625011200000


@pytest.fixture
def settings(backend: Backend, tmp_path: Any) -> Settings:
    # Quick failure detection for the killed-worker test.
    return make_settings(backend, tmp_path, job_stale_seconds=3, job_sweep_seconds=0.5)


@pytest.fixture
def worker_metrics_port() -> int:
    return free_port()


@pytest.fixture
def worker(
    backend: Backend, settings: Settings, worker_metrics_port: int
) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, jobs run in a `coinql worker` subprocess, as in a deployment."""
    with worker_for(settings, worker_metrics_port) as process:
        yield process


@pytest.fixture
async def trader(
    client: GraphQLClient,
    admin: str,
    worker: subprocess.Popen[bytes] | None,
) -> GraphQLClient:
    await import_real_files(client, admin)
    client.token = (await client.sign_up("quant@example.com"))["accessToken"]
    return client


async def test_backtest_job_equals_the_engine(trader: GraphQLClient) -> None:
    job = await run_contract_backtest(trader)
    assert job["status"] == "SUCCEEDED", job["error"]
    assert job["progress"] == 1.0 and job["error"] is None
    run = job["result"]
    assert run["__typename"] == "BacktestRun"
    candles = parsed("BTC").candles.between(START_MS, END_MS)
    expected = bt.run(
        StrategySpec("smaCross", {"fast": 10, "slow": 30}),
        candles,
        bc.BacktestConfig(initial_capital=10_000, fee_bps=10, fill=bc.FillPrice.CLOSE),
    )
    assert run["equity"]["values"] == pytest.approx(expected.equity.tolist(), rel=1e-12)
    assert run["equity"]["timestamps"] == candles.timestamps.tolist()
    metrics = run["metrics"]
    assert metrics["tradeCount"] == len(expected.trades)
    assert metrics["totalReturn"] == pytest.approx(expected.equity[-1] / 10_000 - 1, rel=1e-12)
    assert metrics["exposure"] == pytest.approx(expected.exposure)
    assert 0 <= metrics["winRate"] <= 1 and metrics["maxDrawdown"] > 0
    trades = run["trades"]
    assert len(trades) == 5
    first = expected.trades[0]
    assert trades[0]["entryPrice"] == pytest.approx(first.entry_price)
    assert trades[0]["pnl"] == pytest.approx(first.pnl)
    assert trades[0]["fees"] == pytest.approx(first.fees)
    assert trades[0]["symbol"] == "BTC"


async def test_simulation_registry_and_seeding(trader: GraphQLClient) -> None:
    backtest_job = await run_contract_backtest(trader)
    run_id = backtest_job["result"]["id"]
    results = []
    for _ in range(2):
        queued = (await trader.contract("backtest", "RunSimulation", {"runId": run_id})).ok()
        job_id = queued["runSimulation"]["id"]
        await wait_for(trader, job_id)
        found = (await trader.contract("backtest", "SimulationResult", {"jobId": job_id})).ok()
        assert found["job"]["status"] == "SUCCEEDED", found
        results.append(found["job"]["result"])
    first, second = results
    assert first == second  # same input, same seed, same numbers
    percentiles = first["maxDrawdownPercentiles"]
    assert 0 < percentiles["p5"] <= percentiles["p50"] <= percentiles["p95"] <= 1
    assert 0 <= first["ruinProbability"] <= 1
    bands = first["bands"]
    assert len(bands["timestamps"]) == 366 and bands["p5"][0] == 1.0
    assert all(a <= b for a, b in zip(bands["p5"], bands["p95"], strict=True))
    registry = (await trader.contract("backtest", "Registry")).ok()["backtestRuns"]["edges"]
    assert [edge["node"]["id"] for edge in registry] == [run_id]
    assert registry[0]["node"]["codeVersion"].startswith("0.1.0")


async def test_insufficient_data_is_typed(trader: GraphQLClient) -> None:
    response = await trader.execute(
        'mutation { runBacktest(input: {symbols: ["BTC"], start: "2021-06-01T00:00:00Z",'
        ' end: "2021-06-20T00:00:00Z", strategy: {smaCross: {fast: 10, slow: 30}}}) {'
        " __typename ... on InsufficientData { message required received lookback first last"
        " suggestedStart } } }"
    )
    found = response.ok()["runBacktest"]
    assert found["__typename"] == "InsufficientData"
    assert (found["required"], found["received"], found["lookback"]) == (32, 20, 30)
    assert found["first"] == "2017-01-01T00:00:00Z" and found["last"] == "2021-07-06T00:00:00Z"
    assert found["suggestedStart"] < "2021-06-01"


async def test_jobs_are_counted_by_kind_and_status(
    trader: GraphQLClient,
    worker: subprocess.Popen[bytes] | None,
    worker_metrics_port: int,
) -> None:
    job = await run_contract_backtest(trader)
    assert job["status"] == "SUCCEEDED", job["error"]
    api = (await trader.http.get("/metrics")).text.splitlines()
    assert 'coinql_jobs_total{kind="BACKTEST",status="QUEUED"} 1.0' in api
    if worker is None:  # in-process: this process ran the job
        ran = api
    else:  # `coinql worker` ran it and counts it on its own port
        async with httpx.AsyncClient() as http:
            found = await http.get(f"http://127.0.0.1:{worker_metrics_port}/metrics")
        ran = found.text.splitlines()
    assert 'coinql_jobs_total{kind="BACKTEST",status="SUCCEEDED"} 1.0' in ran
    assert 'coinql_job_duration_seconds_count{kind="BACKTEST",status="SUCCEEDED"} 1.0' in ran


async def test_cancel_a_running_job(trader: GraphQLClient) -> None:
    backtest_job = await run_contract_backtest(trader)
    heavy = await trader.execute(
        "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r},"
        " paths: 100000, horizon: 3650, blockLength: 20}) { ... on Job { id } } }",
        {"r": backtest_job["result"]["id"]},
    )
    job_id = heavy.ok()["runSimulation"]["id"]
    cancelled = (await trader.contract("backtest", "Cancel", {"jobId": job_id})).ok()
    assert cancelled["cancelJob"] == {"__typename": "Job", "id": job_id, "status": "CANCELLED"}
    await asyncio.sleep(0.5)
    job = (await trader.contract("backtest", "JobResult", {"jobId": job_id})).ok()["job"]
    assert job["status"] == "CANCELLED" and job["result"] is None


async def test_jobs_are_private(trader: GraphQLClient) -> None:
    backtest_job = await run_contract_backtest(trader)
    other = (await trader.sign_up("other@example.com"))["accessToken"]
    job_id, run_id = backtest_job["id"], backtest_job["result"]["id"]
    seen = await trader.contract("backtest", "JobResult", {"jobId": job_id}, token=other)
    assert seen.ok() == {"job": None}
    cancel = await trader.contract("backtest", "Cancel", {"jobId": job_id}, token=other)
    assert cancel.ok()["cancelJob"]["__typename"] == "NotFound"
    runs = await trader.contract("backtest", "Registry", token=other)
    assert runs.ok() == {"backtestRuns": {"edges": []}}
    simulate = await trader.contract("backtest", "RunSimulation", {"runId": run_id}, token=other)
    assert simulate.ok()["runSimulation"]["__typename"] == "NotFound"


async def test_a_killed_pool_process_fails_the_job_and_the_queue_recovers(
    app: Starlette, trader: GraphQLClient, worker: subprocess.Popen[bytes] | None
) -> None:
    """In process, the pool's worker process is killed mid-run and the body fails the job at
    once; the next job runs. (With Redis a killed `coinql worker`'s chunk is handed to another
    worker: tests/realtime/test_chunks.py kills one mid-chunk, and fails a job whose worker
    died before it planned its chunks.)"""
    if worker is not None:
        return
    backtest_job = await run_contract_backtest(trader)
    heavy = await trader.execute(
        "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r},"
        " paths: 100000, horizon: 3650, blockLength: 20}) { ... on Job { id } } }",
        {"r": backtest_job["result"]["id"]},
    )
    job_id = heavy.ok()["runSimulation"]["id"]
    running = await wait_for(trader, job_id, final=False)
    assert running["status"] == "RUNNING"
    await asyncio.sleep(0.5)  # into the heavy step
    for pid in list(app.state.services.jobs.pool._processes):
        os.kill(pid, signal.SIGKILL)
    job = await wait_for(trader, job_id)
    assert job["status"] == "FAILED"
    assert "BrokenProcessPool" in job["error"]
    again = await run_contract_backtest(trader)
    assert again["status"] == "SUCCEEDED"


async def test_restart_interrupts_running_jobs(
    app: Starlette, trader: GraphQLClient, backend: Backend, settings: Settings
) -> None:
    if backend.redis_url is not None:
        return  # jobs there belong to workers, which the sweeper watches (test above)
    backtest_job = await run_contract_backtest(trader)
    heavy = await trader.execute(
        "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r},"
        " paths: 100000, horizon: 3650, blockLength: 20}) { ... on Job { id } } }",
        {"r": backtest_job["result"]["id"]},
    )
    job_id = heavy.ok()["runSimulation"]["id"]
    await wait_for(trader, job_id, final=False)
    await app.state.services.jobs.stop()  # what a shutdown does
    job = (await trader.contract("backtest", "JobResult", {"jobId": job_id})).ok()["job"]
    assert job["status"] == "INTERRUPTED", job
    assert np.isfinite(job["progress"])


async def test_sweep_and_walk_forward_jobs(trader: GraphQLClient) -> None:
    grid = '[{name: "fast", values: [5, 10, 20]}, {name: "slow", values: [30, 50]}]'
    sweep = await trader.execute(
        f'mutation {{ runSweep(input: {{symbol: "BTC", strategy: "smaCross", grid: {grid},'
        " feeBps: 10, fillPrice: CLOSE}) { __typename ... on Job { id kind } } }"
    )
    job = sweep.ok()["runSweep"]
    assert job["kind"] == "SWEEP"
    await wait_for(trader, job["id"])
    found = await trader.execute(
        "query($id: ID!) { job(id: $id) { status result { ... on SweepRun { metric"
        " rows { params metrics { sharpe tradeCount } } best { params metrics { sharpe } } } } } }",
        {"id": job["id"]},
    )
    result = found.ok()["job"]["result"]
    assert len(result["rows"]) == 6
    best = max(result["rows"], key=lambda row: row["metrics"]["sharpe"])
    assert result["best"]["params"] == best["params"]
    # Each row is the engine's own backtest of those parameters.
    params = result["rows"][0]["params"]
    expected = bt.run(
        StrategySpec("smaCross", params),
        parsed("BTC").candles,
        bc.BacktestConfig(fee_bps=10, fill=bc.FillPrice.CLOSE),
    )
    assert result["rows"][0]["metrics"]["tradeCount"] == len(expected.trades)

    walk = await trader.execute(
        f'mutation {{ runWalkForward(input: {{symbol: "BTC", strategy: "smaCross", grid: {grid},'
        " trainBars: 365, testBars: 180, mode: ANCHORED}) { ... on Job { id kind } } }"
    )
    walk_job = walk.ok()["runWalkForward"]
    assert walk_job["kind"] == "WALK_FORWARD"
    await wait_for(trader, walk_job["id"])
    walked = await trader.execute(
        "query($id: ID!) { job(id: $id) { result { ... on WalkForwardRun { decay splits {"
        " trainStart trainEnd testStart testEnd params inSample { sharpe }"
        " outOfSample { sharpe } } } } } }",
        {"id": walk_job["id"]},
    )
    splits = walked.ok()["job"]["result"]["splits"]
    assert len(splits) == (1648 - 365) // 180
    assert all(s["trainStart"] == "2017-01-01T00:00:00Z" for s in splits)  # anchored
    assert all(s["trainEnd"] < s["testStart"] for s in splits)


async def test_allocation_backtest_with_benchmark(trader: GraphQLClient) -> None:
    response = await trader.execute(
        'mutation { runBacktest(input: {symbols: ["BTC", "ETH", "LTC", "DOGE"],'
        " strategy: {riskParity: {lookback: 60}}, feeBps: 10}) { ... on Job { id } } }"
    )
    job_id = response.ok()["runBacktest"]["id"]
    job = await wait_for(trader, job_id)
    assert job["status"] == "SUCCEEDED", job["error"]
    found = await trader.execute(
        "query($id: ID!) { job(id: $id) { result { ... on BacktestRun { metrics { totalReturn"
        " exposure turnover tradeCount byRegime { regime periods } }"
        " benchmark { symbol totalReturn }"
        " positions { symbol values } equity { values } } } } }",
        {"id": job_id},
    )
    run = found.ok()["job"]["result"]
    assert run["benchmark"]["symbol"] == "BTC" and run["benchmark"]["totalReturn"] > 0
    assert [p["symbol"] for p in run["positions"]] == ["BTC", "ETH", "LTC", "DOGE"]
    weights = np.array([p["values"] for p in run["positions"]])
    assert np.all(weights[:, -1] >= 0) and weights[:, -1].sum() == pytest.approx(1.0, abs=1e-6)
    assert run["metrics"]["exposure"] > 0.9 and run["metrics"]["turnover"] > 0
    assert run["metrics"]["byRegime"]


async def test_backtest_an_uploaded_file_without_storing_it(
    client: GraphQLClient, app: Starlette
) -> None:

    from tests.conftest import COINS_DIR

    client.token = (await client.sign_up("researcher@example.com"))["accessToken"]
    query = (
        "mutation($f: Upload!) { backtestFile(file: $f, input: {symbols: [], feeBps: 10,"
        " fillPrice: CLOSE, strategy: {smaCross: {fast: 10, slow: 30}}}) { __typename"
        " ... on FileBacktestResult { symbol interval metrics { tradeCount totalReturn }"
        " equity { values } } ... on Error { message } } }"
    )
    response = await client.upload(
        query, {"f": ("btc.csv", (COINS_DIR / "coin_Bitcoin.csv").read_bytes())}
    )
    found = response.json()["data"]["backtestFile"]
    assert found["__typename"] == "FileBacktestResult", found
    expected = bt.run(
        StrategySpec("smaCross", {"fast": 10, "slow": 30}),
        parsed("BTC").candles,
        bc.BacktestConfig(fee_bps=10, fill=bc.FillPrice.CLOSE),
    )
    assert (found["symbol"], found["interval"]) == ("BTC", "D1")
    assert found["metrics"]["tradeCount"] == len(expected.trades)
    assert found["equity"]["values"][-1] == pytest.approx(expected.equity[-1], rel=1e-12)
    listed = await client.execute('{ asset(symbol: "BTC") { symbol } }')
    assert listed.ok() == {"asset": None}  # nothing was stored


async def test_compare_and_delete_runs(trader: GraphQLClient) -> None:
    first = (await run_contract_backtest(trader))["result"]["id"]
    second_job = await trader.execute(
        'mutation { runBacktest(input: {symbols: ["ETH"], name: "eth trend",'
        " strategy: {emaCross: {fast: 12, slow: 26}}}) { ... on Job { id } } }"
    )
    second = (await wait_for(trader, second_job.ok()["runBacktest"]["id"]))["result"]["id"]
    compared = await trader.execute(
        "query($ids: [ID!]!) { compareBacktests(ids: $ids) { id name inputHash"
        " metrics { sharpe totalReturn } } }",
        {"ids": [second, first]},
    )
    runs = compared.ok()["compareBacktests"]
    assert [run["id"] for run in runs] == [second, first]
    assert runs[0]["name"] == "eth trend" and runs[1]["name"] == "smaCross"
    assert runs[0]["inputHash"] != runs[1]["inputHash"]
    filtered = await trader.execute(
        'query { backtestRuns(filter: {nameContains: "ETH"}) { edges { node { id } } } }'
    )
    assert [e["node"]["id"] for e in filtered.ok()["backtestRuns"]["edges"]] == [second]
    deleted = await trader.execute(
        "mutation($id: ID!) { deleteBacktestRun(id: $id) { __typename } }", {"id": first}
    )
    assert deleted.ok()["deleteBacktestRun"]["__typename"] == "Deleted"
    missing = await trader.execute(
        "query($ids: [ID!]!) { compareBacktests(ids: $ids) { id } }", {"ids": [first]}
    )
    assert missing.errors[0]["extensions"] == {
        "code": "InvalidInput",
        "classification": "BAD_REQUEST",
        "field": "ids",
    }
    assert missing.errors[0]["message"].startswith("no backtest runs ")


HUGE_SIMULATION = (
    "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r}, paths: 100000,"
    " horizon: 3650, blockLength: 20}) { __typename ... on Job { id } ... on QuotaExceeded {"
    " message maxJobs activeJobs queuedJobs runningJobs maxRunningJobs } } }"
)


def accepted_within_quota(results: list[dict[str, Any]]) -> list[str]:
    """The ids of the jobs accepted; the others must be QuotaExceeded, with the numbers."""
    jobs = [result["id"] for result in results if result["__typename"] == "Job"]
    refused = [result for result in results if result["__typename"] != "Job"]
    assert len(jobs) == 8, results  # COINQL_MAX_JOBS_PER_USER's default
    assert len(refused) == len(results) - 8
    for error in refused:
        assert error["__typename"] == "QuotaExceeded", error
        assert (error["maxJobs"], error["activeJobs"], error["maxRunningJobs"]) == (8, 8, 2)
        assert error["queuedJobs"] + error["runningJobs"] == 8 and error["runningJobs"] <= 2
        assert "8 jobs queued or running" in error["message"]
    return jobs


async def post_batch(client: GraphQLClient, operations: list[dict[str, Any]]) -> list[Any]:
    """Operations in one HTTP request (a JSON array): each one's data."""
    response = await client.http.post(
        "/graphql", json=operations, headers={"Authorization": f"Bearer {client.token}"}
    )
    assert response.status_code == 200, response.text
    return [result["data"] for result in response.json()]


async def cancel_all(client: GraphQLClient, job_ids: list[str]) -> None:
    cancel = "mutation($id: ID!) { cancelJob(id: $id) { ... on Job { status } } }"
    found = await post_batch(client, [{"query": cancel, "variables": {"id": i}} for i in job_ids])
    assert [data["cancelJob"]["status"] for data in found] == ["CANCELLED"] * len(job_ids)


async def test_the_job_quota_holds_for_a_batch_and_for_aliases(trader: GraphQLClient) -> None:
    """Ten submissions at once, as ten operations of one request (run concurrently) or as ten
    aliases of one mutation: eight are queued, two refused with the numbers; another user is
    unaffected, and cancelled jobs no longer count."""
    run_id = (await run_contract_backtest(trader))["result"]["id"]
    operation = {"query": HUGE_SIMULATION, "variables": {"r": run_id}}
    found = await post_batch(trader, [operation] * 10)
    first = accepted_within_quota([data["runSimulation"] for data in found])
    refused = (await trader.contract("backtest", "RunBacktest", WINDOW)).ok()["runBacktest"]
    assert refused["__typename"] == "QuotaExceeded", refused  # every kind of job counts
    other = (await trader.sign_up("other@example.com"))["accessToken"]
    theirs = await trader.contract("backtest", "RunBacktest", WINDOW, token=other)
    assert theirs.ok()["runBacktest"]["__typename"] == "Job"
    await cancel_all(trader, first)

    fields = HUGE_SIMULATION.split("{", 1)[1].rsplit("}", 1)[0]
    aliased = "mutation($r: ID!) {" + " ".join(f"a{i}: {fields}" for i in range(10)) + "}"
    found_aliased = (await trader.execute(aliased, {"r": run_id})).ok()
    second = accepted_within_quota([found_aliased[f"a{i}"] for i in range(10)])
    await cancel_all(trader, second)


async def test_the_job_quota_holds_for_parallel_requests_to_two_replicas(
    trader: GraphQLClient, settings: Settings
) -> None:
    """Twelve requests at once, half to this app and half to a second replica of it on the
    same store: eight jobs are queued, never more."""
    run_id = (await run_contract_backtest(trader))["result"]["id"]
    replica = create_app(settings)
    async with replica.router.lifespan_context(replica):
        transport = httpx.ASGITransport(app=replica)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica.test") as http:
            second = GraphQLClient(http, trader.contract_dir, token=trader.token)
            found = await asyncio.gather(
                *(client.execute(HUGE_SIMULATION, {"r": run_id}) for client in [trader, second] * 6)
            )
            jobs = accepted_within_quota([response.ok()["runSimulation"] for response in found])
            await cancel_all(second, jobs)


FILE_BACKTEST = (
    'mutation($f: Upload!) { backtestFile(file: $f, symbol: "BTC", input: {symbols: [],'
    " strategy: {smaCross: {fast: 5, slow: 20}}}) { __typename"
    " ... on FileBacktestResult { equity { values } } ... on InvalidInput { field message } } }"
)


def candle_file(rows: int) -> bytes:
    """Daily generic OHLCV candles from 2020-01-01, a gentle zigzag."""
    start = 1_577_836_800_000
    lines = ["time,open,high,low,close"]
    for day in range(rows):
        close = 100 + (day % 17) - (day % 5)
        lines.append(f"{start + day * 86_400_000},{close},{close + 2},{close - 2},{close + 1}")
    return ("\n".join(lines) + "\n").encode()


async def backtest_file(client: GraphQLClient, content: bytes) -> dict[str, Any]:
    response = await client.upload(FILE_BACKTEST, {"f": ("candles.csv", content)})
    assert response.status_code == 200, response.text
    return dict(response.json()["data"]["backtestFile"])


async def test_an_uploaded_file_may_have_max_upload_rows_and_no_more(
    client: GraphQLClient, app: Starlette
) -> None:
    services = app.state.services
    services.settings = services.settings.model_copy(update={"max_upload_rows": 300})
    client.token = (await client.sign_up("researcher@example.com"))["accessToken"]
    taken = await backtest_file(client, candle_file(300))
    assert taken["__typename"] == "FileBacktestResult"
    assert len(taken["equity"]["values"]) == 300
    refused = await backtest_file(client, candle_file(301))
    assert refused == {
        "__typename": "InvalidInput",
        "field": "file",
        "message": "the file has more than 300 rows; the limit is 300 (COINQL_MAX_UPLOAD_ROWS)",
    }


async def test_other_requests_are_answered_while_an_upload_is_parsed(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parse runs off the event loop: held in the middle of parsing a large file, it
    lets `serverInfo` be answered, which then lets it go on. Were it on the loop, nothing
    else could run until the hold gave up (`held_up` would be set)."""
    import threading

    from coinql.resolvers import market as market_resolvers

    client.token = (await client.sign_up("researcher@example.com"))["accessToken"]
    parsing, answered, held_up = threading.Event(), threading.Event(), threading.Event()
    parse = market_resolvers.parse_candle_file

    def held_parse(*args: Any, **kwargs: Any) -> Any:
        parsing.set()
        if not answered.wait(timeout=10):
            held_up.set()
        return parse(*args, **kwargs)

    monkeypatch.setattr(market_resolvers, "parse_candle_file", held_parse)
    finished: list[str] = []

    async def upload() -> None:
        found = await backtest_file(client, candle_file(50_000))
        assert found["__typename"] == "FileBacktestResult", found
        finished.append("upload")

    async def small_request() -> None:
        while not parsing.is_set():
            await asyncio.sleep(0.01)
        (await client.execute("{ serverInfo { version } }")).ok()
        finished.append("serverInfo")
        answered.set()

    await asyncio.gather(upload(), small_request())
    assert finished == ["serverInfo", "upload"]
    assert not held_up.is_set()


async def test_a_backtest_run_compares_with_a_benchmark(trader: GraphQLClient) -> None:
    run = (await run_contract_backtest(trader))["result"]
    found = await trader.execute(
        f'{{ backtestRun(id: "{run["id"]}") {{ performance {{ totalReturn'
        ' benchmark(symbol: "BTC") { observations beta } } } }'
    )
    performance = found.ok()["backtestRun"]["performance"]
    assert performance["benchmark"]["observations"] > 100
    assert performance["benchmark"]["beta"] is not None
    against_itself = await trader.execute(
        f'{{ backtestRun(id: "{run["id"]}") {{ performance {{'
        f' benchmark(of: "{run["id"]}") {{ beta correlation }} }} }} }}'
    )
    itself = against_itself.ok()["backtestRun"]["performance"]["benchmark"]
    assert itself["beta"] == pytest.approx(1.0) and itself["correlation"] == pytest.approx(1.0)


EXPRESSION_BACKTEST = """
mutation($strategy: StrategyKindInput!, $start: DateTime, $end: DateTime) {
  runBacktest(input: {symbols: ["BTC"], interval: D1, start: $start, end: $end,
      strategy: $strategy, feeBps: 10, fillPrice: CLOSE}) {
    __typename ... on Job { id } ... on InvalidInput { field message }
  }
}
"""


async def test_an_expression_strategy_is_saved_and_backtests_as_the_built_in_it_spells(
    trader: GraphQLClient,
) -> None:
    saved = await trader.contract("research", "CreateExpressionStrategy")
    strategy = saved.ok()["createStrategy"]
    assert (strategy["__typename"], strategy["kind"]) == ("Strategy", "expression"), strategy
    equities = []
    for kind in (
        {
            "expression": {
                "entry": "crossover(sma(close, $1), sma(close, $2))",
                "exit": "crossunder(sma(close, $1), sma(close, $2))",
                "parameters": [10, 30],
            }
        },
        {"smaCross": {"fast": 10, "slow": 30}},
    ):
        queued = await trader.execute(EXPRESSION_BACKTEST, {"strategy": kind, **WINDOW})
        job = await wait_for(trader, queued.ok()["runBacktest"]["id"])
        assert job["status"] == "SUCCEEDED", job["error"]
        equities.append(job["result"]["equity"]["values"])
    assert equities[0] == equities[1]


async def test_a_bad_expression_is_refused_with_its_field_and_column(
    trader: GraphQLClient,
) -> None:
    bad = {"expression": {"entry": "crossover(sma(close, 10) sma(close, 30))", "exit": "close < 1"}}
    refused = await trader.execute(EXPRESSION_BACKTEST, {"strategy": bad, **WINDOW})
    answer = refused.ok()["runBacktest"]
    assert answer["__typename"] == "InvalidInput"
    assert answer["field"] == "kind.expression.entry"
    assert answer["message"].startswith("kind.expression.entry, column 26: expected ',' or ')'")
    saved = await trader.execute(
        'mutation { createStrategy(input: {name: "x", kind: {expression: {entry: "rsi(close) < 30",'
        ' exit: "close > 1"}}}) { __typename ... on InvalidInput { field message } } }'
    )
    assert saved.ok()["createStrategy"] == {
        "__typename": "InvalidInput",
        "field": "kind.expression.entry",
        "message": "kind.expression.entry, column 1: rsi takes 2 arguments, not 1",
    }
    listed = await trader.execute("{ strategies(first: 5) { edges { node { id } } } }")
    assert listed.ok()["strategies"]["edges"] == []  # nothing was saved


async def test_an_expression_sweep_takes_its_parameters_from_the_grid(
    trader: GraphQLClient,
) -> None:
    expression = (
        '{entry: "crossover(sma(close, $1), sma(close, $2))",'
        ' exit: "crossunder(sma(close, $1), sma(close, $2))", parameters: [0, 50]}'
    )
    rows = []
    for strategy, grid, extra in (
        ("expression", '[{name: "p1", values: [5, 10, 20]}]', f", expression: {expression}"),
        ("smaCross", '[{name: "fast", values: [5, 10, 20]}, {name: "slow", values: [50]}]', ""),
    ):
        queued = await trader.execute(
            f'mutation {{ runSweep(input: {{symbol: "BTC", strategy: "{strategy}", grid: {grid},'
            f" feeBps: 10, fillPrice: CLOSE{extra}}}) {{ ... on Job {{ id }} }} }}"
        )
        job_id = queued.ok()["runSweep"]["id"]
        await wait_for(trader, job_id)
        found = await trader.execute(
            "query($id: ID!) { job(id: $id) { result { ... on SweepRun {"
            " rows { params metrics { sharpe tradeCount totalReturn } } } } } }",
            {"id": job_id},
        )
        rows.append(found.ok()["job"]["result"]["rows"])
    assert [row["metrics"] for row in rows[0]] == [row["metrics"] for row in rows[1]]
    assert [(row["params"]["p1"], row["params"]["p2"]) for row in rows[0]] == [
        (5, 50),
        (10, 50),
        (20, 50),
    ]
    missing = await trader.execute(
        'mutation { runSweep(input: {symbol: "BTC", strategy: "expression",'
        ' grid: [{name: "p1", values: [5]}]}) { ... on InvalidInput { field } } }'
    )
    assert missing.ok()["runSweep"] == {"field": "expression"}
    typo = await trader.execute(
        'mutation { runSweep(input: {symbol: "BTC", strategy: "expression",'
        ' expression: {entry: "sma(close, $1) >", exit: "close < 1"},'
        ' grid: [{name: "p1", values: [5, 10]}]}) { ... on InvalidInput { field message } } }'
    )
    refused = typo.ok()["runSweep"]
    assert refused["field"] == "expression.entry"
    assert refused["message"].startswith("expression.entry, column 17: expected a value")


async def test_a_runs_trade_statistics_are_those_of_its_trades(trader: GraphQLClient) -> None:
    job = await run_contract_backtest(trader)
    run_id = job["result"]["id"]
    found = await trader.execute(
        "query($id: ID!) { node(id: $id) { ... on BacktestRun {"
        " trades(first: 100) { pnl returnPct entryTime exitTime }"
        " tradeStatistics { count profitFactor expectancy expectancyReturn"
        " longestWinningStreak longestLosingStreak averageHoldingBars bestTrade worstTrade }"
        " } } }",
        {"id": run_id},
    )
    run = found.ok()["node"]
    pnl = np.array([trade["pnl"] for trade in run["trades"]])
    returns = [trade["returnPct"] for trade in run["trades"]]
    stats = run["tradeStatistics"]
    assert stats["count"] == len(pnl) > 10
    assert stats["profitFactor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert stats["expectancy"] == pytest.approx(pnl.mean())
    assert stats["expectancyReturn"] == pytest.approx(np.mean(returns))
    assert (stats["bestTrade"], stats["worstTrade"]) == (max(returns), min(returns))
    signs = "".join("W" if value > 0 else "L" for value in pnl)
    assert stats["longestWinningStreak"] == max(len(run) for run in signs.split("L"))
    assert stats["longestLosingStreak"] == max(len(run) for run in signs.split("W"))
    days = [
        (np.datetime64(t["exitTime"][:-1]) - np.datetime64(t["entryTime"][:-1]))
        / np.timedelta64(1, "D")
        for t in run["trades"]
    ]
    assert stats["averageHoldingBars"] == pytest.approx(np.mean(days))
