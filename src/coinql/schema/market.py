"""The universe, assets and their candles, performance and indicators, and returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry import relay
from strawberry.types import Info

from coinql.domain.candles import Candles
from coinql.resolvers import derivatives as derivatives_resolvers
from coinql.resolvers import market as market_resolvers
from coinql.resolvers import performance as performance_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.schema.bounds import (
    PAGE_SIZE,
    PageSizeArgument,
    PeriodsPerYearArgument,
    RiskFreeRateArgument,
    bounded_argument,
)
from coinql.schema.derivatives import FundingSeries, series
from coinql.schema.enums import AssetOrder, Interval, ReturnKind
from coinql.schema.indicators import IndicatorSet, IndicatorSpec, indicator_set
from coinql.schema.nodes import Connection, offset_after
from coinql.schema.performance import Performance, Series
from coinql.schema.scalars import (
    FloatArray,
    TimestampArray,
    finite,
    from_millis,
    to_millis,
)
from coinql.store import market as market_store


@strawberry.type(description="Packed candles: parallel arrays, one entry per candle.")
class CandleSeries:
    interval: Interval
    count: int
    timestamps: TimestampArray = strawberry.field(description="Open times, epoch ms (UTC).")
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray = strawberry.field(
        description="Base-asset volume (coins); null where the source gives only quote volume."
    )
    quote_volume: FloatArray = strawberry.field(
        description="Quote-currency volume (USD/USDT); null where the source has none."
    )

    @classmethod
    def from_model(cls, candles: Candles, interval: Interval) -> Self:
        return cls(
            interval=interval,
            count=len(candles),
            timestamps=candles.timestamps,
            open=candles.open,
            high=candles.high,
            low=candles.low,
            close=candles.close,
            volume=candles.volume,
            quote_volume=candles.quote_volume,
        )


@strawberry.type(description='A coin of the universe. Demo assets have dataSource "demo".')
class Asset(relay.Node):
    symbol: str
    name: str
    stablecoin: bool
    data_source: str = strawberry.field(
        description='"demo" (synthetic, not market prices), "import", or an exchange id.'
    )
    market_cap: float | None = strawberry.field(description="In USD.")
    circulating_supply: float | None
    last_price: float | None
    last_price_at: datetime | None = strawberry.field(
        description="Open time of the candle whose close is lastPrice."
    )
    change_24h: float | None = strawberry.field(
        name="change24h", description="Fractional change of lastPrice over 24 hours."
    )
    volume_24h: float | None = strawberry.field(
        name="volume24h", description="Quote volume over the last 24 hours, in USD."
    )
    model: strawberry.Private[market_store.Asset]

    @classmethod
    def from_model(cls, asset: market_store.Asset) -> Self:
        return cls(
            symbol=asset.symbol,
            name=asset.name,
            stablecoin=asset.stablecoin,
            data_source=asset.data_source,
            market_cap=finite(asset.market_cap),
            circulating_supply=finite(asset.circulating_supply),
            last_price=finite(asset.last_price),
            last_price_at=from_millis(asset.last_price_at),
            change_24h=finite(asset.change_24h),
            volume_24h=finite(asset.quote_volume_24h),
            model=asset,
        )

    @strawberry.field(description="Rank by market cap, 1 = largest.")
    async def rank(self, info: Info[Context, None]) -> int | None:
        return await market_resolvers.rank(info.context, self.model)

    @strawberry.field(description="Candles with open time in [start, end].")
    async def candles(
        self,
        info: Info[Context, None],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> CandleSeries | None:
        series = await market_resolvers.candles_for(
            info.context,
            asset=self.model,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        return CandleSeries.from_model(series, interval)

    @strawberry.field(description="Tear sheet of the asset's returns over [start, end].")
    async def performance(
        self,
        info: Info[Context, None],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        risk_free_rate: RiskFreeRateArgument = 0.0,
        periods_per_year: PeriodsPerYearArgument = None,
    ) -> Performance | None:
        stream = await performance_resolvers.asset_stream(
            info.context,
            symbol=self.symbol,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
            risk_free_rate=risk_free_rate,
            periods_per_year=periods_per_year,
        )
        benchmarks = benchmark_loader(
            info.context, interval=interval, start=to_millis(start), end=to_millis(end)
        )
        return Performance.from_model(stream, benchmarks)

    @strawberry.field(description="Indicators aligned on the candles, e.g. [{ema: {window: 20}}].")
    async def indicators(
        self,
        info: Info[Context, None],
        specs: list[IndicatorSpec],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> IndicatorSet | None:
        candles = await market_resolvers.candles_for(
            info.context,
            asset=self.model,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        return indicator_set(specs, candles, interval.periods_per_year)

    @strawberry.field(
        description="Fundings of the asset's perpetual paid in [start, end]; null when it has"
        " none. Rates are per funding period (0.0001 = 0.01 %), positive when longs pay shorts."
    )
    async def funding(
        self, info: Info[Context, None], start: datetime | None = None, end: datetime | None = None
    ) -> FundingSeries | None:
        found = await derivatives_resolvers.funding(
            info.context, asset=self.model, start=to_millis(start), end=to_millis(end)
        )
        return FundingSeries.from_model(found) if found is not None else None

    @strawberry.field(
        description="Open interest of the asset's perpetual in USD at the close of each bar"
        " opening in [start, end]; null when it has none. At an interval coarser than the one"
        " stored, each bar's value is that of the stored bar closing it."
    )
    async def open_interest(
        self,
        info: Info[Context, None],
        interval: Interval = Interval.H1,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Series | None:
        return await self._perpetual(
            info, derivatives_resolvers.open_interest, interval, start, end
        )

    @strawberry.field(
        description="Basis of the asset's perpetual, (mark - spot) / spot, at the close of"
        " each bar opening in [start, end]; null when it has none. Computed from the mark and"
        " the spot index price stored for the same bar (the exchange's index; the demo's is"
        " its spot close), not stored itself. Coarser intervals as for openInterest."
    )
    async def basis(
        self,
        info: Info[Context, None],
        interval: Interval = Interval.H1,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Series | None:
        return await self._perpetual(info, derivatives_resolvers.basis, interval, start, end)

    async def _perpetual(
        self,
        info: Info[Context, None],
        read: Callable[..., Awaitable[derivatives_resolvers.PerpetualSeries | None]],
        interval: Interval,
        start: datetime | None,
        end: datetime | None,
    ) -> Series | None:
        """A series of the asset's perpetual (`coinql.resolvers.derivatives`), or null."""
        found = await read(
            info.context,
            asset=self.model,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
        )
        return series(found) if found is not None else None

    @classmethod
    def resolve_id(cls, root: Self, *, info: Info[Context, None]) -> str:
        return root.symbol

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info[Context, None], node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        found = []
        for symbol in node_ids:
            asset = await market_resolvers.get_asset(info.context, symbol=symbol)
            found.append(cls.from_model(asset) if asset else None)
        return found


@strawberry.type
class AssetConnection(Connection[Asset]):
    where: strawberry.Private[market_store.AssetFilter]

    @strawberry.field
    async def total_count(self, info: Info[Context, None]) -> int:
        return await market_resolvers.count_assets(info.context, where=self.where)

    @classmethod
    def from_model(cls, page: market_resolvers.AssetPage) -> Self:
        return cls.page(
            [Asset.from_model(asset) for asset in page.assets],
            offset=page.offset,
            has_next_page=page.has_next_page,
            where=page.where,
        )


@strawberry.input
class AssetFilter:
    symbols: list[str] | None = None
    stablecoin: bool | None = None
    search: str | None = strawberry.field(default=None, description="In symbol or name.")
    data_source: str | None = None

    def to_model(self) -> market_store.AssetFilter:
        return market_store.AssetFilter(
            symbols=self.symbols,
            stablecoin=self.stablecoin,
            search=self.search,
            data_source=self.data_source,
        )


@strawberry.type(description="Returns on the timestamps all symbols share (an inner join).")
class ReturnsMatrix:
    symbols: list[str]
    timestamps: TimestampArray = strawberry.field(
        description="The later open time of each pair of closes."
    )
    values: list[FloatArray] = strawberry.field(description="One series per symbol, in order.")


@strawberry.type
class MarketQuery:
    @strawberry.field(description="The universe as a connection.")
    async def assets(
        self,
        info: Info[Context, None],
        first: PageSizeArgument = 50,
        after: str | None = None,
        order_by: AssetOrder = AssetOrder.MARKET_CAP_DESC,
        filter: AssetFilter | None = None,
    ) -> AssetConnection | None:
        page = await market_resolvers.list_assets(
            info.context,
            first=first,
            offset=offset_after(after),
            order=order_by,
            where=filter.to_model() if filter else market_store.AssetFilter(),
        )
        return AssetConnection.from_model(page)

    @strawberry.field(description="One asset by symbol; null when unknown.")
    async def asset(self, info: Info[Context, None], symbol: str) -> Asset | None:
        found = await market_resolvers.get_asset(info.context, symbol=symbol)
        return Asset.from_model(found) if found else None

    @strawberry.field(description="A universe rule: the top N by market cap or volume.")
    async def universe(
        self,
        info: Info[Context, None],
        top: Annotated[int, bounded_argument(PAGE_SIZE)] = 10,
        by: AssetOrder = AssetOrder.MARKET_CAP_DESC,
        exclude_stablecoins: bool = True,
    ) -> list[Asset] | None:
        assets = await market_resolvers.universe(
            info.context, top=top, by=by, exclude_stablecoins=exclude_stablecoins
        )
        return [Asset.from_model(asset) for asset in assets]

    @strawberry.field(description="Aligned returns of several symbols: the input of risk.")
    async def returns_matrix(
        self,
        info: Info[Context, None],
        symbols: list[str],
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: ReturnKind = ReturnKind.SIMPLE,
    ) -> ReturnsMatrix | None:
        matrix = await market_resolvers.returns_matrix(
            info.context,
            symbols=symbols,
            interval=interval,
            start=to_millis(start),
            end=to_millis(end),
            kind=kind,
        )
        return ReturnsMatrix(
            symbols=matrix.symbols,
            timestamps=matrix.timestamps,
            values=[matrix.values[:, column] for column in range(len(matrix.symbols))],
        )
