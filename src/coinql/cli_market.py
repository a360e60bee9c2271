"""The `coinql` commands over market data: `import` (candle files into the store) and
`backfill` (an exchange's candles over a range, gaps only), each saying its progress on stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from coinql.settings import Settings


def import_files(settings: Settings, args: argparse.Namespace) -> int:
    """Import each file in its own transaction; exit 1 if any was rejected."""
    return asyncio.run(_import_files(settings, args))


async def _import_files(settings: Settings, args: argparse.Namespace) -> int:
    from coinql.domain.candles import Interval
    from coinql.domain.csv_lines import ImportRejected
    from coinql.domain.errors import UserError
    from coinql.migrations import ensure_current
    from coinql.realtime.clock import utc_now
    from coinql.resolvers.market import import_bytes
    from coinql.store.db import create_engine, create_session_factory

    interval = Interval(args.interval) if args.interval else None
    engine = create_engine(settings.database_url)
    failed = 0
    try:
        await ensure_current(engine)
        sessions = create_session_factory(engine)
        for path in args.files:
            try:
                report = await import_bytes(
                    sessions,
                    data=Path(path).read_bytes(),
                    symbol=args.symbol,
                    interval=interval,
                    max_bytes=settings.import_max_bytes,
                    now=utc_now(),
                    progress=Progress(path).stage,
                )
            except ImportRejected as rejected:
                failed += 1
                print(f"{path}: {rejected.message}", file=sys.stderr)
                for problem in rejected.problems:
                    print(f"  line {problem.line}: {problem.message}", file=sys.stderr)
                continue
            except (UserError, OSError) as error:
                failed += 1
                print(f"{path}: {getattr(error, 'message', error)}", file=sys.stderr)
                continue
            print(
                f"{path}: {report.symbol} {report.interval.value} ({report.format}):"
                f" {report.rows_read} rows read, {report.candles_written} candles written"
            )
    finally:
        await engine.dispose()
    return 1 if failed else 0


def backfill_range(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_backfill_range(settings, args))


async def _backfill_range(settings: Settings, args: argparse.Namespace) -> int:
    from coinql.domain.candles import Interval
    from coinql.exchanges.ccxt import ExchangeAdapter, create_exchange
    from coinql.migrations import ensure_current
    from coinql.realtime.ingestion import backfill
    from coinql.store.db import create_engine, create_session_factory

    exchange_id = args.exchange or settings.exchange_id
    if exchange_id is None:
        print("coinql: give --exchange or set COINQL_SOURCE to an exchange id", file=sys.stderr)
        return 2
    engine = create_engine(settings.database_url)
    client = create_exchange(exchange_id)
    try:
        await ensure_current(engine)
        report = await backfill(
            create_session_factory(engine),
            ExchangeAdapter(client, quote=settings.exchange_quote),
            symbol=args.symbol.upper(),
            interval=Interval(args.interval),
            start=_millis(args.start),
            end=_millis(args.end),
            progress=Progress(f"{args.symbol.upper()} {args.interval}").gaps,
        )
    finally:
        await client.close()
        await engine.dispose()
    print(
        f"{args.symbol.upper()} {args.interval}: {report.gaps_found} gaps found,"
        f" {report.gaps_fixed} fixed, {report.candles_added} candles added"
    )
    return 0


class Progress:
    """Long CLI work said as it goes, on stderr (stdout keeps the results): one line per stage,
    with the seconds since the start."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.started = time.monotonic()

    def stage(self, what: str) -> None:
        print(f"{self.subject}: {what} ({time.monotonic() - self.started:.1f} s)", file=sys.stderr)

    def gaps(self, done: int, found: int, added: int) -> None:
        if found:
            self.stage(f"gap {done} of {found}, {added:,} candles added")
        else:
            self.stage("no gaps")


def _millis(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
