"""Faults caused for real: SQLite locked by another process; an exchange answering rate
limits, 5xx and timeouts; PostgreSQL restarted under load; Redis killed and brought back."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ccxt
import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.exc import DBAPIError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request

from coinql.app import create_app
from coinql.domain.candles import DAY_MS, Interval
from coinql.exchanges.ccxt import Backoff
from coinql.realtime.ingestion import IngestionScheduler
from coinql.resolvers import auth as auth_resolvers
from coinql.resolvers import realtime as realtime_resolvers
from coinql.resolvers.context import Context
from coinql.store import auth as auth_store
from coinql.store import db
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store.jobs import JobKind, JobStatus
from coinql.store.portfolio import LedgerEntry
from tests.client import GraphQLClient, contract_operations
from tests.conftest import (
    CONTRACT_DIR,
    Backend,
    OwnRedis,
    available_backends,
    make_settings,
    start_server,
    start_worker,
    stop_server,
)
from tests.fakes import FakeExchange, ohlcv_rows
from tests.helpers import count, exchange_app, wait_for_ingestion
from tests.ws import take, ws_connect

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


async def test_a_locked_sqlite_database_is_a_clear_error_not_a_hang(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 300)
    path = tmp_path / "locked.db"
    shutil.copy(sqlite_template, path)
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{path}", None)
    app = create_app(make_settings(backend, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            holder = subprocess.Popen(
                [sys.executable, "-c", HOLD_LOCK, str(path)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
                register = await client.contract(
                    "server",
                    "Register",
                    {"email": "ada@example.com", "password": "correct horse battery staple"},
                )
            finally:
                assert holder.stdin is not None
                holder.stdin.write("\n")
                holder.stdin.close()
                holder.wait(timeout=10)
                assert holder.stdout is not None
                holder.stdout.close()
            (error,) = register.errors
            assert error["message"] == (
                "the database is locked by another process; nothing was changed, try again"
            )
            assert error["extensions"]["code"] == "Unavailable"
            from coinql.store.auth import User

            assert await count(app, User) == 0
            await client.sign_up()  # and once the lock is gone, it works
            assert await count(app, User) == 1


REGISTER = (
    'mutation($email: String!) { register(email: $email, password: "correct horse battery")'
    " { __typename } }"
)


async def test_concurrent_register_batches_on_sqlite_answer_truthfully(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """Batches of registrations at once contend for SQLite's write lock. Each registration
    answers its own outcome: every one reported created can log in, none reported failed
    exists; and none fails, since password hashing no longer holds up the event loop (and the
    commits waiting on it) while other writers' busy timeouts run out."""
    path = tmp_path / "contended.db"
    shutil.copy(sqlite_template, path)
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{path}", None)
    # All from one address: the sign-up throttle is raised out of the way.
    app = create_app(make_settings(backend, tmp_path, registrations_per_address=100))
    emails = [[f"user-{batch}-{index}@example.com" for index in range(10)] for batch in range(5)]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as http:

            async def register(batch: list[str]) -> list[dict[str, Any]]:
                operations = [{"query": REGISTER, "variables": {"email": e}} for e in batch]
                response = await http.post("/graphql", json=operations)
                assert response.status_code == 200, response.text
                return list(response.json())

            answers = await asyncio.gather(*(register(batch) for batch in emails))
            outcomes = {
                email: (answer.get("data") or {}).get("register") or answer["errors"][0]
                for batch, batch_answers in zip(emails, answers, strict=True)
                for email, answer in zip(batch, batch_answers, strict=True)
            }
            created = [
                e for e, found in outcomes.items() if found.get("__typename") == "AuthPayload"
            ]
            failed = {e: found["message"] for e, found in outcomes.items() if e not in created}
            client = GraphQLClient(http, CONTRACT_DIR)
            for email in created:
                login = await client.contract(
                    "server", "Login", {"email": email, "password": "correct horse battery"}
                )
                assert login.ok()["login"]["__typename"] == "AuthPayload", email
            async with app.state.services.reader() as session:
                for email in failed:
                    assert await auth_store.get_user_by_email(session, email=email) is None
    assert not failed, failed


async def test_sqlite_writers_of_one_process_take_turns_instead_of_timing_out(
    sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty transactions at once, each holding SQLite's write lock for 40 ms (800 ms in
    all, under a 1 s busy timeout): SQLite's busy handler polls without order, so some of
    them would poll past the timeout while the others take turns; queued in the process,
    all twenty commit."""
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 1_000)
    path = tmp_path / "writers.db"
    shutil.copy(sqlite_template, path)
    backend = Backend("sqlite", f"sqlite+aiosqlite:///{path}", None)
    app = create_app(make_settings(backend, tmp_path))
    async with app.router.lifespan_context(app):
        services = app.state.services

        async def write(index: int) -> str | None:
            try:
                async with services.transaction() as session:
                    await auth_store.add_user(
                        session,
                        email=f"writer-{index}@example.com",
                        password_hash="x",
                        is_admin=False,
                        now=services.now(),
                    )
                    await session.flush()  # the write lock is taken here
                    await asyncio.sleep(0.04)
            except Exception as error:
                return f"{type(error).__name__}: {error}"
            return None

        failures = [found for found in await asyncio.gather(*map(write, range(20))) if found]
        async with services.reader() as session:
            users = await session.exec(select(func.count()).select_from(auth_store.User))
            stored = users.one()
    assert failures == []
    assert stored == 20  # the template holds no user


async def test_exchange_faults_back_off_show_the_stall_and_lose_no_candle(
    backend: Backend, tmp_path: Path
) -> None:
    """Rate limits, 5xx and timeouts from the exchange, mid-pagination and for whole passes:
    each is retried with backoff; a pass that still fails shows in /health/ready; after the
    exchange recovers, every daily candle is stored exactly once."""
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    start = today - 100 * DAY_MS  # 100 closed daily candles: start .. today - 1 day
    rows = {pair: ohlcv_rows(start, 100, base=base) for pair, base in PAIRS.items()}
    exchange = FakeExchange({key: found[:60] for key, found in rows.items()}, max_page=15)
    async with exchange_app(backend, tmp_path, exchange, history_days=100) as (app, client):
        services = app.state.services
        http = client.http
        await wait_for_ingestion(client, jobs=2)
        assert [len(await stored(client, symbol)) for symbol in ("BTC", "ETH")] == [60, 60]

        sleeps: list[float] = []

        async def sleep(delay: float) -> None:
            sleeps.append(delay)

        adapter = services.exchange
        adapter.backoff = Backoff(base_seconds=0.5, max_attempts=4, sleep=sleep)
        scheduler = IngestionScheduler(
            sessions=services.sessions,
            adapter=adapter,
            symbols=["BTC", "ETH"],
            intervals=[Interval.D1],
        )
        # The exchange moves on 40 days (three pages of 15 each), and misbehaves.
        exchange.rows = rows
        exchange.script = [
            None,  # BTC page 1
            ccxt.RateLimitExceeded("binance 429 Too Many Requests"),
            ccxt.ExchangeNotAvailable("binance 502 Bad Gateway"),
            None,  # BTC page 2, third try
            ccxt.RequestTimeout("binance GET timed out (10000 ms)"),
            None,  # BTC page 3
            ccxt.RequestTimeout("timed out"),  # ETH: four tries, all fail
            ccxt.RequestTimeout("timed out"),
            ccxt.RequestTimeout("timed out"),
            ccxt.RequestTimeout("timed out"),
        ]
        await scheduler.run_once()
        assert len(sleeps) == 6  # one wait before each retry
        assert all(
            0 <= delay <= 0.5 * 2**attempt
            for attempt, delay in (
                (0, sleeps[0]),
                (1, sleeps[1]),
                (0, sleeps[2]),
                (0, sleeps[3]),
                (1, sleeps[4]),
                (2, sleeps[5]),
            )
        )
        assert len(await stored(client, "BTC")) == 100  # recovered within the pass
        assert len(await stored(client, "ETH")) == 60  # nothing partial was written

        ready = (await http.get("/health/ready")).json()["components"]["ingestion"]
        assert ready["status"] == "degraded"
        (stall,) = ready["stalled"]
        assert stall["symbol"] == "ETH" and stall["consecutiveFailures"] == 1
        assert stall["lastError"].startswith("RequestTimeout")

        exchange.always_fail = ccxt.ExchangeNotAvailable("binance 503 Service Unavailable")
        await scheduler.run_once()  # a whole pass against a down exchange
        ready = (await http.get("/health/ready")).json()["components"]["ingestion"]
        failures = {job["symbol"]: job["consecutiveFailures"] for job in ready["stalled"]}
        assert failures == {"ETH": 2}  # BTC is current: nothing to ask the exchange

        exchange.always_fail = None  # recovery
        await scheduler.run_once()
        ready = (await http.get("/health/ready")).json()["components"]["ingestion"]
        assert ready["status"] == "up" and ready["stalled"] == []
        for symbol, pair in (("BTC", "BTC/USDT"), ("ETH", "ETH/USDT")):
            candles = await stored(client, symbol)
            assert [c[0] for c in candles] == list(range(start, today, DAY_MS)), symbol
            assert [c[1] for c in candles] == [row[4] for row in rows[(pair, "1d")]]


PAIRS = {("BTC/USDT", "1d"): 100.0, ("ETH/USDT", "1d"): 10.0}


async def stored(client: GraphQLClient, symbol: str) -> list[tuple[int, float]]:
    """(open time in ms, close) of each stored daily candle, oldest first."""
    response = await client.execute(
        "query($s: String!) { asset(symbol: $s) { candles(interval: D1) { timestamps close } } }",
        {"s": symbol},
    )
    candles = response.ok()["asset"]["candles"]
    return list(zip(candles["timestamps"], candles["close"], strict=True))


REALTIME = contract_operations(CONTRACT_DIR, "realtime")
PG_BACKENDS = [name for name in available_backends() if name == "postgres"]
BATCH = 20


async def restart_postgresql() -> None:
    """Restart this machine's PostgreSQL cluster (Debian's pg_ctlcluster, as `.ci/run` starts
    it): every connection is cut, and for a moment new ones are refused."""
    (version,) = sorted(path.name for path in Path("/etc/postgresql").iterdir())[-1:]
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"
    )
    assert await process.wait() == 0


@pytest.mark.parametrize("backend", PG_BACKENDS, indirect=True)
async def test_postgresql_restarted_under_load(backend: Backend, tmp_path: Path) -> None:
    """Readers and a writer run while PostgreSQL restarts: every failure is a typed
    Unavailable (no internal error), reads work again once it is back (the pool reconnects),
    and each written batch is either whole or absent."""
    app = create_app(make_settings(backend, tmp_path, source="none"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            client.token = (await client.sign_up("load@example.com"))["accessToken"]
            created = await client.contract("portfolio", "CreatePortfolio")
            portfolio_id = created.ok()["createPortfolio"]["id"]
            restarted = asyncio.Event()
            stop = asyncio.Event()
            reads: list[tuple[bool, list[dict[str, Any]]]] = []  # (after the restart, errors)
            writes: dict[str, list[dict[str, Any]]] = {}  # batch note -> errors

            async def reader() -> None:
                while not stop.is_set():
                    response = await client.contract(
                        "portfolio", "PortfolioView", {"portfolioId": portfolio_id}
                    )
                    reads.append((restarted.is_set(), response.errors))

            async def writer() -> None:
                number = 0
                while not stop.is_set():
                    note = f"batch-{number}"
                    number += 1
                    transactions = [
                        {
                            "kind": "DEPOSIT",
                            "asset": "USDT",
                            "quantity": "1",
                            "time": "2024-01-01T00:00:00Z",
                            "note": note,
                        }
                    ] * BATCH
                    response = await client.contract(
                        "portfolio",
                        "AddTransactions",
                        {"portfolioId": portfolio_id, "transactions": transactions},
                    )
                    writes[note] = response.errors

            tasks = [asyncio.create_task(reader()) for _ in range(3)]
            tasks.append(asyncio.create_task(writer()))
            await asyncio.sleep(1.0)
            await restart_postgresql()
            restarted.set()
            await asyncio.sleep(3.0)
            stop.set()
            await asyncio.gather(*tasks)

            failures = [error for _, errors in reads for error in errors] + [
                error for errors in writes.values() for error in errors
            ]
            assert failures, "the restart cut off nothing: the test did not exercise it"
            assert {error["extensions"].get("code") for error in failures} == {"Unavailable"}
            # Once PostgreSQL is back, reads answer again: the last ones all succeeded.
            assert all(not errors for _, errors in reads[-9:])
            assert sum(1 for after, errors in reads if after and not errors) >= 10
            # No partial writes: each batch's rows are all there or none are.
            async with app.state.services.reader() as session:
                rows = await session.exec(
                    select(LedgerEntry.note, func.count()).group_by(LedgerEntry.note)
                )
                stored = dict(rows.all())
            assert set(stored.values()) <= {BATCH}
            assert all(stored.get(note) == BATCH for note, errors in writes.items() if not errors)


def lost_connection() -> DBAPIError:
    """What SQLAlchemy raises when the server closes the connection under a statement."""
    return DBAPIError(
        "SELECT ...",
        None,
        ConnectionResetError("connection reset by peer"),
        connection_invalidated=True,
    )


async def test_a_query_cut_off_by_a_lost_connection_runs_once_more(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = market_store.asset_snapshot

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise lost_connection()
        return await real(*args, **kwargs)

    monkeypatch.setattr(market_store, "asset_snapshot", flaky)
    response = await client.execute("{ universe(top: 3) { symbol } }")
    assert response.errors == [] and len(calls) == 2
    metrics = (await client.http.get("/metrics")).text.splitlines()
    assert "coinql_read_retries_total 1.0" in metrics


async def test_a_query_retried_once_then_unavailable_and_mutations_never_rerun(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    async def down(*args: Any, **kwargs: Any) -> Any:
        calls.append("read")
        raise lost_connection()

    monkeypatch.setattr(market_store, "asset_snapshot", down)
    response = await client.execute("{ universe(top: 3) { symbol } }")
    assert calls == ["read", "read"]  # once more, not forever
    (error,) = response.errors
    assert error["message"] == "the database connection was lost; try again"
    assert error["extensions"]["code"] == "Unavailable"

    async def cut(*args: Any, **kwargs: Any) -> Any:
        calls.append("write")
        raise lost_connection()

    monkeypatch.setattr(auth_resolvers, "add_new_user", cut)
    register = await client.contract(
        "server", "Register", {"email": "ada@example.com", "password": "correct horse battery"}
    )
    assert calls.count("write") == 1
    assert register.errors[0]["extensions"]["code"] == "Unavailable"


async def test_a_connection_lost_during_commit_does_not_say_nothing_was_changed(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut off at COMMIT, a transaction may have been committed: the error says so, and
    unlike a failure before COMMIT it does not invite a blind retry."""

    async def cut(*args: Any, **kwargs: Any) -> None:
        raise lost_connection()

    monkeypatch.setattr(AsyncSession, "commit", cut)
    register = await client.contract(
        "server", "Register", {"email": "ada@example.com", "password": "correct horse battery"}
    )
    (error,) = register.errors
    assert error["extensions"]["code"] == "Unavailable"
    assert error["message"] == (
        "the database connection was lost while committing: the change may or may not have"
        " been saved; look before trying again"
    )


@pytest.mark.parametrize("backend", PG_BACKENDS, indirect=True)
async def test_redis_stopped_and_restarted_loses_nothing(
    backend: Backend, tmp_path: Path, own_redis: OwnRedis
) -> None:
    """Redis is killed (losing everything: no persistence) while a client is subscribed to
    prices and to a queued job, and comes back: queries keep working meanwhile, a job
    submitted meanwhile is accepted, the subscriptions resume by themselves, and both jobs
    run."""
    settings = make_settings(
        Backend(backend.name, backend.database_url, own_redis.url), tmp_path, source="demo"
    )
    fast = {
        "COINQL_FEED_TICK_SECONDS": "0.2",
        "COINQL_JOB_STALE_SECONDS": "3",
        "COINQL_JOB_SWEEP_SECONDS": "0.5",
    }
    server = start_server(settings, extra_env=fast)
    worker: subprocess.Popen[bytes] | None = None
    today = datetime.now(UTC).date()
    window = {
        "start": f"{today.year - 2}-01-01T00:00:00Z",
        "end": f"{today.year - 1}-06-30T00:00:00Z",
    }
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            token = (await client.sign_up("ops@example.com"))["accessToken"]
            client.token = token
            queued = (await client.contract("backtest", "RunBacktest", window)).ok()
            first_job = queued["runBacktest"]["id"]  # no worker yet: it waits in Redis
            async with ws_connect(server.ws_url, token) as connection:
                prices = connection.subscribe(REALTIME["Prices"])
                progress = connection.subscribe(REALTIME["JobProgress"], {"jobId": first_job})
                before = await take(prices, 2)
                assert (await take(progress, 1))[0]["jobProgress"]["status"] == "QUEUED"

                own_redis.stop()
                await asyncio.sleep(1.0)
                universe = await client.execute("{ universe(top: 3) { symbol lastPrice } }")
                assert len(universe.ok()["universe"]) == 3  # queries keep working
                during = (await client.contract("backtest", "RunBacktest", window)).ok()
                assert during["runBacktest"]["status"] == "QUEUED"  # accepted, kept in the store
                second_job = during["runBacktest"]["id"]
                ready = (await http.get("/health/ready")).json()
                assert ready["components"]["redis"]["status"] == "down"

                own_redis.start()
                worker = start_worker(settings)
                after = await take(prices, 2, timeout=10)  # no client action
                assert after[-1]["prices"]["timestamp"] > before[-1]["prices"]["timestamp"]
                updates = [
                    update["jobProgress"]["status"]
                    for update in await take(progress, 50, timeout=60)
                ]
                assert updates[-1] == "SUCCEEDED"  # the stream saw the end, then ended
            for job_id in (first_job, second_job):
                for _ in range(300):
                    job = (await client.contract("backtest", "JobResult", {"jobId": job_id})).ok()
                    if job["job"]["status"] not in ("QUEUED", "RUNNING"):
                        break
                    await asyncio.sleep(0.1)
                assert job["job"]["status"] == "SUCCEEDED", job
            ready = (await http.get("/health/ready")).json()
            assert ready["components"]["redis"]["status"] == "up"
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=20)
        stop_server(server)


async def test_job_progress_reads_the_store_when_the_broadcast_is_silent(
    app: Starlette, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The final status was stored but its broadcast was lost (Redis away): the stream still
    delivers it, from the store, and ends."""
    monkeypatch.setattr(realtime_resolvers, "JOB_RECHECK_SECONDS", 0.05)
    services = app.state.services
    await client.sign_up("ada@example.com")
    async with services.transaction() as session:
        user = await auth_store.get_user_by_email(session, email="ada@example.com")
        assert user is not None
        job = await job_store.add_job(
            session, owner_id=user.id, kind=JobKind.BACKTEST, job_input={}, now=services.now()
        )
    request = Request({"type": "http", "headers": [], "client": ("127.0.0.1", 1)})
    context = Context(services=services, request=request, _user=user, _user_loaded=True)
    stream = realtime_resolvers.job_progress(context, job.id)
    assert (await anext(stream))["status"] == "QUEUED"
    async with services.transaction() as session:  # stored, never published
        await job_store.finish(
            session, job_id=job.id, status=JobStatus.SUCCEEDED, now=services.now()
        )
    final = await asyncio.wait_for(anext(stream), 5)
    assert final["status"] == "SUCCEEDED"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)
