"""The candles a bot trades on and has seen: its symbol's closed candles (settled, so a late
tick is not missed), the window its decisions read, and its divergence from its backtest over
them."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.bots import BotSettings, BotSide, warmup_bars
from coinql.domain.candles import Interval
from coinql.domain.divergence import BotFill as DivergenceFill
from coinql.domain.divergence import Divergence, divergence
from coinql.domain.errors import NotFound
from coinql.realtime.orders import BotEngine
from coinql.store import market as market_store
from coinql.store.bots import Bot, BotFillRow

# A closed candle the feed has not moved on from is traded once this much (market) time has
# passed since its close (closed_candles).
SETTLE = timedelta(seconds=5)


async def newest_closed_candle(
    session: AsyncSession, *, symbol: str, interval: Interval, now: datetime
) -> int | None:
    """The open time of the symbol's newest candle of `interval` closed by `now`."""
    candles = await closed_candles(session, symbol=symbol, interval=interval, now=now)
    return int(candles.timestamps[-1]) if len(candles) else None


async def closed_candles(
    session: AsyncSession,
    *,
    symbol: str,
    interval: Interval,
    now: datetime,
    start: int | None = None,
    settle: timedelta | None = None,
) -> Any:
    """The symbol's stored candles of `interval` from `start` that have closed by `now`.

    With `settle`, the newest of them counts only once the feed has moved on (a later candle
    is stored, so its last tick was written before) or `settle` has passed since it closed:
    a tick stamped just before the close may still be on its way to the store."""
    asset = await market_store.get_asset(session, symbol=symbol)
    if asset is None:
        raise NotFound(f"no asset {symbol}")
    candles = await market_store.load_candles(
        session, asset=asset, interval=interval, start=start, end=None
    )
    now_ms = int(now.timestamp() * 1000)
    closes = candles.timestamps + interval.milliseconds
    closed = closes <= now_ms
    if settle is not None and closed.any() and closed[-1]:  # no later candle is stored
        closed[-1] = closes[-1] <= now_ms - settle.total_seconds() * 1000
    return candles.select(closed)


def seen_window(timestamps: Any, bot: Bot, warmup: int) -> int:
    """The index of the first candle the bot's decisions read: its warm-up before the first
    candle it traded on (or, before that, before the first it will trade on)."""
    first = bot.first_live_ms if bot.first_live_ms is not None else (bot.last_bar_ms or -1) + 1
    first_index = int(np.searchsorted(timestamps, first))
    return max(0, first_index - (warmup - 1))


def seen_candles(
    candles: Any, bot: Bot, warmup: int, *, newest_fill: datetime | None = None
) -> tuple[Any, int]:
    """The candles a bot has seen (its warm-up, then each it acted on, to the last), and the
    index among them of the first it traded on; for a bot that has acted on a candle.

    The last it acted on is the later of the last it marked and the candle its newest fill
    (`newest_fill`) follows the close of: a signal's order fills before the runner marks its
    candle done, and a reader in between sees the fill."""
    assert bot.first_live_ms is not None and bot.last_bar_ms is not None
    window = seen_window(candles.timestamps, bot, warmup)
    first = int(np.searchsorted(candles.timestamps, bot.first_live_ms))
    last = int(np.searchsorted(candles.timestamps, bot.last_bar_ms))
    if newest_fill is not None:
        closed_by = int(newest_fill.timestamp() * 1000) - Interval(bot.interval).milliseconds
        last = max(last, int(np.searchsorted(candles.timestamps, closed_by, side="right")) - 1)
    return candles.select(np.arange(window, min(last + 1, len(candles)))), first - window


async def bot_divergence(
    engine: BotEngine, bot: Bot, *, candles: Any, fills: list[BotFillRow]
) -> Divergence | None:
    """The bot against its strategy backtested over the candles it saw (`candles`: its
    symbol's closed ones of its interval; `fills`: all of its fills); None before it has
    acted on a candle."""
    if bot.first_live_ms is None or bot.last_bar_ms is None:
        return None
    settings = BotSettings.from_json(bot.config)
    warmup = warmup_bars(settings.spec, settings.config)
    newest_fill = max((fill.time for fill in fills), default=None)
    seen, first_live = seen_candles(candles, bot, warmup, newest_fill=newest_fill)
    account = await engine.account(bot)
    close = Decimal(repr(float(seen.close[-1]))) if len(seen) else Decimal(0)
    return divergence(
        settings.spec,
        seen,
        settings.config,
        first_live=first_live,
        warmup=warmup,
        fills=[
            DivergenceFill(BotSide(fill.side), fill.price, fill.quantity, fill.fee, fill.time)
            for fill in fills
        ],
        bot_return=float(account.value(close)) / settings.config.initial_capital - 1,
        step_ms=Interval(bot.interval).milliseconds,
    )
