"""How far a bot drifts from its own backtest, trade by trade.

`divergence` backtests the bot's strategy over exactly the candles the bot saw (signals before
its first live bar, and before it had seen its warm-up, masked; fills at the close, the bot's
fees and slippage) and compares that backtest's trades with the bot's round trips one by one:
the return of each, and for each that differs, why (fill price, fee, timing, a missed or an
extra trade).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import numpy as np

from coinql.domain.backtest import simulate
from coinql.domain.backtest_config import BacktestConfig
from coinql.domain.bots import BotSide
from coinql.domain.candles import Candles
from coinql.domain.signals import signals
from coinql.domain.strategies import StrategySpec

PRICE_TOLERANCE = 1e-9  # relative: prices that differ by less are the same price


@dataclass(frozen=True, slots=True)
class BotFill:
    """One fill of the bot's, as the divergence reads it."""

    side: BotSide
    price: Decimal
    quantity: Decimal
    fee: Decimal
    time: datetime


class DifferenceKind(StrEnum):
    """Why one of the bot's round trips differs from the backtest's."""

    FILL_PRICE = "FILL_PRICE"
    FEE = "FEE"
    MISSED_SIGNAL = "MISSED_SIGNAL"  # the backtest traded where the bot did not
    EXTRA_TRADE = "EXTRA_TRADE"  # the bot traded where the backtest did not
    TIMING = "TIMING"  # both traded, on different bars


@dataclass(frozen=True, slots=True)
class TradeDifference:
    """One reason one round trip differs (`index`: its position, 0 first)."""

    index: int
    kind: DifferenceKind
    detail: str


@dataclass(frozen=True, slots=True)
class Divergence:
    """The bot against its backtest over the candles it saw.

    `backtest_return` and `bot_return` are over the bot's live bars (None before the first);
    `trades_compared` counts round trips on either side; `differences` lists why the trades
    that differ do (one entry per reason).
    """

    backtest_return: float | None
    bot_return: float | None
    trades_compared: int
    differing_trades: int
    differences: list[TradeDifference]


@dataclass(frozen=True, slots=True)
class _RoundTrip:
    entry_time: int
    exit_time: int | None
    entry_price: float
    exit_price: float | None
    fees: float


def _bot_round_trips(fills: Sequence[BotFill], quantum_ms: int) -> list[_RoundTrip]:
    """Return the bot's fills as round trips: a BUY opens one, the SELL after it closes it."""
    trips: list[_RoundTrip] = []
    open_trip: tuple[int, float, float] | None = None
    for fill in sorted(fills, key=lambda f: f.time):
        moment = int(fill.time.timestamp() * 1000) // quantum_ms * quantum_ms
        if fill.side is BotSide.BUY and open_trip is None:
            open_trip = (moment, float(fill.price), float(fill.fee))
        elif fill.side is BotSide.SELL and open_trip is not None:
            entry_time, entry_price, entry_fee = open_trip
            trips.append(
                _RoundTrip(
                    entry_time, moment, entry_price, float(fill.price), entry_fee + float(fill.fee)
                )
            )
            open_trip = None
    if open_trip is not None:
        trips.append(_RoundTrip(open_trip[0], None, open_trip[1], None, open_trip[2]))
    return trips


def divergence(
    spec: StrategySpec,
    candles: Candles,
    config: BacktestConfig,
    *,
    first_live: int,
    fills: Sequence[BotFill],
    bot_return: float | None,
    warmup: int = 0,
    step_ms: int | None = None,
) -> Divergence:
    """Compare the bot's round trips with its backtest's, trade by trade.

    Parameters
    ----------
    spec : StrategySpec
    candles : Candles
        Every candle the bot saw, warm-up included, oldest first.
    config : BacktestConfig
        The bot's (`bot_config`).
    first_live : int
        The index of the first candle the bot traded on; the backtest's signals before it
        are masked, so both start flat there.
    fills : sequence of BotFill
        The bot's fills, each stamped at the close of its signal candle or later.
    bot_return : float, optional
        The bot's return since it started.
    warmup : int, default 0
        How many candles the bot decides on at least (`coinql.domain.bots.warmup_bars`): a bot
        started with less history acts on candles before it has that many, deciding nothing,
        so the backtest's signals there are masked too.
    step_ms : int, optional
        The candles' interval in ms; by default the median gap between them (a feed that
        skipped minutes leaves gaps, so a bot's caller passes its interval).

    Returns
    -------
    Divergence
    """
    n = len(candles)
    if n == 0 or first_live >= n:
        return Divergence(None, bot_return, 0, 0, [])
    enter, leave = signals(spec, candles)
    silent = max(first_live, warmup - 1)
    enter[:silent] = False
    leave[:silent] = False
    result = simulate(candles, enter, leave, config)
    start_equity = (
        float(result.equity[first_live - 1]) if first_live > 0 else config.initial_capital
    )
    backtest_return = float(result.equity[-1]) / start_equity - 1 if start_equity else None
    step = step_ms or (int(np.median(np.diff(candles.timestamps))) if n > 1 else 60_000)
    # A fill belongs to the candle whose close it follows: stamped at open time + one step.
    closes = candles.timestamps + step
    expected = [
        _RoundTrip(
            int(closes[trade.entry_bar]),
            None if trade.exit_reason.value == "END" else int(closes[trade.exit_bar]),
            trade.entry_price,
            None if trade.exit_reason.value == "END" else trade.exit_price,
            trade.fees,
        )
        for trade in result.trades
    ]
    actual = _bot_round_trips(fills, step)
    differences: list[TradeDifference] = []
    differing = set()
    for index in range(max(len(expected), len(actual))):
        if index >= len(actual):
            differences.append(
                TradeDifference(index, DifferenceKind.MISSED_SIGNAL, "the bot made no such trade")
            )
            differing.add(index)
            continue
        if index >= len(expected):
            differences.append(
                TradeDifference(
                    index, DifferenceKind.EXTRA_TRADE, "the backtest made no such trade"
                )
            )
            differing.add(index)
            continue
        for kind, detail in _compare(expected[index], actual[index]):
            differences.append(TradeDifference(index, kind, detail))
            differing.add(index)
    return Divergence(
        backtest_return,
        bot_return,
        max(len(expected), len(actual)),
        len(differing),
        differences,
    )


def _compare(expected: _RoundTrip, actual: _RoundTrip) -> list[tuple[DifferenceKind, str]]:
    found: list[tuple[DifferenceKind, str]] = []
    if (expected.entry_time, expected.exit_time) != (actual.entry_time, actual.exit_time):
        found.append((DifferenceKind.TIMING, "entered or exited on another candle"))
    if not _same(expected.entry_price, actual.entry_price) or not _same(
        expected.exit_price, actual.exit_price
    ):
        found.append(
            (
                DifferenceKind.FILL_PRICE,
                f"filled at {actual.entry_price:g} / {actual.exit_price}, the backtest at"
                f" {expected.entry_price:g} / {expected.exit_price}",
            )
        )
    if expected.exit_time is not None and not _same(expected.fees, actual.fees, tolerance=1e-6):
        found.append(
            (DifferenceKind.FEE, f"paid {actual.fees:g} in fees, the backtest {expected.fees:g}")
        )
    return found


def _same(a: float | None, b: float | None, *, tolerance: float = PRICE_TOLERANCE) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance * max(abs(a), abs(b), 1.0)
