"""Return streams for performance over stored candles, and where domain work runs.

A `ReturnStream` (coinql.domain.tearsheet) is the one input of `performance(...)`, whatever
produced it: an asset's closes, a portfolio's NAV, a backtest's equity.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.tearsheet import ReturnStream
from coinql.domain.typing import FloatArray, IntArray
from coinql.resolvers.context import Context
from coinql.resolvers.market import get_asset, market_series

T = TypeVar("T")
# Work on more numbers than this leaves the event loop (see docs/metrics.md, "Where it runs").
OFFLOAD_ELEMENTS = 50_000


async def offload(size: int, function: Callable[..., T], *args: Any) -> T:
    """Run `function` in a worker thread when the input is large, inline otherwise.

    numpy releases the GIL in its kernels, so a thread keeps the loop responsive without
    copying arrays to another process; for small inputs the hop costs more than the work.
    """
    if size < OFFLOAD_ELEMENTS:
        return function(*args)
    return await asyncio.to_thread(function, *args)


@dataclass(frozen=True, slots=True)
class Benchmark:
    """What to compare a return stream with, exactly one of: an asset's symbol, or one of the
    caller's portfolios or backtest runs."""

    symbol: str | None = None
    portfolio_id: uuid.UUID | None = None
    backtest_run_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        named = [v for v in (self.symbol, self.portfolio_id, self.backtest_run_id) if v]
        if len(named) != 1:
            raise InvalidInput(
                "symbol",
                "name one benchmark: a symbol, or in `of` the id of a portfolio or a backtest"
                " run of yours",
            )


@dataclass(frozen=True)
class KeptStream(ReturnStream):
    """A return stream kept in the series cache with the figures computed of it so far
    (`Performance` fills them: the same field over the same stream is computed once)."""

    figures: dict[Hashable, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, stream: ReturnStream) -> KeptStream:
        return cls(**{f.name: getattr(stream, f.name) for f in fields(ReturnStream)})


# The returns of a benchmark (timestamps, returns) at the stream's interval and window.
BenchmarkLoader = Callable[[Benchmark], Awaitable[tuple[IntArray, FloatArray]]]


def check_conventions(risk_free_rate: float, periods_per_year: float | None) -> None:
    """Refuse a risk-free rate that is not an annual fraction, or a non-positive P."""
    if not -1.0 < risk_free_rate < 10.0:
        raise InvalidInput("riskFreeRate", "riskFreeRate is an annual fraction, e.g. 0.04")
    if periods_per_year is not None and not 0 < periods_per_year <= 525_600:
        raise InvalidInput("periodsPerYear", "periodsPerYear must be positive")


async def asset_stream(
    context: Context,
    *,
    symbol: str,
    interval: Interval,
    start: int | None,
    end: int | None,
    risk_free_rate: float,
    periods_per_year: float | None,
) -> ReturnStream:
    check_conventions(risk_free_rate, periods_per_year)
    asset = await get_asset(context, symbol=symbol)
    if asset is None:
        raise NotFound(f"no asset {symbol.upper()!r}")
    found = await market_series(context, asset=asset, interval=interval, start=start, end=end)
    # Over an unchanged series, the same arguments give the same stream: it is kept beside
    # the cached series (with the figures computed of it, see `StreamFigures`).
    arguments = ("stream", asset.symbol, start, end, risk_free_rate, periods_per_year)
    series = context.services.series
    if found.market_id is not None and found.version is not None:
        kept = series.recall(found.market_id, interval, found.version, arguments)
        if isinstance(kept, KeptStream):
            return kept
    stream = ReturnStream.of_candles(
        asset.symbol,
        found.candles,
        interval,
        risk_free_rate=risk_free_rate,
        periods_per_year=periods_per_year,
    )
    if found.market_id is None or found.version is None:
        return stream
    kept = KeptStream.of(stream)
    series.remember(
        found.market_id,
        interval,
        found.version,
        arguments,
        kept,
        nbytes=stream.timestamps.nbytes + stream.returns.nbytes,
    )
    return kept
