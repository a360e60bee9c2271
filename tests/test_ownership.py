"""Nobody reaches what another user owns: a walk of the whole schema.

Every root field that takes an ID (an argument, or a field of an input object at any depth; one
case per variant of a oneOf input), and `node(id:)` once per Node type that is not public, is
run by a second user, B, with the ids of what the owner, A, has. Each answer must be a refusal
(null, NotFound, Forbidden, or InvalidInput naming the id) exactly like the answer for an id
that does not exist; subscriptions are run over a real WebSocket. B's own listings show nothing
of A's, and A's data reads the same after B's walk. Then A runs every operation and must not be
refused: the generated inputs are valid, so B's refusals were about ownership.

The operations are built from the schema, so new owned types and fields join the walk by
themselves: it fails, naming them, until `owner_samples` makes one of the new type for A (and,
where an id's name does not say its type, ID_ALIASES does).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from strawberry import relay

from coinql.schema import build_schema
from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, Backend, Server, make_settings, start_worker, upload
from tests.walk import Case, Operation, SchemaWalk
from tests.ws import SubscriptionError, take, ws_connect

# Node types anyone may read: market data.
PUBLIC_NODE_TYPES = frozenset({"Asset"})
# Ids whose names do not say their type: "argument" or "field.argument" -> the type.
ID_ALIASES = {
    "runId": "BacktestRun",
    "connectionId": "ExchangeConnection",
    "apiKeyId": "ApiKey",
    "botId": "Bot",
    "orderId": "Order",
}
MOMENT = "2020-06-01T00:00:00Z"  # inside the imported candles
SCALAR_SAMPLES: dict[str, Any] = {
    "String": "BTC",
    "Int": 1,
    "Float": 0.5,
    "Boolean": True,
    "Decimal": "1",
    "DateTime": MOMENT,
    "JSON": {},
}
# Where a generated value would be invalid, or needlessly slow.
OVERRIDES: dict[str, Any] = {
    "TransactionInput.asset": "USDT",  # a deposit is of the base currency
    "SimulationInput.paths": 100,
    "SimulationInput.horizon": 30,
    "importTransactions.file": (
        "transactions.csv",
        f"kind,asset,quantity,price,fee,time\nDEPOSIT,USDT,100,,,{MOMENT}\n".encode(),
    ),
    "backtestFile.file": ("btc.csv", COINS_DIR / "coin_Bitcoin.csv"),
    "benchmark.symbol": "BTC",  # a benchmark names one thing, though no argument is required
    "treynor.benchmark": "BTC",
    "rSquared.benchmark": "BTC",
    "PlaceOrderInput.type": "LIMIT",  # one that rests: far below the market
    "PlaceOrderInput.quantity": "0.001",
    "PlaceOrderInput.price": "100",
}
# Cases where A's own id is taken and a later check refuses another field, by design: proof
# enough that the id check passed (B is refused with NotFound before that check).
OWNER_REFUSED_FIELDS = {
    # A's connection is on the paper exchange: a bot on a connection is LIVE, and live trading
    # is off here; a PAPER bot trades on coinql's own paper exchange.
    "mutation createBot(input.connectionId: ExchangeConnection)": "mode",
}
REFUSAL_TYPES = frozenset({"NotFound", "Forbidden"})
REFUSAL_CODES = frozenset({"NotFound", "Forbidden", "NOT_FOUND", "FORBIDDEN"})
DESTRUCTIVE = ("delete", "cancel", "remove", "stop")
WINDOW = {"start": "2018-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"}
SNAPSHOT_DEPTH = 3
REFUSAL_SECONDS = 10.0  # for a subscription to be refused
CONTROL_SECONDS = 3.0  # for the owner's subscription to answer or stay open


def schema_walk() -> SchemaWalk:
    return SchemaWalk(
        build_schema()._schema,
        public=PUBLIC_NODE_TYPES,
        aliases=ID_ALIASES,
        scalars=SCALAR_SAMPLES,
        overrides=OVERRIDES,
        nested=frozenset(NESTED),
    )


# Ids taken below the root, each with the query that reaches it (A's id of the type in braces)
# and the field that must be refused.
NESTED = {
    "Performance.benchmark(of)": (
        '{ asset(symbol: "BTC") { performance { benchmark(of: "{Portfolio}") { beta } } } }',
        ("asset", "performance", "benchmark"),
    ),
    "Performance.rolling(of)": (
        '{ asset(symbol: "BTC") { performance {'
        ' rolling(window: 30, metric: BETA, of: "{BacktestRun}") { values } } } }',
        ("asset", "performance", "rolling"),
    ),
    "Performance.treynor(of)": (
        '{ asset(symbol: "BTC") { performance { treynor(of: "{Portfolio}") } } }',
        ("asset", "performance", "treynor"),
    ),
    "Performance.rSquared(of)": (
        '{ asset(symbol: "BTC") { performance { rSquared(of: "{BacktestRun}") } } }',
        ("asset", "performance", "rSquared"),
    ),
}


async def refused_below_the_root(client: GraphQLClient, owner: Owner, other: str) -> list[str]:
    """B names A's portfolio or run as a benchmark: null with NotFound, as for an id that
    does not exist; A is answered."""
    failures = []
    for key, (template, path) in NESTED.items():
        for user, refused in ((other, True), (owner.token, False)):
            query = template
            for type_name, global_id in owner.ids.items():
                query = query.replace("{" + type_name + "}", global_id)
            response = await client.execute(query, token=user)
            value: Any = response.data
            for step in path:
                value = value[step] if isinstance(value, dict) else None
            codes = {(e.get("extensions") or {}).get("code") for e in response.errors}
            if refused and (value is not None or codes != {"NotFound"}):
                failures.append(f"{key}: B reached A's data: {response.body}")
            if not refused and (value is None or response.errors):
                failures.append(f"{key}: A was refused their own: {response.body}")
    return failures


@dataclass
class Owner:
    """User A and one of each thing A owns."""

    token: str
    ids: dict[str, str]  # owned Node type -> the global id of one of A's
    secrets: tuple[str, ...]  # text found only in A's data


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    # The walk and two full snapshots spend more query cost than a user may in a minute.
    return make_settings(
        backend,
        tmp_path,
        rate_limit_cost_per_user=10_000_000,
        rate_limit_cost_per_address=10_000_000,
    )


@pytest.fixture
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, jobs run in a `coinql worker`, as in a deployment."""
    if settings.redis_url is None:
        yield None
        return
    process = start_worker(settings)
    yield process
    process.terminate()
    process.wait(timeout=20)


async def ok(client: GraphQLClient, token: str, query: str, **variables: Any) -> dict[str, Any]:
    return (await client.execute(query, variables, token=token)).ok()


async def queued(client: GraphQLClient, token: str, mutation: str, **variables: Any) -> str:
    (result,) = (await ok(client, token, mutation, **variables)).values()
    assert result["__typename"] == "Job", result
    return str(result["id"])


async def finished(client: GraphQLClient, token: str, job_id: str) -> str:
    """The id of the run a job made, once it has succeeded."""
    query = "query($id: ID!) { job(id: $id) { status error result { ... on Node { id } } } }"
    for _ in range(1200):
        job = (await ok(client, token, query, id=job_id))["job"]
        if job["status"] == "SUCCEEDED":
            return str(job["result"]["id"])
        assert job["status"] in ("QUEUED", "RUNNING"), job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def owner_samples(client: GraphQLClient, admin: str) -> Owner:
    """A signs up and makes one of each thing a user owns, through the API, on real BTC
    candles: a portfolio with transactions and risk limits, a strategy, a backtest run (and
    its job), a simulation, a sweep, a walk-forward run, a paper exchange connection,
    an API key, a paper bot and a resting order of its, and an index."""
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report
    email = "owner-a@example.com"
    token = (await client.sign_up(email))["accessToken"]
    book, strategy_name, run_name = "A's secret book", "A's secret strategy", "A's secret run"
    user = (await ok(client, token, "{ me { id } }"))["me"]["id"]
    created = await ok(
        client,
        token,
        'mutation($name: String!) { createPortfolio(input: {name: $name, baseCurrency: "USDT"})'
        " { __typename ... on Portfolio { id } ... on Error { message } } }",
        name=book,
    )
    portfolio = created["createPortfolio"]["id"]
    transactions = [
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "10000", "time": "2020-01-01T00:00:00Z"},
        {
            "kind": "BUY",
            "asset": "BTC",
            "quantity": "0.5",
            "price": "7200",
            "fee": "3.6",
            "time": "2020-01-02T00:00:00Z",
        },
    ]
    added = await client.contract(
        "portfolio",
        "AddTransactions",
        {"portfolioId": portfolio, "transactions": transactions},
        token=token,
    )
    assert added.ok()["addTransactions"]["__typename"] == "Portfolio", added.body
    limits = await ok(
        client,
        token,
        "mutation($p: ID!) { setRiskLimits(portfolioId: $p,"
        " limits: {maxDrawdown: 0.5, dailyLoss: 0.2}) { __typename } }",
        p=portfolio,
    )
    assert limits["setRiskLimits"]["__typename"] == "RiskLimits", limits
    saved = await ok(
        client,
        token,
        "mutation($name: String!) { createStrategy(input: {name: $name,"
        " kind: {smaCross: {fast: 10, slow: 30}}}) { __typename ... on Strategy { id } } }",
        name=strategy_name,
    )
    strategy = saved["createStrategy"]["id"]
    study = (
        '{symbol: "BTC", strategy: "smaCross", grid: [{name: "fast", values: [5, 10]},'
        ' {name: "slow", values: [30]}], start: $start, end: $end, trainBars: 365, testBars: 180}'
    )
    in_window = "mutation($start: DateTime, $end: DateTime)"
    sweep_job = await queued(
        client,
        token,
        f"{in_window} {{ runSweep(input: {study}) {{ __typename ... on Job {{ id }} }} }}",
        **WINDOW,
    )
    walk_job = await queued(
        client,
        token,
        f"{in_window} {{ runWalkForward(input: {study}) {{ __typename ... on Job {{ id }} }} }}",
        **WINDOW,
    )
    backtest_job = await queued(
        client,
        token,
        "mutation($s: ID!, $name: String!, $start: DateTime, $end: DateTime) { runBacktest(input:"
        ' {symbols: ["BTC"], strategyId: $s, name: $name, start: $start, end: $end})'
        " { __typename ... on Job { id } } }",
        s=strategy,
        name=run_name,
        **WINDOW,
    )
    run = await finished(client, token, backtest_job)
    simulation_job = await queued(
        client,
        token,
        "mutation($r: ID!) { runSimulation(input: {source: {backtestRunId: $r}, paths: 200,"
        " horizon: 60}) { __typename ... on Job { id } } }",
        r=run,
    )
    connected = await client.contract("accounts", "AddExchangeConnection", token=token)
    connection = connected.ok()["addExchangeConnection"]
    assert connection["__typename"] == "ExchangeConnection", connection
    created_key = (await client.contract("accounts", "CreateApiKey", token=token)).ok()
    api_key = created_key["createApiKey"]
    assert api_key["__typename"] == "CreatedApiKey", api_key
    bot = await ok(
        client,
        token,
        'mutation($s: ID!) { createBot(input: {name: "A\'s bot", strategyId: $s, symbol: "BTC",'
        ' interval: D1, capital: "1000"}) { __typename ... on Bot { id }'
        " ... on Error { message } } }",
        s=strategy,
    )
    assert bot["createBot"]["__typename"] == "Bot", bot
    order = await ok(
        client,
        token,
        "mutation($b: ID!) { placeOrder(input: {botId: $b, side: BUY, type: LIMIT,"
        ' quantity: "0.001", price: "100"}) { __typename ... on Order { id } ... on Error'
        " { message } } }",
        b=bot["createBot"]["id"],
    )
    assert order["placeOrder"]["__typename"] == "Order", order
    index = await ok(
        client,
        token,
        'mutation { createIndex(input: {name: "A\'s index", kind: {equalWeight: {lookback: 30}},'
        ' symbols: ["BTC"]}) { __typename ... on Index { id } } }',
    )
    assert index["createIndex"]["__typename"] == "Index", index
    ids = {
        "User": user,
        "Index": index["createIndex"]["id"],
        "Bot": bot["createBot"]["id"],
        "Order": order["placeOrder"]["id"],
        "ExchangeConnection": connection["id"],
        "ApiKey": api_key["apiKey"]["id"],
        "Portfolio": portfolio,
        "Strategy": strategy,
        "Job": backtest_job,
        "BacktestRun": run,
        "SimulationRun": await finished(client, token, simulation_job),
        "SweepRun": await finished(client, token, sweep_job),
        "WalkForwardRun": await finished(client, token, walk_job),
    }
    return Owner(token, ids, secrets=(book, strategy_name, run_name, email))


def missing_id(type_name: str) -> str:
    return str(relay.GlobalID(type_name, str(uuid.uuid4())))


def masked(answer: Any, *global_ids: str) -> str:
    """The answer with the ids asked about (global, and the UUID inside) made alike."""
    text = json.dumps(answer, sort_keys=True)
    for global_id in global_ids:
        raw = relay.GlobalID.from_id(global_id).node_id
        text = text.replace(global_id, "<id>").replace(raw, "<id>")
    return text


def names_the_id(case: Case, field: Any) -> bool:
    return field in (case.slot[-1], ".".join(case.slot))


def refusing_error(case: Case, error: dict[str, Any]) -> bool:
    extensions = error.get("extensions") or {}
    if {extensions.get("code"), extensions.get("classification")} & REFUSAL_CODES:
        return True
    return extensions.get("code") == "InvalidInput" and names_the_id(case, extensions.get("field"))


def refusal_problem(case: Case, body: dict[str, Any]) -> str | None:
    """None when an HTTP answer refuses the case; else what it let through."""
    errors = body.get("errors") or []
    for error in errors:
        if not refusing_error(case, error):
            return f"an error that is not a refusal: {error}"
    data = body.get("data")
    if data is None:
        return None if errors else f"neither data nor errors: {body}"
    value = data.get(case.field)
    if value is None or value == []:
        return None
    if isinstance(value, list):
        return f"a list of {len(value)}: {value}"
    typename = value.get("__typename")
    if typename in REFUSAL_TYPES:
        return None
    if typename == "InvalidInput" and names_the_id(case, value.get("field")):
        return None
    return f"a {typename}: {value}"


def subscription_refusal_problem(case: Case, answer: tuple[str, Any]) -> str | None:
    kind, found = answer
    if kind == "complete":
        return None
    if kind != "error":
        return f"{kind}: {found}"
    for error in found if isinstance(found, list) else [found]:
        # Subscription errors carry no `extensions` (coinql codes the results of queries and
        # mutations): one without them counts as a refusal because it must also read like a
        # missing id's and the owner must not get it (the control).
        if not isinstance(error, dict):
            return f"an error that is not a refusal: {error}"
        if "extensions" in error and not refusing_error(case, error):
            return f"an error that is not a refusal: {error}"
    return None


def success_problem(walk: SchemaWalk, case: Case, body: dict[str, Any]) -> str | None:
    """None when the owner's answer is a success; else the refusal or failure."""
    if body.get("errors"):
        return f"errors: {body['errors']}"
    value = (body.get("data") or {}).get(case.field)
    if value is None:
        return "null"
    typename = value.get("__typename") if isinstance(value, dict) else None
    if typename == "InvalidInput" and OWNER_REFUSED_FIELDS.get(str(case)) == value.get("field"):
        return None
    if typename in walk.error_types:
        return f"a {typename}: {value}"
    if case.field == "node" and typename != case.id_type:
        return f"a {typename}, not a {case.id_type}"
    return None


async def run_http(client: GraphQLClient, token: str, operation: Operation) -> dict[str, Any]:
    if not operation.files:
        return (await client.execute(operation.document, operation.variables, token=token)).body
    response = await client.upload(
        operation.document, operation.files, operation.variables, token=token
    )
    body: dict[str, Any] = response.json()
    return body


async def run_subscription(
    server: Server, token: str, operation: Operation, seconds: float
) -> tuple[str, Any]:
    """("error", errors), ("data", the first item), ("complete", None) when it ended without
    an item, or ("silent", None) when nothing came within `seconds`."""
    async with ws_connect(server.ws_url, token) as connection:
        stream = connection.subscribe(operation.document, operation.variables)
        assert isinstance(stream, AsyncGenerator)  # closed here, while the socket is open
        try:
            items = await take(stream, 1, timeout=seconds)
        except SubscriptionError as error:
            return ("error", error.args[0])
        except TimeoutError:
            return ("silent", None)
        finally:
            await stream.aclose()
    return ("data", items[0]) if items else ("complete", None)


async def snapshot(client: GraphQLClient, walk: SchemaWalk, owner: Owner) -> dict[str, Any]:
    """All A reads through every query that takes an id, and A's listings."""
    found: dict[str, Any] = {}
    for case in walk.cases:
        if case.operation != "query":
            continue
        only = case.id_type if case.field == "node" else None
        selection = walk.full_selection(walk.field(case).type, SNAPSHOT_DEPTH, only=only)
        operation = walk.build(case, case.ids(owner.ids[case.id_type]), selection, owner.ids)
        body = await run_http(client, owner.token, operation)
        assert success_problem(walk, case, body) is None, (str(case), body)
        found[str(case)] = body["data"]
    for name in walk.listings():
        found[name] = await listing(client, walk, owner.token, name)
    return found


async def listing(client: GraphQLClient, walk: SchemaWalk, token: str, name: str) -> Any:
    query = walk.roots["query"].fields[name]
    selection = walk.full_selection(query.type, SNAPSHOT_DEPTH, arguments=False)
    return (await client.execute(f"{{ {name} {selection} }}", token=token)).ok()


async def refused_to_other(
    client: GraphQLClient, server: Server, walk: SchemaWalk, owner: Owner, other: Owner
) -> list[str]:
    """B's answer to each case with A's id (and B's own for any other id it needs): a
    refusal, the same as for a missing id."""
    failures = []
    for case in walk.cases:
        selection = walk.answer_selection(walk.field(case).type)
        owned, absent = owner.ids[case.id_type], missing_id(case.id_type)
        theirs = walk.build(case, case.ids(owned), selection, other.ids)
        nobodys = walk.build(case, case.ids(absent), selection, other.ids)
        answer: Any
        missing: Any
        if case.operation == "subscription":
            answer = await run_subscription(server, other.token, theirs, REFUSAL_SECONDS)
            missing = await run_subscription(server, other.token, nobodys, REFUSAL_SECONDS)
            problem = subscription_refusal_problem(case, answer)
        else:
            answer = await run_http(client, other.token, theirs)
            missing = await run_http(client, other.token, nobodys)
            problem = refusal_problem(case, answer)
        if problem:
            failures.append(f"B got {case} of A's: {problem}")
        if masked(answer, owned) != masked(missing, absent):
            failures.append(f"B tells A's id from a missing one in {case}: {answer}, {missing}")
        if leaked := [secret for secret in owner.secrets if secret in json.dumps(answer)]:
            failures.append(f"B read {leaked} in {case}: {answer}")
    for name, listed in walk.listings().items():
        text = json.dumps(await listing(client, walk, other.token, name))
        if seen := [value for value in (*owner.ids.values(), *owner.secrets) if value in text]:
            failures.append(f"B's {name} shows A's {seen}")
        if owner.ids[listed] not in json.dumps(await listing(client, walk, owner.token, name)):
            failures.append(f"A's own {name} does not show A's {listed}: the check proves nothing")
    return failures


async def refused_to_owner(
    client: GraphQLClient, server: Server, walk: SchemaWalk, owner: Owner
) -> list[str]:
    """The control: A is not refused what B was. Deletions and cancellations go last."""
    failures = []
    for case in sorted(walk.cases, key=lambda case: case.field.startswith(DESTRUCTIVE)):
        selection = walk.answer_selection(walk.field(case).type)
        operation = walk.build(case, case.ids(owner.ids[case.id_type]), selection, owner.ids)
        if case.operation == "subscription":
            kind, found = await run_subscription(server, owner.token, operation, CONTROL_SECONDS)
            problem = None if kind in ("data", "silent") else f"{kind}: {found}"
        else:
            problem = success_problem(walk, case, await run_http(client, owner.token, operation))
        if problem:
            failures.append(
                f"A was refused {case} of A's own ({problem}): B's check proves nothing"
            )
    return failures


async def other_samples(client: GraphQLClient) -> Owner:
    """B signs up with a strategy of B's own (a bot's other id, when the walk gives it A's
    connection or portfolio)."""
    token = (await client.sign_up("other-b@example.com"))["accessToken"]
    saved = await ok(
        client,
        token,
        'mutation { createStrategy(input: {name: "B\'s", kind: {smaCross: {fast: 5, slow: 20}}})'
        " { __typename ... on Strategy { id } } }",
    )
    return Owner(token, {"Strategy": saved["createStrategy"]["id"]}, ())


def test_the_walk_knows_the_type_of_every_id() -> None:
    walk = schema_walk()
    assert not walk.problems, "\n".join(walk.problems)
    assert walk.cases and walk.listings()


async def test_nobody_reaches_what_another_user_owns(
    client: GraphQLClient,
    admin: str,
    server: Server,
    worker: subprocess.Popen[bytes] | None,
) -> None:
    walk = schema_walk()
    assert not walk.problems, "\n".join(walk.problems)
    owner = await owner_samples(client, admin)
    needed = walk.owned | {case.id_type for case in walk.cases}
    unsampled = sorted(needed - owner.ids.keys())
    assert not unsampled, (
        f"A owns no {unsampled}: make one in owner_samples, so that the walk checks that nobody"
        " else reaches it"
    )
    other = await other_samples(client)
    before = await snapshot(client, walk, owner)
    failures = await refused_to_other(client, server, walk, owner, other)
    failures += await refused_below_the_root(client, owner, other.token)
    after = await snapshot(client, walk, owner)
    failures += [f"A's {key} changed while B walked" for key in before if before[key] != after[key]]
    failures += await refused_to_owner(client, server, walk, owner)
    assert not failures, "\n".join(failures)
