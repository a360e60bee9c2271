"""Live streams for subscriptions: prices, candles, portfolio value, job progress, alerts; and
risk limits. Every stream ends cleanly when the client goes: nothing outlives it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from coinql.domain import ledger, valuation
from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.errors import InvalidInput, InvalidToken, LiveDataOff, UserError
from coinql.realtime import channels
from coinql.realtime.clock import epoch_ms
from coinql.realtime.feed import LIVE_INTERVALS
from coinql.resolvers.auth import require_user
from coinql.resolvers.bots import get_bot
from coinql.resolvers.context import Context
from coinql.resolvers.owned import owned
from coinql.resolvers.portfolio import get_portfolio, ledger_state
from coinql.store import jobs as job_store
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store
from coinql.store import risk as risk_store

MAX_SYMBOLS = 50
TOKEN_CHECK_SECONDS = 5.0
JOB_RECHECK_SECONDS = 5.0
LEDGER_RECHECK_SECONDS = 10.0
# In a context's cache: this context runs a shared stream on behalf of its subscribers (see
# coinql.transport), who are each counted and limited there rather than here.
SHARED = "shared-stream"


class SubscriptionLimit(UserError):
    """Too many open subscriptions for this user."""


@asynccontextmanager
async def tracked(context: Context, user_id: uuid.UUID | None) -> AsyncIterator[None]:
    """Count the subscription per user (a limit) and in the metrics while it is open."""
    services = context.services
    if context.cache.get(SHARED):
        yield
        return
    if user_id is not None:
        count = services.subscriptions_by_user.get(user_id, 0)
        limit = services.settings.max_subscriptions_per_user
        if count >= limit:
            raise SubscriptionLimit(f"at most {limit} open subscriptions per user")
        services.subscriptions_by_user[user_id] = count + 1
    services.metrics.subscriptions.inc()
    try:
        yield
    finally:
        services.metrics.subscriptions.dec()
        if user_id is not None:
            left = services.subscriptions_by_user.get(user_id, 1) - 1
            if left:
                services.subscriptions_by_user[user_id] = left
            else:
                services.subscriptions_by_user.pop(user_id, None)


async def guard_token(context: Context) -> None:
    """Close the socket with 4403 once the connection's token has expired or been revoked."""
    if context.connection_params is None:
        return
    try:
        context.reset_user()
        await context.user()
    except InvalidToken:
        close = getattr(context.request, "close", None)
        if close is not None:
            await close(code=4403, reason="access token expired or revoked")
        raise


async def stream(
    context: Context, channel_names: list[str], *, conflate: bool
) -> AsyncGenerator[dict[str, Any], None]:
    """Hub messages, with the token re-checked every few seconds while they flow."""
    checked = time.monotonic()
    async for message in context.services.hub.subscribe(channel_names, conflate=conflate):
        if time.monotonic() - checked > TOKEN_CHECK_SECONDS:
            await guard_token(context)
            checked = time.monotonic()
        yield message


def _published(context: Context) -> frozenset[str]:
    """The symbols the live feed publishes; `LiveDataOff` when it runs on no server."""
    feed = context.services.feed
    if feed is None:
        raise LiveDataOff(
            "live data is off on this server (no feed runs: COINQL_FEED_ENABLED is false or"
            " COINQL_SOURCE is none); query the stored candles instead"
        )
    return frozenset(feed.source.symbols)


def _unpublished(wanted: list[str], published: frozenset[str]) -> str | None:
    missing = [symbol for symbol in wanted if symbol not in published]
    if not missing:
        return None
    return (
        f"{', '.join(missing)}: not on the live feed, which streams {', '.join(sorted(published))}"
    )


async def prices(context: Context, symbols: list[str]) -> AsyncIterator[dict[str, Any]]:
    wanted = sorted({symbol.strip().upper() for symbol in symbols})
    if not 0 < len(wanted) <= MAX_SYMBOLS:
        raise InvalidInput("symbols", f"give 1 to {MAX_SYMBOLS} symbols")
    if (problem := _unpublished(wanted, _published(context))) is not None:
        raise InvalidInput("symbols", problem)
    user = await context.user()
    async with tracked(context, user.id if user else None):
        async for message in stream(context, [channels.prices(s) for s in wanted], conflate=True):
            yield message


async def candles(
    context: Context, symbol: str, interval: Interval
) -> AsyncIterator[dict[str, Any]]:
    wanted = symbol.strip().upper()
    if (problem := _unpublished([wanted], _published(context))) is not None:
        raise InvalidInput("symbol", problem)
    if interval not in LIVE_INTERVALS:
        live = ", ".join(live.value for live in LIVE_INTERVALS)
        raise InvalidInput("interval", f"live candles come in {live}, not {interval.value}")
    user = await context.user()
    async with tracked(context, user.id if user else None):
        channel = channels.candles(wanted, interval.value)
        async for message in stream(context, [channel], conflate=True):
            yield message


@dataclass
class _Book:
    state: ledger.LedgerState
    day_start_prices: dict[str, Decimal]
    loaded_at: float


async def _book(context: Context, portfolio: portfolio_store.Portfolio) -> _Book:
    context.loaders.entries.clear_all()  # a long-lived connection must see new transactions
    state = await ledger_state(context, portfolio)
    today = int(context.services.now().timestamp() * 1000) // DAY_MS * DAY_MS
    starts: dict[str, Decimal] = {}
    async with context.services.reader() as session:
        assets = await market_store.get_assets(session, symbols=list(state.holdings))
        for symbol, asset in assets.items():
            day = await market_store.load_candles(
                session, asset=asset, interval=Interval.D1, start=today - 2 * DAY_MS, end=today - 1
            )
            if len(day):
                starts[symbol] = Decimal(repr(float(day.close[-1])))
    return _Book(state, starts, time.monotonic())


async def portfolio_values(
    context: Context, portfolio_id: uuid.UUID
) -> AsyncIterator[dict[str, Any]]:
    """Value, unrealized PnL and the change since the last daily close, recomputed on ticks of
    the portfolio's coins, at most once per throttle interval."""
    user = await require_user(context)
    portfolio = await get_portfolio(context, portfolio_id=portfolio_id)
    throttle = context.services.settings.portfolio_value_throttle_seconds
    async with tracked(context, user.id):
        book = await _book(context, portfolio)
        latest = await _last_prices(context, book.state.holdings)
        sent = _value_payload(book, latest, timestamp=epoch_ms(context.services.now))
        yield sent
        last_sent = time.monotonic()
        while True:  # one round per set of holdings: a new coin needs its ticks too
            held = set(book.state.holdings)
            names = [channels.ledger(portfolio.id), *map(channels.prices, sorted(held))]
            updates = stream(context, names, conflate=True)
            pending = asyncio.ensure_future(anext(updates))
            try:
                await context.services.hub.listening(names)
                book, reloaded = await _book(context, portfolio), True  # none missed since
                while set(book.state.holdings) == held:
                    if reloaded:  # the book may have moved: say so at once if it did
                        if missing := held - latest.keys():
                            latest |= await _last_prices(context, missing)
                        now_ms = epoch_ms(context.services.now)
                        if _moved(fresh := _value_payload(book, latest, timestamp=now_ms), sent):
                            sent, last_sent = fresh, time.monotonic()
                            yield sent
                        reloaded = False
                    done, _ = await asyncio.wait({pending}, timeout=LEDGER_RECHECK_SECONDS)
                    if not done:  # quiet: the token and the ledger, looked at again
                        await guard_token(context)
                        book, reloaded = await _book(context, portfolio), True
                        continue
                    try:
                        message = pending.result()
                    except StopAsyncIteration:
                        return  # the hub closed: the server is stopping
                    pending = asyncio.ensure_future(anext(updates))
                    if "symbol" not in message:  # the ledger changed
                        book, reloaded = await _book(context, portfolio), True
                        continue
                    latest[message["symbol"]] = Decimal(repr(message["price"]))
                    now = time.monotonic()
                    if now - last_sent < throttle:
                        continue
                    if now - book.loaded_at > LEDGER_RECHECK_SECONDS:
                        book, reloaded = await _book(context, portfolio), True
                        continue
                    sent = _value_payload(book, latest, timestamp=int(message["timestamp"]))
                    last_sent = now
                    yield sent
            finally:
                await _stop(pending)
                await updates.aclose()


async def _stop(pending: asyncio.Future[Any]) -> None:
    """Cancel a pending read and wait for it, without swallowing a cancellation of our own."""
    pending.cancel()
    await asyncio.wait({pending})
    if not pending.cancelled():
        pending.exception()  # retrieved: a read that failed as it was stopped is not news


def _moved(payload: dict[str, Any], sent: dict[str, Any]) -> bool:
    return any(payload[key] != sent[key] for key in ("value", "unrealizedPnl", "dayChange"))


async def _last_prices(context: Context, symbols: Iterable[str]) -> dict[str, Decimal]:
    """The last known price of each of these coins that has one."""
    latest: dict[str, Decimal] = {}
    async with context.services.reader() as session:
        held = await market_store.get_assets(session, symbols=list(symbols))
    for symbol, stored in held.items():
        asset = context.services.prices.apply(stored)  # the price queries read too
        if asset.last_price is not None:
            latest[symbol] = Decimal(repr(asset.last_price))
    return latest


def _value_payload(book: _Book, latest: dict[str, Decimal], *, timestamp: int) -> dict[str, Any]:
    current = valuation.value(book.state, latest)
    day_start = valuation.value(book.state, {**latest, **book.day_start_prices}).value
    return {
        "timestamp": timestamp,
        "value": current.value,
        "unrealizedPnl": current.unrealized_pnl,
        "dayChange": current.value - day_start,
    }


async def job_progress(context: Context, job_id: uuid.UUID) -> AsyncIterator[dict[str, Any]]:
    """The job's state now, then each update, ending after a final status.

    Updates come through the broadcast; when none has come for JOB_RECHECK_SECONDS, the store
    is read instead, so an update lost while Redis was away (the final status included) still
    arrives and the stream still ends."""
    user = await require_user(context)
    async with tracked(context, user.id):
        updates = stream(context, [channels.job(job_id)], conflate=False)
        pending = asyncio.ensure_future(anext(updates))
        try:
            await context.services.hub.listening([channels.job(job_id)])  # before the state
            current = await _job_state(context, job_id, user.id)
            yield current
            while not job_store.JobStatus(current["status"]).final:
                done, _ = await asyncio.wait({pending}, timeout=JOB_RECHECK_SECONDS)
                if done:
                    try:
                        found = pending.result()
                    except StopAsyncIteration:
                        return  # the hub closed: the server is stopping
                    pending = asyncio.ensure_future(anext(updates))
                else:
                    found = await _job_state(context, job_id, user.id)
                    if found == current:
                        continue
                yield found
                current = found
        finally:
            await _stop(pending)  # and let it finish, or the stream cannot be closed
            await updates.aclose()


async def _job_state(context: Context, job_id: uuid.UUID, owner_id: uuid.UUID) -> dict[str, Any]:
    async with context.services.reader() as session:
        job = owned(
            await job_store.get_job(session, job_id=job_id, owner_id=owner_id), f"no job {job_id}"
        )
    return {
        "jobId": str(job.id),
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
    }


async def alerts(context: Context, portfolio_id: uuid.UUID | None) -> AsyncIterator[dict[str, Any]]:
    user = await require_user(context)
    if portfolio_id is not None:
        await get_portfolio(context, portfolio_id=portfolio_id)  # NotFound if not theirs
    async with tracked(context, user.id):
        async for alert in stream(context, [channels.alerts(user.id)], conflate=False):
            if portfolio_id is None or alert["portfolioId"] == str(portfolio_id):
                yield alert


async def set_risk_limits(
    context: Context, *, portfolio_id: uuid.UUID, values: dict[str, float | None]
) -> risk_store.RiskLimits:
    for name, value in values.items():
        if value is not None and not 0 < value <= 1:
            raise InvalidInput(name, f"{name} is a positive fraction up to 1")
    user = await require_user(context)
    await get_portfolio(context, portfolio_id=portfolio_id)
    async with context.services.transaction() as session:
        return await risk_store.set_limits(
            session,
            portfolio_id=portfolio_id,
            owner_id=user.id,
            values=values,
            now=context.services.now(),
        )


async def risk_limits(context: Context, portfolio_id: uuid.UUID) -> risk_store.RiskLimits | None:
    """The caller's portfolio's limits (None when unset); `NotFound` for another's portfolio."""
    user = await require_user(context)
    await get_portfolio(context, portfolio_id=portfolio_id)
    async with context.services.reader() as session:
        return await risk_store.get_limits(session, portfolio_id=portfolio_id, owner_id=user.id)


async def list_alerts(
    context: Context, *, portfolio_id: uuid.UUID | None, first: int
) -> list[risk_store.Alert]:
    if not 0 < first <= 500:
        raise InvalidInput("first", "first must be between 1 and 500")
    user = await require_user(context)
    if portfolio_id is not None:
        await get_portfolio(context, portfolio_id=portfolio_id)
    async with context.services.reader() as session:
        return await risk_store.list_alerts(
            session, owner_id=user.id, portfolio_id=portfolio_id, limit=first
        )


async def bot_events(context: Context, bot_id: uuid.UUID) -> AsyncIterator[dict[str, Any]]:
    """One of the caller's bots' orders, fills, status changes and value, as they happen."""
    user = await require_user(context)
    await get_bot(context, bot_id=bot_id)  # NotFound if not theirs
    async with tracked(context, user.id):
        async for event in stream(context, [channels.bot(bot_id)], conflate=False):
            yield event
