"""Fixtures: backends (SQLite + memory always; PostgreSQL + Redis when configured), the app,
one typed GraphQL client, the contract's operations, an admin and the real daily candles, and a
real uvicorn server."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.migrations import upgrade
from coinql.resolvers.auth import create_user
from coinql.settings import Settings
from coinql.store.db import create_engine
from coinql.store.tables import metadata
from tests.client import GraphQLClient, contract_operations

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COINQL_SHARED_DIR", ROOT.parent / "shared"))
CONTRACT_DIR = SHARED / "contract"
COINS_DIR = SHARED / "data" / "coins-daily"
TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256-signing"
IN_CI = os.environ.get("CI", "").lower() == "true"
# The contract's areas that are built; the others' operations (accounts, trading, research)
# join the tests that read the whole folder when their areas land.
BUILT_AREAS = (
    "server",
    "market",
    "analytics",
    "portfolio",
    "backtest",
    "realtime",
    "accounts",
    "trading",
)


def built_contract_files() -> list[Path]:
    """The contract files of the built areas, checking that the folder holds each of them."""
    paths = [CONTRACT_DIR / f"{area}.graphql" for area in BUILT_AREAS]
    missing = [path.name for path in paths if not path.is_file()]
    assert not missing, f"the contract has no {missing}"
    return paths


@dataclass(frozen=True)
class Backend:
    name: str
    database_url: str
    redis_url: str | None


def _pg_url() -> str | None:
    return os.environ.get("COINQL_TEST_DATABASE_URL") or None


def _redis_url() -> str | None:
    return os.environ.get("COINQL_TEST_REDIS_URL") or None


def _service_problem() -> str | None:
    """Why PostgreSQL + Redis tests cannot run, or None when they can."""
    pg, redis_url = _pg_url(), _redis_url()
    if not pg or not redis_url:
        return "COINQL_TEST_DATABASE_URL and COINQL_TEST_REDIS_URL are not both set"
    for url, default_port in ((pg, 5432), (redis_url, 6379)):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or default_port
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError as error:
            return f"cannot reach {host}:{port}: {error}"
    return None


def pytest_report_header(config: pytest.Config) -> str:
    problem = _service_problem()
    return "backends: sqlite+memory" + (
        f"; postgresql+redis not run ({problem})" if problem else "; postgresql+redis"
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    if not CONTRACT_DIR.is_dir():
        pytest.exit(
            f"the client contract is missing: expected {CONTRACT_DIR} (shared/ beside the"
            " repository, or COINQL_SHARED_DIR)",
            returncode=1,
        )
    problem = _service_problem()
    if IN_CI and problem:
        pytest.exit(f"CI=true but PostgreSQL/Redis tests cannot run: {problem}", returncode=1)


# domain/ is pure computation that every test can reach: its floor is near starlette's 100 %.
# The total floor is `fail_under` in pyproject.toml; both apply when coverage is measured
# (`make test`), and `--cov-fail-under=0` lifts both for a partial run.
DOMAIN_COVERAGE_FLOOR = 95.0
_DOMAIN_FILES = "*/coinql/domain/*"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[object]:
    """After pytest-cov has measured the run (its own wrapper is inside this one), fail the
    session when domain/'s coverage is under its floor."""
    result = yield
    plugin = session.config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    floor = getattr(getattr(plugin, "options", None), "cov_fail_under", None)
    if controller is None or getattr(plugin, "cov_total", None) is None or not floor:
        return result
    import coverage  # only when coverage ran

    try:
        total = controller.cov.report(include=[_DOMAIN_FILES], file=io.StringIO())
    except coverage.exceptions.NoDataError:
        total = 0.0
    session.config.stash[_domain_coverage] = total
    if total < DOMAIN_COVERAGE_FLOOR:
        session.testsfailed += 1
    return result


_domain_coverage = pytest.StashKey[float]()


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    total = config.stash.get(_domain_coverage, None)
    if total is None:
        return
    failed = total < DOMAIN_COVERAGE_FLOOR
    terminalreporter.write(
        f"{'FAIL ' if failed else ''}Required coverage of domain/ ({DOMAIN_COVERAGE_FLOOR:g}%)"
        f" {'not reached' if failed else 'reached'}. domain/ coverage: {total:.2f}%\n",
        **({"red": True, "bold": True} if failed else {"green": True}),
    )


def available_backends() -> list[str]:
    return ["sqlite"] if _service_problem() else ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy, which is much faster than migrating."""
    path = tmp_path_factory.mktemp("template") / "coinql.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The test database, dropped and migrated once per session."""
    url = make_url(_pg_url() or "")
    name = url.database or "coinql_test"
    admin_url = url.set(database="postgres").render_as_string(hide_password=False)

    async def recreate() -> None:
        engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    database_url = url.render_as_string(hide_password=False)
    # Requested from inside the event loop of the first test that needs it: run the blocking
    # setup (which starts loops of its own) in a worker thread.
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, recreate()).result()
        executor.submit(upgrade, database_url).result()
    yield database_url


async def _truncate_postgres(database_url: str) -> None:
    """Empty every table. A connection an earlier test left open (a server process that
    outlived its test, a transaction left idle) would make TRUNCATE wait for ever: such
    leftovers are cut off first, as `DROP DATABASE ... WITH (FORCE)` would."""
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        await connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


async def _flush_redis(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()


@pytest.fixture(params=available_backends())
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[Backend]:
    """Each test that uses it runs on SQLite + memory, then on PostgreSQL + Redis."""
    if request.param == "sqlite":
        path = tmp_path / "coinql.db"
        shutil.copy(sqlite_template, path)
        yield Backend("sqlite", f"sqlite+aiosqlite:///{path}", None)
        return
    database_url = request.getfixturevalue("postgres_database")
    redis_url = _redis_url()
    assert redis_url is not None
    await _truncate_postgres(database_url)
    await _flush_redis(redis_url)
    yield Backend("postgres", database_url, redis_url)


@pytest.fixture
def settings(backend: Backend, tmp_path: Path) -> Settings:
    return make_settings(backend, tmp_path)


def make_settings(backend: Backend, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": backend.database_url,
        "redis_url": backend.redis_url,
        "secret_key": TEST_SECRET,
        "secret_key_file": tmp_path / "secret",
        "encryption_key_file": tmp_path / "encryption-key",
        "source": "none",
        "log_level": "WARNING",
        "account_sync_seconds": 0,  # on in the tests of scheduled sync
        "bot_poll_seconds": 0,  # the tests of bots drive the runner
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[GraphQLClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinql.test") as http:
        yield GraphQLClient(http, CONTRACT_DIR)


ADMIN_PASSWORD = "a long admin password"


async def make_user(app: Starlette, client: GraphQLClient, email: str, *, admin: bool) -> str:
    """A user made in the store (admins cannot register), signed in: their access token."""
    services = app.state.services
    async with services.transaction() as session:
        await create_user(
            session, email=email, password=ADMIN_PASSWORD, is_admin=admin, now=services.now()
        )
    login = await client.contract("server", "Login", {"email": email, "password": ADMIN_PASSWORD})
    return str(login.ok()["login"]["accessToken"])


@pytest.fixture
async def admin(app: Starlette, client: GraphQLClient) -> str:
    return await make_user(app, client, "root@example.com", admin=True)


async def upload(
    client: GraphQLClient,
    content: bytes,
    *,
    token: str | None,
    filename: str = "candles.csv",
    **variables: Any,
) -> dict[str, Any]:
    """ImportCandles as a GraphQL multipart request, exactly as the contract writes it."""
    query = contract_operations(CONTRACT_DIR, "market")["ImportCandles"]
    response = await client.upload(query, {"file": (filename, content)}, variables, token=token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return dict(body["data"]["importCandles"])


async def import_real_files(client: GraphQLClient, token: str) -> None:
    """The six real daily series of COINS_DIR, imported by an admin through the API."""
    for path in sorted(COINS_DIR.glob("coin_*.csv")):
        report = await upload(client, path.read_bytes(), token=token, filename=path.name)
        assert report["__typename"] == "ImportReport", report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    ws_url: str
    process: subprocess.Popen[bytes]


def start_server(
    settings: Settings, *, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Server:
    """`coinql serve` in a subprocess with these settings; returns once it is live."""
    port = port or free_port()
    env = {
        **os.environ,
        "COINQL_DATABASE_URL": settings.database_url,
        "COINQL_REDIS_URL": settings.redis_url or "",
        "COINQL_SECRET_KEY": settings.secret_key or TEST_SECRET,
        "COINQL_SOURCE": settings.source,
        "COINQL_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "coinql.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            assert process.stderr is not None
            stderr = process.stderr.read().decode()
            process.stderr.close()
            raise RuntimeError(f"server exited with {process.returncode}:\n{stderr}")
        try:
            if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                return Server(url, f"ws://127.0.0.1:{port}/graphql", process)
        except httpx.HTTPError:
            time.sleep(0.1)
    stop_server(Server(url, "", process))
    raise RuntimeError("server did not become live within 30 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    if server.process.stderr is not None:
        server.process.stderr.close()


def start_worker(
    settings: Settings, metrics_port: int | None = None, *, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`coinql worker` (arq) in a subprocess, for jobs queued through Redis; with
    `metrics_port`, its Prometheus metrics on that port."""
    env = {
        **os.environ,
        "COINQL_DATABASE_URL": settings.database_url,
        "COINQL_REDIS_URL": settings.redis_url or "",
        "COINQL_SECRET_KEY": settings.secret_key or "",
        "COINQL_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coinql.cli",
            "worker",
            *(["--metrics-port", str(metrics_port)] if metrics_port else []),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextmanager
def worker_for(
    settings: Settings, metrics_port: int | None = None, *, extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes] | None]:
    """With Redis, jobs run in a `coinql worker` subprocess, as in a deployment, while the
    block runs; without, on the app's own pool (None)."""
    if settings.redis_url is None:
        yield None
        return
    process = start_worker(settings, metrics_port, extra_env=extra_env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=20)


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    running = start_server(settings)
    try:
        yield running
    finally:
        stop_server(running)


class OwnRedis:
    """A Redis server of one test's own, so that stopping it disturbs nothing else."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is needed for the Redis fault tests"
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Killed, as a crash: nothing is kept (no persistence), queued entries included."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()
