"""Helpers several test modules share: no test module imports another."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import func
from sqlmodel import select
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.exchanges.coingecko import MarketCap
from coinql.store.auth import RefreshToken, User
from tests.client import GraphQLClient
from tests.conftest import CONTRACT_DIR, Backend, make_settings
from tests.fakes import FakeExchange, FakeMarketCaps

# The contract's backtest window.
WINDOW = {"start": "2018-01-01T00:00:00Z", "end": "2021-06-30T00:00:00Z"}


async def count(app: Starlette, model: type[User] | type[RefreshToken]) -> int:
    async with app.state.services.reader() as session:
        result = await session.exec(select(func.count()).select_from(model))
        return int(result.one())


def ewma_reference(returns: np.ndarray, decay: float) -> np.ndarray:
    """RiskMetrics, written out: sum_t decay ** (T - 1 - t) r_t r_t' / sum_t decay ** (T - 1 - t)
    over the T observations, around a zero mean."""
    total = np.zeros((returns.shape[1], returns.shape[1]))
    weight_sum = 0.0
    for t, row in enumerate(returns):
        weight = decay ** (returns.shape[0] - 1 - t)
        total += weight * np.outer(row, row)
        weight_sum += weight
    return total / weight_sum


async def wait_for(
    client: GraphQLClient, job_id: str, *, final: bool = True, token: str | None = None
) -> dict[str, Any]:
    for _ in range(600):
        found = await client.contract("backtest", "JobResult", {"jobId": job_id}, token=token)
        job = found.ok()["job"]
        if job["status"] not in ("QUEUED", "RUNNING") or (not final and job["status"] == "RUNNING"):
            return dict(job)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def run_contract_backtest(client: GraphQLClient) -> dict[str, Any]:
    queued = (await client.contract("backtest", "RunBacktest", WINDOW)).ok()["runBacktest"]
    assert queued["__typename"] == "Job", queued
    assert queued["kind"] == "BACKTEST" and queued["status"] in ("QUEUED", "RUNNING")
    return await wait_for(client, queued["id"])


@asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[GraphQLClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://coinql.test") as http:
            yield GraphQLClient(http, CONTRACT_DIR)


@asynccontextmanager
async def exchange_app(
    backend: Backend, tmp_path: Path, exchange: FakeExchange, *, history_days: int = 30
) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    """The app ingesting daily BTC and ETH from `exchange`: one pass at start (the next would
    come in an hour)."""
    settings = make_settings(
        backend,
        tmp_path,
        source="fakex",
        exchange_symbols="BTC,ETH",
        exchange_intervals="D1",
        ingest_history_days=history_days,
        ingest_poll_seconds=3600,
    )
    caps = FakeMarketCaps({"BTC": MarketCap("BTC", 6e11, 1.9e7)})
    app = create_app(settings, exchange_client=exchange, market_caps=caps)
    async with running(app) as client:
        yield app, client


async def wait_for_ingestion(client: GraphQLClient, jobs: int) -> list[dict[str, object]]:
    for _ in range(100):
        statuses = (await client.contract("market", "IngestionStatus")).ok()["ingestionStatus"]
        if len(statuses) == jobs and all(s["lastSuccessAt"] or s["lastError"] for s in statuses):
            return list(statuses)
        await asyncio.sleep(0.05)
    raise AssertionError("ingestion did not run")
