"""Candle data coming in: file imports, data gaps, backfill and ingestion status."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from coinql.domain.candles import Gap
from coinql.resolvers import market as market_resolvers
from coinql.resolvers.context import Context
from coinql.schema.enums import Interval
from coinql.schema.errors import (
    Forbidden,
    ImportRejected,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    naming,
)
from coinql.schema.permissions import IsAdmin
from coinql.schema.scalars import from_millis, moment, read_upload, to_millis
from coinql.store import ingestion as ingestion_store


@strawberry.type
class ImportReport:
    symbol: str
    interval: Interval
    format: str
    rows_read: int
    candles_written: int = strawberry.field(description="New candles; existing ones are kept.")
    first: datetime | None
    last: datetime | None

    @classmethod
    def from_model(cls, report: market_resolvers.ImportReport) -> Self:
        return cls(
            symbol=report.symbol,
            interval=report.interval,
            format=report.format,
            rows_read=report.rows_read,
            candles_written=report.candles_written,
            first=from_millis(report.first),
            last=from_millis(report.last),
        )


@strawberry.type
class DataGap:
    start: datetime = strawberry.field(description="Open time of the first missing candle.")
    end: datetime = strawberry.field(description="Open time of the last missing candle.")
    missing_candles: int

    @classmethod
    def from_model(cls, gap: Gap) -> Self:
        return cls(start=moment(gap.start), end=moment(gap.end), missing_candles=gap.missing)


@strawberry.type
class BackfillReport:
    symbol: str
    interval: Interval
    gaps_found: int
    gaps_fixed: int
    candles_added: int

    @classmethod
    def from_model(
        cls, symbol: str, interval: Interval, report: market_resolvers.BackfillReport
    ) -> Self:
        return cls(
            symbol=symbol.upper(),
            interval=interval,
            gaps_found=report.gaps_found,
            gaps_fixed=report.gaps_fixed,
            candles_added=report.candles_added,
        )


@strawberry.type(description="How one ingestion job (exchange, symbol, interval) is doing.")
class IngestionStatus:
    exchange: str
    symbol: str
    interval: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    stalled_by_seconds: int = strawberry.field(
        description="0 while healthy; else seconds since the last success (or first failure)."
        " Unhealthy: failing, or no success for 3 polls (COINQL_INGEST_POLL_SECONDS)."
    )
    candles_added: int

    @classmethod
    def from_model(cls, state: ingestion_store.IngestionState, stalled: int) -> Self:
        return cls(
            exchange=state.exchange,
            symbol=state.symbol,
            interval=state.interval,
            last_attempt_at=state.last_attempt_at,
            last_success_at=state.last_success_at,
            last_error=state.last_error,
            consecutive_failures=state.consecutive_failures,
            stalled_by_seconds=stalled,
            candles_added=state.candles_added,
        )


ImportCandlesResult = Annotated[
    ImportReport | ImportRejected | InvalidInput | NotAuthenticated | Forbidden,
    strawberry.union("ImportCandlesResult"),
]
BackfillResult = Annotated[
    BackfillReport | InvalidInput | NotAuthenticated | Forbidden | NotFound,
    strawberry.union("BackfillResult"),
]


@strawberry.type
class IngestionQuery:
    @strawberry.field(description="Runs of missing candles of an asset.")
    async def data_gaps(
        self,
        info: Info[Context, None],
        symbol: str,
        interval: Interval = Interval.D1,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[DataGap] | None:
        with naming("symbol"):
            gaps = await market_resolvers.data_gaps(
                info.context,
                symbol=symbol,
                interval=interval,
                start=to_millis(start),
                end=to_millis(end),
            )
        return [DataGap.from_model(gap) for gap in gaps]

    @strawberry.field(description="Every ingestion job's state.")
    async def ingestion_status(self, info: Info[Context, None]) -> list[IngestionStatus]:
        found = await market_resolvers.ingestion_status(info.context)
        return [IngestionStatus.from_model(state, stalled) for state, stalled in found]


@strawberry.type
class IngestionMutation:
    @strawberry.mutation(
        description="Import candles from a CSV file (admins). All or nothing.",
        permission_classes=[IsAdmin],
    )
    async def import_candles(
        self,
        info: Info[Context, None],
        file: Upload,
        symbol: str | None = None,
        interval: Interval | None = None,
    ) -> ImportCandlesResult | None:
        limit = info.context.services.settings.import_max_bytes
        data = await read_upload(file, limit)
        report = await market_resolvers.import_file(
            info.context, data=data, symbol=symbol, interval=interval
        )
        return ImportReport.from_model(report)

    @strawberry.mutation(
        description="Fetch missing candles from the exchange (admins).",
        permission_classes=[IsAdmin],
    )
    async def backfill(
        self,
        info: Info[Context, None],
        symbol: str,
        start: datetime,
        end: datetime,
        interval: Interval = Interval.D1,
    ) -> BackfillResult | None:
        report = await market_resolvers.backfill(
            info.context,
            symbol=symbol,
            interval=interval,
            start=int(start.timestamp() * 1000),
            end=int(end.timestamp() * 1000),
        )
        return BackfillReport.from_model(symbol, interval, report)
