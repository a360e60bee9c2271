"""An asset's perpetual: its funding rates, open interest and basis, through the loaders."""

from __future__ import annotations

from dataclasses import dataclass

from coinql.domain import derivatives as derivatives_domain
from coinql.domain.candles import Interval
from coinql.domain.derivatives import FundingRates
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import FloatArray, IntArray
from coinql.resolvers.context import Context
from coinql.resolvers.loaders import BarsKey, FundingKey, MarketKey
from coinql.store.derivatives import Perpetual
from coinql.store.market import Asset


@dataclass(frozen=True, slots=True)
class Funding:
    """The fundings of an asset's perpetual, and where they come from."""

    rates: FundingRates
    data_source: str


@dataclass(frozen=True, slots=True)
class PerpetualSeries:
    """One value per bar: open times and the values at the bars' closes."""

    timestamps: IntArray
    values: FloatArray


async def funding(
    context: Context, *, asset: Asset, start: int | None, end: int | None
) -> Funding | None:
    """The fundings paid in [start, end]; None when the asset has no perpetual."""
    _check_window(start, end)
    perpetual = await _perpetual(context, asset)
    if perpetual is None or perpetual.id is None:
        return None
    rates = await context.loaders.funding.load(FundingKey(perpetual.id, start, end))
    _check_size(context, asset, len(rates), "fundings")
    return Funding(rates, perpetual.data_source)


async def open_interest(
    context: Context, *, asset: Asset, interval: Interval, start: int | None, end: int | None
) -> PerpetualSeries | None:
    """Open interest (USD) at the close of each bar; None when the asset has no perpetual."""
    bars = await _bars(context, asset=asset, interval=interval, start=start, end=end)
    return None if bars is None else PerpetualSeries(bars.timestamps, bars.open_interest)


async def basis(
    context: Context, *, asset: Asset, interval: Interval, start: int | None, end: int | None
) -> PerpetualSeries | None:
    """(mark - index) / index at the close of each bar, from the mark and index prices
    stored for the bar; None when the asset has no perpetual."""
    bars = await _bars(context, asset=asset, interval=interval, start=start, end=end)
    if bars is None:
        return None
    return PerpetualSeries(bars.timestamps, derivatives_domain.basis(bars))


async def _bars(
    context: Context, *, asset: Asset, interval: Interval, start: int | None, end: int | None
) -> derivatives_domain.PerpetualBars | None:
    _check_window(start, end)
    perpetual = await _perpetual(context, asset)
    if perpetual is None or perpetual.id is None:
        return None
    bars = await context.loaders.perpetual_bars.load(BarsKey(perpetual.id, interval, start, end))
    _check_size(context, asset, len(bars), f"{interval.value} bars")
    return bars


async def _perpetual(context: Context, asset: Asset) -> Perpetual | None:
    assert asset.id is not None
    return await context.loaders.perpetuals.load(MarketKey(asset.id, asset.data_source))


def _check_window(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end < start:
        raise InvalidInput("end", "end must not be before start")


def _check_size(context: Context, asset: Asset, count: int, what: str) -> None:
    """At most COINQL_MAX_SERIES_POINTS values per series, as for candles."""
    limit = context.services.settings.max_series_points
    if count > limit:
        raise InvalidInput(
            "start",
            f"{asset.symbol} has {count:,} {what} between start and end; a request reads at"
            f" most {limit:,} (COINQL_MAX_SERIES_POINTS): narrow start and end, or use a"
            " larger interval",
        )
