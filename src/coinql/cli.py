"""The `coinql` command: serve, migrate, export-schema, create-user, rotate-encryption-key,
emergency-stop, worker; import and backfill are in `coinql.cli_market`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coinql import cli_market
from coinql.settings import Settings

if TYPE_CHECKING:
    from starlette.applications import Starlette

DEFAULT_SCHEMA_PATH = Path("schema.graphql")


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import structlog
    import uvicorn

    from coinql.observability import configure_logging
    from coinql.realtime.backends import Backends

    if args.workers > 1 and Backends.from_settings(settings).kind != "redis":
        print(
            f"coinql: --workers {args.workers} needs COINQL_REDIS_URL: without Redis each"
            " process keeps its own broadcast, job queue and throttles, so a subscriber would"
            " hear only the feed of the process it reached (run one worker, or set"
            " COINQL_REDIS_URL=redis://...)",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings)
    if args.workers > 1:
        problem = asyncio.run(_prepare_once(settings))
        if problem is not None:
            print(f"coinql: {problem}", file=sys.stderr)
            return 1
    base = f"http://{args.host}:{args.port}"
    structlog.get_logger("coinql.cli").info(
        "serving",
        api=f"{base}/graphql",
        graphiql=f"{base}/graphql" if settings.graphiql_enabled else "off",
        websocket=f"ws://{args.host}:{args.port}/graphql",
        workers=args.workers,
    )
    uvicorn.run(
        # Workers are spawned processes: each builds its app from the environment, as this one
        # read its settings.
        _app(settings) if args.workers == 1 else "coinql.cli:app_from_environment",
        factory=args.workers > 1,
        workers=args.workers,
        host=args.host,
        port=args.port,
        log_config=None,
        proxy_headers=True,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        # Subscription messages are a few hundred bytes: compressing each one per connection
        # cost a third of the server's time fanning ticks out to 1,000 clients, for little.
        ws_per_message_deflate=settings.ws_compression,
        # A larger message closes the socket (1009) before it is read whole; payloads within it
        # are held to the document limit too (coinql.transport).
        ws_max_size=settings.max_ws_message_bytes,
    )
    return 0


def _app(settings: Settings) -> Starlette:
    from coinql.app import create_app

    return create_app(settings)


def app_from_environment() -> Starlette:
    """The app of one `coinql serve --workers N` process, from the environment's settings."""
    return _app(Settings())


async def _prepare_once(settings: Settings) -> str | None:
    """What the workers would otherwise race to do, done once before they start: check the
    schema is current (one clear message, not N failing workers), write the development
    signing key (two workers generating it at once would each sign with their own), and load
    the demo market into an empty store (two would both load it). None, or what is wrong."""
    from coinql.migrations import DatabaseBehind, ensure_current
    from coinql.realtime.clock import utc_now
    from coinql.realtime.demo import load_demo_if_empty
    from coinql.store.db import create_engine, create_session_factory

    settings.resolved_secret_key()
    engine = create_engine(settings.database_url)
    try:
        await ensure_current(engine)
        if settings.source == "demo":
            await load_demo_if_empty(create_session_factory(engine), clock=utc_now)
    except DatabaseBehind as behind:
        return str(behind)
    finally:
        await engine.dispose()
    return None


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from coinql.migrations import upgrade

    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}: {settings.database_kind}")
    return 0


def _export_schema(settings: Settings, args: argparse.Namespace) -> int:
    from coinql.schema import export_sdl

    sdl = export_sdl()
    if args.output == "-":
        sys.stdout.write(sdl)
    else:
        Path(args.output).write_text(sdl)
        print(f"wrote {args.output}")
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        raise SystemExit("coinql: the passwords differ")
    return password


def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    from coinql.domain.errors import UserError

    password = _read_password(args)
    try:
        email = asyncio.run(_add_user(settings, args.email, password, admin=args.admin))
    except UserError as error:
        print(f"coinql: {error.message}", file=sys.stderr)
        return 1
    print(f"created {'admin' if args.admin else 'user'} {email}")
    return 0


async def _add_user(settings: Settings, email: str, password: str, *, admin: bool) -> str:
    from coinql.migrations import ensure_current
    from coinql.realtime.clock import utc_now
    from coinql.resolvers.auth import create_user
    from coinql.store.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        await ensure_current(engine)
        async with create_session_factory(engine)() as session, session.begin():
            user = await create_user(
                session, email=email, password=password, is_admin=admin, now=utc_now()
            )
            return user.email
    finally:
        await engine.dispose()


def _rotate_encryption_key(settings: Settings, args: argparse.Namespace) -> int:
    """Re-encrypt every stored secret under the newest COINQL_ENCRYPTION_KEY."""
    changed = asyncio.run(_rotate(settings))
    print(f"re-encrypted {changed} secrets under the newest key")
    return 0


async def _rotate(settings: Settings) -> int:
    from coinql.migrations import ensure_current
    from coinql.store.accounts import rotate_secrets
    from coinql.store.db import create_engine, create_session_factory
    from coinql.store.secrets import SecretBox

    box = SecretBox(settings.resolved_encryption_keys())
    engine = create_engine(settings.database_url)
    try:
        await ensure_current(engine)
        async with create_session_factory(engine)() as session, session.begin():
            return await rotate_secrets(session, box=box)
    finally:
        await engine.dispose()


def _emergency_stop(settings: Settings, args: argparse.Namespace) -> int:
    """Stop every user's bots, cancel their open orders and (--close-positions) sell them."""
    stopped = asyncio.run(_stop_all(settings, close_positions=args.close_positions))
    print(
        f"stopped {stopped.bots} bots, cancelled {stopped.orders_cancelled} orders,"
        f" closed {stopped.positions_closed} positions"
    )
    return 0


async def _stop_all(settings: Settings, *, close_positions: bool) -> Any:
    from coinql.exchanges.accounts import create_account_client
    from coinql.migrations import ensure_current
    from coinql.realtime.accounts import AccountSync
    from coinql.realtime.backends import Backends
    from coinql.realtime.bots import BotLifecycle
    from coinql.realtime.orders import BotEngine
    from coinql.realtime.prices import LatestPrices
    from coinql.store import bots as bot_store
    from coinql.store.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    hub = Backends.from_settings(settings).hub()  # with Redis, every replica hears the events
    await hub.connect()
    try:
        await ensure_current(engine)
        sessions = create_session_factory(engine)
        prices = LatestPrices(hub)
        accounts = AccountSync(
            sessions=sessions, prices=prices, settings=settings, clients=create_account_client
        )
        bot_engine = BotEngine(
            sessions=sessions,
            hub=hub,
            prices=prices,
            clients=accounts.trading_client,  # LIVE bots' orders are cancelled on their exchange
            live_trading=lambda: settings.live_trading,
        )
        async with sessions() as session:
            bots = await bot_store.owners_bots(
                session, owner_id=None, statuses=bot_store.ACTIVE_STATUSES
            )
        try:
            return await BotLifecycle(bot_engine).stop(
                bots, close_positions=close_positions, reason="emergency stop", everyone=True
            )
        finally:
            await bot_engine.close()
    finally:
        await hub.disconnect()
        await engine.dispose()


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    """An arq worker running coinql's jobs from Redis (COINQL_REDIS_URL)."""
    from coinql.realtime.backends import Backends

    if Backends.from_settings(settings).kind != "redis":
        print("coinql: the worker needs COINQL_REDIS_URL", file=sys.stderr)
        return 2
    from arq.worker import run_worker

    from coinql.observability import configure_logging
    from coinql.realtime.worker import worker_settings

    configure_logging(settings)
    run_worker(worker_settings(settings, metrics_port=args.metrics_port))
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coinql", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the API (GraphiQL at /graphql)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes serving the port (more than 1 needs COINQL_REDIS_URL: broadcast, job"
        " queue, throttles and leader leases are shared through Redis)",
    )
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(handler=_migrate)

    export = commands.add_parser("export-schema", help="write the schema as SDL")
    export.add_argument("--output", "-o", default=str(DEFAULT_SCHEMA_PATH), help="- for stdout")
    export.set_defaults(handler=_export_schema)

    create_user = commands.add_parser("create-user", help="add a user (or an admin)")
    create_user.add_argument("email")
    create_user.add_argument("--admin", action="store_true", help="may change shared data")
    create_user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    create_user.set_defaults(handler=_create_user)

    intervals = ["M1", "M5", "M15", "M30", "H1", "H4", "D1", "W1"]
    rotate = commands.add_parser(
        "rotate-encryption-key",
        help="re-encrypt the stored secrets under the first key of COINQL_ENCRYPTION_KEY",
    )
    rotate.set_defaults(handler=_rotate_encryption_key)
    stop = commands.add_parser(
        "emergency-stop",
        help="stop every user's bots and cancel their open orders (the admins' kill switch)",
    )
    stop.add_argument(
        "--close-positions", action="store_true", help="and sell their positions at market"
    )
    stop.set_defaults(handler=_emergency_stop)

    import_ = commands.add_parser("import", help="import candle CSV files (all or nothing each)")
    import_.add_argument("files", nargs="+")
    import_.add_argument("--symbol", help="when the file does not name it")
    import_.add_argument("--interval", choices=intervals, help="when the file does not tell")
    import_.set_defaults(handler=cli_market.import_files)

    backfill = commands.add_parser("backfill", help="fetch missing candles from an exchange")
    backfill.add_argument("symbol")
    backfill.add_argument("interval", choices=intervals)
    backfill.add_argument("--start", required=True, help="ISO 8601; naive means UTC")
    backfill.add_argument("--end", required=True)
    backfill.add_argument("--exchange", help="ccxt exchange id (default: COINQL_SOURCE)")
    backfill.set_defaults(handler=cli_market.backfill_range)

    worker = commands.add_parser("worker", help="run jobs from Redis (arq)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve this worker's Prometheus metrics (jobs by kind and status, job duration)"
        " on 127.0.0.1:PORT/metrics",
    )
    worker.set_defaults(handler=_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    return int(args.handler(settings, args))


if __name__ == "__main__":
    raise SystemExit(main())
