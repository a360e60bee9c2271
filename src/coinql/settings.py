"""Configuration, read from the environment once, by whoever builds the app.

Nothing here runs at import time: `Settings()` is called by the CLI (or a test) and handed to
`create_app`, so tests build apps with their own settings instead of patching globals.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from coinql.domain.candles import Interval

SECRET_KEY_MIN_LENGTH = 32
SECRET_KEY_MIN_DISTINCT = 12


def weak_key_problem(key: str) -> str | None:
    """Why `key` is too weak to sign tokens, or None when it will do."""
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"it must be at least {SECRET_KEY_MIN_LENGTH} characters, not {len(key)}"
    if len(set(key)) < SECRET_KEY_MIN_DISTINCT:
        return (
            f"it repeats too few characters ({len(set(key))} distinct, at least"
            f" {SECRET_KEY_MIN_DISTINCT}); generate one with `python -c 'import secrets;"
            " print(secrets.token_urlsafe(48))'`"
        )
    return None


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True)
class QueryLimits:
    """Limits checked before a document executes (hashable: the schema is built per set).
    Its defaults are the settings' defaults."""

    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 2_000
    max_batch_operations: int = 10
    max_cost: int = 5_000
    max_directives_per_field: int = 4


class Settings(BaseSettings):
    """Every knob of the service. Environment variables carry the `COINQL_` prefix."""

    model_config = SettingsConfigDict(env_prefix="COINQL_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = "sqlite+aiosqlite:///./coinql.db"
    redis_url: str | None = None
    secret_key: str | None = None
    secret_key_file: Path = Path(".coinql-secret")
    # Fernet keys for the secrets kept at rest, newest first (comma-separated): a new key in
    # front, then `coinql rotate-encryption-key`, then the old one can go.
    encryption_key: str | None = None
    encryption_key_file: Path = Path(".coinql-encryption-key")
    paper_starting_balance: Decimal = Decimal(10_000)  # in paper_quote, per paper connection
    paper_quote: str = "USDT"
    paper_fee_bps: Decimal = Decimal(10)
    paper_slippage_bps: Decimal = Decimal(5)
    max_api_keys_per_user: int = 20
    # Every connection synced this often, by the leading process; 0 turns scheduled sync off.
    account_sync_seconds: float = Field(default=300.0, ge=0)
    # Orders sent to real exchanges; off unless the operator turns it on.
    live_trading: bool = False
    # How often the leading process looks at its running bots; 0 turns the bot runner off.
    bot_poll_seconds: float = Field(default=1.0, ge=0)
    # The demo market's time runs this many times as fast as real time (1: real time), so a
    # demo bot on M1 trades within a minute; only the demo source, and only its market.
    demo_speed: float = Field(default=1.0, ge=1, le=3600)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    log_format: LogFormat | None = None
    log_level: str = "INFO"
    source: str = "demo"
    exchange_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "LTC"]
    )
    exchange_intervals: Annotated[list[Interval], NoDecode] = Field(
        default_factory=lambda: [Interval.D1, Interval.H1]
    )
    exchange_quote: str = "USDT"
    ingest_poll_seconds: float = 60.0
    ingest_history_days: int = 365
    market_cap_provider: str = "coingecko"
    import_max_bytes: int = 100 * 1024 * 1024
    max_upload_rows: int = 2_000_000  # data rows of an uploaded candle file
    # The dashboard's build (web/dist) and the contract's operations GraphiQL opens with;
    # None: the checkout's web/dist, and ../shared/contract beside the checkout if it exists.
    web_dir: Path | None = None
    contract_dir: Path | None = None
    feed_enabled: bool = True
    feed_tick_seconds: float = 1.0
    feed_poll_seconds: float = 2.0
    risk_check_seconds: float = 5.0
    max_subscriptions_per_connection: int = 20
    max_ws_message_bytes: int = 1024 * 1024  # one WebSocket message, variables included
    ws_init_timeout_seconds: float = 10.0  # a socket without connection_init is closed (4408)
    max_anonymous_sockets_per_address: int = 20  # sockets not signed in, per client address
    max_subscriptions_per_user: int = 50
    ws_compression: bool = False  # permessage-deflate on WebSocket connections
    shared_subscriptions: bool = True  # one execution per public stream (coinql.transport)
    portfolio_value_throttle_seconds: float = 1.0
    max_query_depth: int = QueryLimits.max_depth
    max_aliases: int = QueryLimits.max_aliases
    max_tokens: int = QueryLimits.max_tokens
    max_document_bytes: int = 20_000
    max_anonymous_body_bytes: int = 64 * 1024  # a request without a valid token, whole body
    max_batch_operations: int = QueryLimits.max_batch_operations
    max_query_cost: int = QueryLimits.max_cost
    request_timeout_seconds: float = 30.0
    slow_operation_seconds: float = 1.0
    max_series_points: int = 200_000
    # Candle series kept in each process's memory (coinql.realtime.series_cache); 0: none.
    cache_mb: float = Field(default=256.0, ge=0)
    max_directives_per_field: int = QueryLimits.max_directives_per_field
    rate_limit_cost_per_user: int = 60_000
    rate_limit_cost_per_address: int = 120_000
    rate_limit_cost_per_key: int = 60_000  # per API key, beside its user's budget
    rate_limit_window_seconds: float = 60.0
    login_failures_per_account: int = 5
    login_failures_per_address: int = 20
    login_window_seconds: float = 15 * 60
    registrations_per_address: int = 20  # per login window
    metrics_token: str | None = None  # when set, /metrics asks for "Bearer <token>"
    job_stale_seconds: float = 30.0
    job_sweep_seconds: float = 10.0
    job_slots: int | None = Field(default=None, ge=1)  # None: CPU count - 1, at least 1
    max_jobs_per_user: int = Field(default=8, ge=1)  # queued or running
    max_running_jobs_per_user: int = Field(default=2, ge=1)
    access_token_ttl_seconds: int = 15 * 60
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    graphiql: bool | None = None
    introspection: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: object) -> object:
        """Comma-separated environment values become lists."""
        if isinstance(data, dict):
            for name in ("cors_origins", "exchange_symbols", "exchange_intervals"):
                if isinstance(data.get(name), str):
                    data[name] = [item.strip() for item in data[name].split(",") if item.strip()]
        return data

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
        if self.env is Environment.PRODUCTION and not self.secret_key:
            raise ValueError("COINQL_SECRET_KEY is required when COINQL_ENV=production")
        if self.secret_key is not None:
            # A weak signing key lets anyone forge tokens, in development as much as in
            # production (development servers hold real data too).
            problem = weak_key_problem(self.secret_key)
            if problem is not None:
                raise ValueError(f"COINQL_SECRET_KEY is weak: {problem}")
        if self.env is Environment.PRODUCTION and not self.encryption_key:
            raise ValueError("COINQL_ENCRYPTION_KEY is required when COINQL_ENV=production")
        if self.redis_url == "":
            self.redis_url = None
        return self

    @property
    def production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def effective_log_format(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return LogFormat.JSON if self.production else LogFormat.CONSOLE

    @property
    def introspection_enabled(self) -> bool:
        return (not self.production) if self.introspection is None else self.introspection

    @property
    def graphiql_enabled(self) -> bool:
        return (not self.production) if self.graphiql is None else self.graphiql

    @property
    def query_limits(self) -> QueryLimits:
        return QueryLimits(
            max_depth=self.max_query_depth,
            max_aliases=self.max_aliases,
            max_tokens=self.max_tokens,
            max_batch_operations=self.max_batch_operations,
            max_cost=self.max_query_cost,
            max_directives_per_field=self.max_directives_per_field,
        )

    @property
    def effective_job_slots(self) -> int:
        """Jobs one process runs at once: the service's process pool, or a `coinql worker`."""
        return self.job_slots or max(1, (os.cpu_count() or 2) - 1)

    @property
    def exchange_id(self) -> str | None:
        """The exchange to ingest from, or None for the demo and import-only sources."""
        return None if self.source in ("demo", "none") else self.source

    @property
    def database_kind(self) -> str:
        """`sqlite` or `postgresql`, from the URL's dialect."""
        return self.database_url.split(":", 1)[0].split("+", 1)[0]

    def resolved_secret_key(self) -> str:
        """The signing key: configured, or in development generated once and kept in a file."""
        if self.secret_key:
            return self.secret_key
        return _kept_in_file(
            self.secret_key_file,
            make=lambda: secrets.token_urlsafe(48),
            usable=lambda key: weak_key_problem(key) is None,
        )

    def resolved_encryption_keys(self) -> list[str]:
        """The keys of secrets at rest, newest first: configured, or in development one
        generated once and kept in a file."""
        if self.encryption_key:
            return [key.strip() for key in self.encryption_key.split(",") if key.strip()]
        return [_kept_in_file(self.encryption_key_file, make=_fernet_key, usable=bool)]


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _kept_in_file(path: Path, *, make: Callable[[], str], usable: Callable[[str], bool]) -> str:
    """A development key read from `path`, or made and written there (mode 0600, so that only
    its owner can read it) when the file is missing or holds no usable key."""
    if path.exists():
        key = path.read_text().strip()
        if usable(key):
            return key
    key = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    os.chmod(path, 0o600)
    return key
