"""Risk limits, watched whatever the market source: every COINQL_RISK_CHECK_SECONDS, and sooner
when prices move (at most once a second), at the prices queries read (coinql.realtime.prices).

A breach is stored and pushed to its owner's `riskAlerts`, once per breach: a limit alerts
again only after it came back. One monitor checks per deployment (elected among the replicas
as the feed's publisher is, coinql.realtime.leader), so replicas never raise the same alert
twice. Portfolios are valued by the same domain code as the portfolio queries
(`valuation.valuation`, `valuation.nav_history`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import numpy as np
import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain import ledger, risk, valuation
from coinql.domain.candles import DAY_MS, Interval
from coinql.realtime import channels
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.hub import Hub
from coinql.realtime.leader import Leader, renewing
from coinql.realtime.prices import LatestPrices
from coinql.realtime.tasks import cancel
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store
from coinql.store import risk as risk_store

log = structlog.get_logger("coinql.risk")
# Told of each new breach (the portfolio, what was breached): the app pauses its bots.
OnBreach = Callable[[uuid.UUID, str], Awaitable[Any]]
MIN_GAP_SECONDS = 1.0


class RiskMonitor:
    """Checks every portfolio's limits on a schedule and as prices move, while it leads."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        hub: Hub,
        prices: LatestPrices,
        leader: Leader,
        every_seconds: float,
        on_status: Callable[[str], None] = lambda status: None,
        on_breach: OnBreach | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.sessions, self.hub, self.prices, self.leader = sessions, hub, prices, leader
        self.on_breach = on_breach
        self.clock = clock
        self.every_seconds = every_seconds
        self.on_status = on_status
        self.checks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="coinql-risk-monitor")

    async def stop(self) -> None:
        await cancel(self._task)
        await self.leader.release()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            if await self.leader.acquire():
                self.on_status("leader")
                async with renewing(self.leader):  # a lease outlives the check and the wait
                    await self._check()
                    await self._pause(started)
            else:
                self.on_status("standby")
                await self._pause(started)

    async def _check(self) -> None:
        try:
            await check_risk_limits(
                self.sessions,
                self.hub,
                self.prices.snapshot(),
                now=self.clock(),
                on_breach=self.on_breach,
            )
            self.checks += 1
        except asyncio.CancelledError:
            raise
        except Exception:  # a bad check must not stop the monitor
            log.exception("risk check failed")

    async def _pause(self, started: float) -> None:
        await asyncio.sleep(MIN_GAP_SECONDS)
        left = self.every_seconds - (time.monotonic() - started)
        if left > 0:  # until the schedule, or until prices move
            await self.prices.moved(timeout=left)


async def check_risk_limits(
    sessions: async_sessionmaker[AsyncSession],
    hub: Hub,
    latest: dict[str, float],
    *,
    now: datetime,
    on_breach: OnBreach | None = None,
) -> int:
    """Evaluate every portfolio's limits at the latest prices; store and publish an alert for
    each new breach (once per breach: a limit alerts again only after it came back), and tell
    `on_breach` (which pauses the portfolio's bots) once the alerts are stored."""
    raised = 0
    breaches: list[tuple[uuid.UUID, str]] = []
    async with sessions() as session, session.begin():
        for limits in await risk_store.all_limits(session):
            thresholds = limits.thresholds()
            if not thresholds:
                continue
            observed = await _observe(session, limits.portfolio_id, latest, now)
            breached = {
                name for name, value in thresholds.items() if observed.get(name, 0.0) > value
            }
            for name in sorted(breached - set(limits.breached)):
                alert = await risk_store.add_alert(
                    session,
                    alert=risk_store.Alert(
                        portfolio_id=limits.portfolio_id,
                        owner_id=limits.owner_id,
                        limit=name,
                        observed=observed[name],
                        threshold=thresholds[name],
                        triggered_at=now,
                    ),
                )
                await hub.publish(channels.alerts(limits.owner_id), risk_store.alert_payload(alert))
                breaches.append(
                    (
                        limits.portfolio_id,
                        f"risk limit {_api_name(name)} breached: {observed[name]:.4g} over"
                        f" {thresholds[name]:.4g}",
                    )
                )
                raised += 1
            limits.breached = sorted(breached)
    if on_breach is not None:
        for portfolio_id, reason in breaches:
            try:
                await on_breach(portfolio_id, reason)
            except Exception:  # the others' bots are paused all the same
                log.exception("pausing a portfolio's bots failed", portfolio_id=str(portfolio_id))
    return raised


async def _observe(
    session: AsyncSession, portfolio_id: uuid.UUID, latest: dict[str, float], now: datetime
) -> dict[str, float]:
    portfolio = await session.get(portfolio_store.Portfolio, portfolio_id)
    if portfolio is None:
        return {}
    entries = (await portfolio_store.entries_of(session, portfolio_ids=[portfolio_id]))[
        portfolio_id
    ]
    if not entries:
        return {}
    transactions = [entry.transaction() for entry in entries]
    symbols = valuation.priced_assets(transactions, base_currency=portfolio.base_currency)
    assets = await market_store.get_assets(session, symbols=symbols)
    current = valuation.valuation(
        transactions,
        base_currency=portfolio.base_currency,
        method=ledger.CostBasis(portfolio.cost_basis),
        last_prices={
            symbol: latest.get(symbol, assets[symbol].last_price if symbol in assets else None)
            for symbol in symbols
        },
    )
    weights = np.array(
        [w for p in current.positions if p.quantity > 0 and (w := current.weight(p)) is not None]
    )
    start = valuation.history_start(transactions, Interval.D1)
    candles = {
        symbol: await market_store.load_candles(
            session, asset=assets[symbol], interval=Interval.D1, start=start, end=None
        )
        for symbol in symbols
        if symbol in assets
    }
    history = valuation.nav_history(
        transactions,
        base_currency=portfolio.base_currency,
        candles=candles,
        interval=Interval.D1,
        now=now,
    )
    today = int(now.timestamp() * 1000) // DAY_MS * DAY_MS
    before_today = history.values[history.timestamps < today]
    values = np.append(before_today, float(current.value))
    day_start = float(before_today[-1]) if before_today.size else None
    return risk.limit_observations(values, weights, day_start)


def _api_name(limit: str) -> str:
    """A limit as the API names it (max_position_weight -> maxPositionWeight)."""
    head, *rest = limit.split("_")
    return head + "".join(word.capitalize() for word in rest)
