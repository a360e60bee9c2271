"""Scheduled account sync, on both backends: each connection an interval after its last
attempt (or after it was added), a failing one backing off twice as long each time, one
process syncing at a time, and the state in /health/ready."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import ccxt
import pytest
from starlette.applications import Starlette

from coinql.exchanges.ccxt import Backoff
from coinql.realtime.accounts import MAX_BACKOFF, AccountSyncScheduler, retry_delay
from coinql.realtime.clock import utc_now
from coinql.settings import Settings
from tests.client import GraphQLClient
from tests.conftest import Backend, make_settings, make_user
from tests.fakes import FakeAccountExchange, add_connection

EVERY = 300.0
AUDIT = "{ auditLog(first: 50) { edges { node { action target address } } } }"


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path, account_sync_seconds=EVERY)


class Later:
    """The scheduler's clock, moved on by hand from the real one."""

    def __init__(self) -> None:
        self.shift = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.shift


def scheduler_of(app: Starlette, clock: Later) -> AccountSyncScheduler:
    """A scheduler of the app's account sync on a clock of the test's (the app's own runs
    too, on the real clock, and finds nothing due)."""
    return AccountSyncScheduler(
        syncer=app.state.services.accounts, every_seconds=EVERY, clock=clock
    )


async def connections(client: GraphQLClient, token: str) -> list[dict[str, Any]]:
    found = await client.contract("accounts", "Connections", token=token)
    return list(found.ok()["exchangeConnections"])


def test_the_wait_doubles_with_each_failure_up_to_the_cap() -> None:
    every = timedelta(seconds=EVERY)
    waits = [retry_delay(failures, every) for failures in range(8)]
    assert waits[:4] == [every, 2 * every, 4 * every, 8 * every]
    assert waits[-1] == MAX_BACKOFF
    assert retry_delay(3, timedelta(days=1)) == timedelta(days=1)  # never below the interval


SYNCED, FAILED, NOTHING = (
    {"synced": 1, "failed": 0, "busy": 0},
    {"synced": 0, "failed": 1, "busy": 0},
    {"synced": 0, "failed": 0, "busy": 0},
)


async def test_a_paper_account_syncs_an_interval_after_it_was_added_then_each_interval(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    added = await client.contract("accounts", "AddExchangeConnection", token=token)
    assert added.ok()["addExchangeConnection"]["__typename"] == "ExchangeConnection"
    clock = Later()
    scheduler = scheduler_of(app, clock)
    assert await scheduler.run_once() == NOTHING  # just added: its owner syncs it first
    clock.shift = timedelta(seconds=EVERY + 1)
    assert await scheduler.run_once() == SYNCED
    (synced,) = await connections(client, token)
    assert (synced["status"], synced["lastError"]) == ("ACTIVE", None)
    assert synced["lastSyncAt"] is not None
    clock.shift = timedelta(seconds=EVERY - 10)  # from its attempt, stamped about now
    assert await scheduler.run_once() == NOTHING
    clock.shift = timedelta(seconds=EVERY + 1)
    assert await scheduler.run_once() == SYNCED
    log = (await client.execute(AUDIT, token=token)).ok()["auditLog"]["edges"]
    assert log[0]["node"]["action"] == "ACCOUNT_SYNCED"
    assert log[0]["node"]["address"] is None  # nobody asked: the scheduler did


async def test_a_failing_connection_backs_off_and_shows_in_health(
    app: Starlette, client: GraphQLClient
) -> None:
    """The test runs in seconds, so every attempt is stamped at about the real now: the
    scheduler's clock, `shift` ahead, finds the connection due once `shift` reaches the
    wait after its last attempt (EVERY, then twice that, then four times)."""
    token = await make_user(app, client, "ada@example.com", admin=False)
    exchange = FakeAccountExchange()
    app.state.services.accounts.clients = lambda *args, **kwargs: exchange
    app.state.services.accounts.backoff = Backoff(max_attempts=1)  # no retry within a sync
    await add_connection(client, token)
    exchange.error = ccxt.AuthenticationError("key revoked")
    clock = Later()
    scheduler = scheduler_of(app, clock)
    for wait in (EVERY, 2 * EVERY, 4 * EVERY):
        clock.shift = timedelta(seconds=wait - 10)
        assert await scheduler.run_once() == NOTHING, wait
        clock.shift = timedelta(seconds=wait + 1)
        assert await scheduler.run_once() == FAILED, wait
    (failing,) = await connections(client, token)
    assert failing["status"] == "ERROR" and "did not accept the credentials" in failing["lastError"]
    ready = (await client.http.get("/health/ready")).json()
    sync = ready["components"]["accountSync"]
    assert ready["status"] == "ok"  # degraded, not down: the portfolios still serve
    assert (sync["status"], sync["connections"], sync["failing"]) == ("degraded", 1, 1)
    assert sync["mostFailuresInARow"] == 3
    assert sync["everySeconds"] == EVERY and sync["role"] == "leader"
    exchange.error = None
    clock.shift = MAX_BACKOFF + timedelta(seconds=1)
    assert await scheduler.run_once() == SYNCED
    healthy = (await client.http.get("/health/ready")).json()["components"]["accountSync"]
    assert (healthy["status"], healthy["failing"], healthy["connections"]) == ("up", 0, 1)


async def test_one_process_leads_the_sync(app: Starlette) -> None:
    services = app.state.services
    for _ in range(100):  # the app's own scheduler takes the lead as it starts
        if services.background.get("accountSync") == "leader":
            break
        await asyncio.sleep(0.05)
    assert services.background.get("accountSync") == "leader"
    first = services.backends.leader("account-sync", engine=services.engine)
    second = services.backends.leader("account-sync", engine=services.engine)
    # The app's own scheduler leads already: neither of these may.
    assert not await first.acquire()
    assert not await second.acquire()
    ingestion = services.backends.leader("ingestion", engine=services.engine)
    try:
        assert await ingestion.acquire()  # another role: a lock of its own
    finally:
        await ingestion.release()
