"""Login throttling and request budgets, in memory and in Redis: failures counted per account
and per address, budgets spent all or none; past a limit, requests are refused with
`RateLimited` and `Retry-After`."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.store.auth import RefreshToken
from coinql.store.throttle import FallbackThrottle, MemoryThrottle, RedisThrottle, Throttle
from tests.client import GraphQLClient
from tests.conftest import CONTRACT_DIR, Backend, available_backends, free_port, make_settings
from tests.helpers import count

PASSWORD = "correct horse battery staple"
REDIS_BACKENDS = [name for name in available_backends() if name == "postgres"]
WINDOW = 900.0


@asynccontextmanager
async def throttled_app(
    backend: Backend, tmp_path: Path, **limits: Any
) -> AsyncIterator[Starlette]:
    app = create_app(make_settings(backend, tmp_path, **limits))
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def client_from(app: Starlette, address: str) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app, client=(address, 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield GraphQLClient(http, CONTRACT_DIR)


async def login(client: GraphQLClient, email: str, password: str) -> tuple[dict[str, Any], Any]:
    response = await client.contract("server", "Login", {"email": email, "password": password})
    return response.ok()["login"], response.headers.get("retry-after")


async def test_an_account_is_locked_after_its_failures_even_for_the_right_password(
    backend: Backend, tmp_path: Path
) -> None:
    async with (
        throttled_app(backend, tmp_path, login_failures_per_account=3) as app,
        client_from(app, "10.0.0.1") as client,
    ):
        await client.sign_up("ada@example.com")
        await client.sign_up("bob@example.com")
        tokens_before = await count(app, RefreshToken)
        for _ in range(3):
            result, retry_after = await login(client, "Ada@Example.com", "wrong password!")
            assert result["__typename"] == "InvalidCredentials" and retry_after is None
        locked, retry_after = await login(client, "ada@example.com", PASSWORD)
        assert locked["__typename"] == "RateLimited"
        assert locked["message"].startswith("too many failed logins; try again in ")
        assert 0 < int(retry_after) <= WINDOW
        assert await count(app, RefreshToken) == tokens_before  # nothing issued
        other, _ = await login(client, "bob@example.com", PASSWORD)  # same address, other account
        assert other["__typename"] == "AuthPayload"
        metrics = (await client.http.get("/metrics")).text.splitlines()
        assert 'coinql_rejections_total{reason="login_throttle"} 1.0' in metrics


async def test_an_address_is_throttled_across_accounts(backend: Backend, tmp_path: Path) -> None:
    async with (
        throttled_app(backend, tmp_path, login_failures_per_address=4) as app,
        client_from(app, "10.0.0.2") as guesser,
        client_from(app, "10.0.0.3") as bystander,
    ):
        await bystander.sign_up("ada@example.com")
        for i in range(4):
            result, _ = await login(guesser, f"user{i}@example.com", "wrong password!")
            assert result["__typename"] == "InvalidCredentials"
        refused, retry_after = await login(guesser, "ada@example.com", PASSWORD)
        assert refused["__typename"] == "RateLimited" and int(retry_after) >= 1
        fine, _ = await login(bystander, "ada@example.com", PASSWORD)
        assert fine["__typename"] == "AuthPayload"


async def test_a_successful_login_forgives_the_accounts_failures(
    backend: Backend, tmp_path: Path
) -> None:
    async with (
        throttled_app(backend, tmp_path, login_failures_per_account=3) as app,
        client_from(app, "10.0.0.4") as client,
    ):
        await client.sign_up("ada@example.com")
        for _ in range(2):
            await login(client, "ada@example.com", "wrong password!")
        assert (await login(client, "ada@example.com", PASSWORD))[0]["__typename"] == "AuthPayload"
        for _ in range(2):
            await login(client, "ada@example.com", "wrong password!")
        assert (await login(client, "ada@example.com", PASSWORD))[0]["__typename"] == "AuthPayload"


def throttles(backend: Backend) -> list[Callable[[], Throttle]]:
    made: list[Callable[[], Throttle]] = [MemoryThrottle]
    if backend.redis_url is not None:
        url = backend.redis_url
        made.append(lambda: RedisThrottle(url, prefix="coinql:test-throttle:"))
    return made


async def test_attempts_leave_the_window_and_retry_after_counts_down(backend: Backend) -> None:
    """The window slides: the limit-th newest attempt decides how long to wait."""
    for make in throttles(backend):
        throttle = make()
        await throttle.clear("k")
        try:
            assert (await throttle.reserve([("k", 5)], window=0.6))[0] is not None
            await asyncio.sleep(0.3)
            assert (await throttle.reserve([("k", 5)], window=0.6))[0] is not None
            attempt, wait = await throttle.reserve([("k", 2)], window=0.6)
            assert attempt is None and 0.0 < wait <= 0.3 + 0.05
            attempt, wait_one = await throttle.reserve([("k", 1)], window=0.6)
            assert attempt is None and 0.3 < wait_one <= 0.6
            await asyncio.sleep(0.35)  # the first attempt has left the window
            assert (await throttle.reserve([("k", 2)], window=0.6))[0] is not None
            assert (await throttle.reserve([("k", 2)], window=0.6))[0] is None
            await throttle.clear("k")
            assert (await throttle.reserve([("k", 1)], window=0.6))[0] is not None
        finally:
            await throttle.clear("k")
            await throttle.close()


async def test_an_attempt_is_counted_in_all_its_windows_or_none(backend: Backend) -> None:
    for make in throttles(backend):
        throttle = make()
        for key in ("full", "free"):
            await throttle.clear(key)
        try:
            held, _ = await throttle.reserve([("full", 1)], window=60)
            assert held is not None
            refused, wait = await throttle.reserve([("free", 1), ("full", 1)], window=60)
            assert refused is None and 59 < wait <= 60
            # Nothing was counted for "free": its one slot is still there.
            assert (await throttle.reserve([("free", 1)], window=60))[0] is not None
            # A released attempt frees its slot in every key it was counted in.
            await throttle.release(["full"], held)
            assert (await throttle.reserve([("full", 1)], window=60))[0] is not None
        finally:
            for key in ("full", "free"):
                await throttle.clear(key)
            await throttle.close()


async def test_memory_throttle_forgets_expired_keys() -> None:
    throttle = MemoryThrottle()
    await throttle.reserve([("gone", 1)], window=0.01)
    await asyncio.sleep(0.02)
    assert (await throttle.reserve([("gone", 1)], window=0.01))[0] is not None
    await asyncio.sleep(0.02)
    throttle._live("gone", 0.01)
    assert "gone" not in throttle._attempts


def counting_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password the login resolver verifies, as it verifies it."""
    from coinql.domain import auth

    checked: list[str] = []
    verify = auth.verify_password

    def counted(password_hash: str, password: str) -> bool:
        checked.append(password)
        return verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counted)
    return checked


LOGIN = (
    "mutation L($email: String!, $password: String!) {"
    " login(email: $email, password: $password) { __typename } }"
)


async def _guess(apps: list[Starlette], emails: Callable[[int, int], str]) -> list[str]:
    """8 parallel requests, each a batch of 10 wrong-password logins, spread over `apps`
    (replicas), from one address; the outcomes' type names."""

    async def batch(request: int) -> list[str]:
        app = apps[request % len(apps)]
        async with client_from(app, "10.9.9.9") as client:
            operations = [
                {"query": LOGIN, "variables": {"email": emails(request, i), "password": "nope!"}}
                for i in range(10)
            ]
            response = await client.http.post("/graphql", json=operations)
            return [item["data"]["login"]["__typename"] for item in response.json()]

    answers = await asyncio.gather(*(batch(request) for request in range(8)))
    return [name for answer in answers for name in answer]


async def test_parallel_batches_verify_no_more_passwords_than_the_limits(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """80 guesses at once: 5 verified for one account, 20 for one address, the rest refused
    before their password is looked at; with Redis, across two replicas too."""
    checked = counting_verifications(monkeypatch)
    replicas = 2 if backend.redis_url else 1
    async with contextlib.AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(throttled_app(backend, tmp_path))
            for _ in range(replicas)
        ]
        async with client_from(apps[0], "10.9.9.8") as other:
            await other.sign_up("ada@example.com")
        one_account = await _guess(apps, lambda request, i: "ada@example.com")
        assert len(checked) == 5
        assert one_account.count("InvalidCredentials") == 5
        assert one_account.count("RateLimited") == 75
        checked.clear()
        await apps[0].state.services.throttle.clear("login:address:10.9.9.9")
        many_accounts = await _guess(apps, lambda request, i: f"user{request}-{i}@example.com")
        assert len(checked) == 20
        assert many_accounts.count("InvalidCredentials") == 20
        assert many_accounts.count("RateLimited") == 60


def waits_between(before: float, after: float, *, window: float) -> set[int]:
    """Every Retry-After a refusal between two readings of the budget's clock can carry: what
    was left of its window at that moment, in whole seconds rounded up (at least 1)."""
    samples = max(2, int((after - before) * 1000) + 2)
    moments = (before + (after - before) * i / (samples - 1) for i in range(samples))
    return {max(1, math.ceil(window - moment % window)) for moment in moments}


async def test_request_budget_per_address_is_spent_by_query_cost(
    backend: Backend, tmp_path: Path
) -> None:
    """ServerInfo costs 6: a budget of 12 per address runs it twice, then answers 429 with
    Retry-After until the window moves on; another address is unaffected."""
    async with (
        throttled_app(backend, tmp_path, rate_limit_cost_per_address=12) as app,
        client_from(app, "10.0.1.1") as client,
        client_from(app, "10.0.1.2") as other,
    ):
        first = await client.contract("server", "ServerInfo")
        second = await client.contract("server", "ServerInfo")
        # The budget's clock: Redis windows follow wall time, this process's its monotonic one.
        clock = time.time if backend.redis_url else time.monotonic
        before = clock()
        third = await client.contract("server", "ServerInfo")
        after = clock()
        elsewhere = await other.contract("server", "ServerInfo")
        metrics = (await client.http.get("/metrics")).text.splitlines()
    assert first.ok() == second.ok() == elsewhere.ok()
    assert third.status_code == 429
    # The wait is what was left of the current 60 s window when it was refused, rounded up.
    assert int(third.headers["retry-after"]) in waits_between(before, after, window=60)
    (error,) = third.errors
    assert error["message"].startswith(
        "the request budget per address (12 cost per 60 s, COINQL_RATE_LIMIT_COST_PER_ADDRESS)"
        " is spent; try again in "
    )
    assert error["extensions"] == {
        "code": "RATE_LIMITED",
        "retryAfterSeconds": int(third.headers["retry-after"]),
    }
    assert 'coinql_rejections_total{reason="rate_limit_address"} 1.0' in metrics


async def test_request_budget_per_user_follows_the_user(backend: Backend, tmp_path: Path) -> None:
    async with (
        throttled_app(backend, tmp_path, rate_limit_cost_per_user=12) as app,
        client_from(app, "10.0.2.1") as client,
        client_from(app, "10.0.2.2") as same_user_elsewhere,
    ):
        token = (await client.sign_up("ada@example.com"))["accessToken"]
        for _ in range(2):
            assert (await client.contract("server", "ServerInfo", token=token)).ok()
        anonymous = await client.contract("server", "ServerInfo")
        refused = await same_user_elsewhere.contract("server", "ServerInfo", token=token)
    assert anonymous.ok()  # the address's budget is separate and larger
    assert refused.status_code == 429
    assert refused.errors[0]["message"].startswith("the request budget per user (12 cost")


async def test_budgets_slide_and_a_refusal_spends_nothing(backend: Backend) -> None:
    for make in throttles(backend):
        throttle = make()
        try:
            assert await throttle.spend([("b", 10)], 8, window=0.5) is None
            refused = await throttle.spend([("b", 10)], 3, window=0.5)
            assert refused is not None and refused[0] == "b" and 0 < refused[1] <= 0.5
            assert await throttle.spend([("b", 10)], 2, window=0.5) is None  # 3 was not spent
            await asyncio.sleep(1.05)  # two windows later nothing counts
            assert await throttle.spend([("b", 10)], 10, window=0.5) is None
        finally:
            await throttle.close()


async def test_several_budgets_are_spent_all_or_none(backend: Backend) -> None:
    """The user's budget refuses: the address's is not charged for the refused request."""
    for make in throttles(backend):
        throttle = make()
        try:
            budgets = [("address:a", 100), ("user:u", 10)]
            assert await throttle.spend(budgets, 8, window=60) is None
            refused = await throttle.spend(budgets, 8, window=60)
            assert refused is not None and refused[0] == "user:u"
            # The address spent 8 once, not twice: 92 more fit exactly.
            assert await throttle.spend([("address:a", 100)], 92, window=60) is None
            assert await throttle.spend([("address:a", 100)], 1, window=60) is not None
        finally:
            await throttle.close()


@pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)
async def test_replicas_spending_at_once_never_overspend(backend: Backend) -> None:
    """Two replicas (two clients) spend concurrently from one budget in Redis."""
    assert backend.redis_url is not None
    replicas = [RedisThrottle(backend.redis_url, prefix="coinql:race:") for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(replicas[i % 2].spend([("user:u", 20)], 1, window=60) for i in range(60))
        )
        assert sum(1 for refused in results if refused is None) == 20
    finally:
        for replica in replicas:
            await replica.close()


async def test_a_redis_outage_falls_back_to_memory_and_still_limits() -> None:
    """Nothing listens on the port: every call fails over to this process's memory, which
    keeps counting, and the throttle says it is degraded."""
    throttle = FallbackThrottle(RedisThrottle(f"redis://127.0.0.1:{free_port()}/0"))
    try:
        assert await throttle.spend([("user:ada", 100)], 60, window=60) is None
        refused = await throttle.spend([("user:ada", 100)], 60, window=60)
        assert refused is not None and 0 < refused[1] <= 60
        assert throttle.degraded
        assert (await throttle.reserve([("login:ada", 1)], window=60))[0] is not None
        assert (await throttle.reserve([("login:ada", 1)], window=60))[0] is None
        await throttle.clear("login:ada")
        assert (await throttle.reserve([("login:ada", 1)], window=60))[0] is not None
    finally:
        await throttle.close()
