"""Logs with a request id on every line, and Prometheus metrics.

Logging goes through structlog, and the standard library's loggers (uvicorn's, SQLAlchemy's)
are routed through the same processors, so every line has one format and carries the request id
bound for the current request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coinql.settings import LogFormat, Settings

if TYPE_CHECKING:
    from coinql.store.jobs import JobStatus

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_VALID_OPERATION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_OPERATION_LABELS = 500

log = structlog.get_logger("coinql")


def configure_logging(settings: Settings) -> None:
    """Send structlog and standard logging through one renderer: JSON or console."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.effective_log_format is LogFormat.JSON
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        # A line below the level is dropped first, before any processor works on it (the
        # request and operation lines are on every request's path).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # One line per request comes from RequestIdMiddleware, with the id; uvicorn's would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


class RequestIdMiddleware:
    """Give each HTTP request and WebSocket an id, bind it to the logs, return it as a header.

    A client-supplied `X-Request-ID` is kept when it is short and plain, so that a caller can
    follow one request across services; anything else is replaced.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if scope["type"] == "http":
                    log.info(
                        "request",
                        method=scope["method"],
                        path=scope["path"],
                        status=status.get("code"),
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    )


def _request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate: str = value.decode("latin-1")
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class Metrics:
    """The service's Prometheus metrics, in a registry of its own per app.

    Operation names are chosen by clients, so they are label values only when they look like
    names, and only up to `MAX_OPERATION_LABELS` distinct ones; the rest count as "other".
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "coinql_graphql_operations",
            "GraphQL operations by name, type and outcome.",
            ["operation", "type", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "coinql_graphql_operation_duration_seconds",
            "GraphQL operation latency.",
            ["operation", "type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.query_cost = Histogram(
            "coinql_graphql_query_cost",
            "Estimated cost of each operation that passed the cost limit.",
            ["operation"],
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=self.registry,
        )
        self.rejections = Counter(
            "coinql_rejections",
            "Requests refused by a limit: query_cost, login_throttle.",
            ["reason"],
            registry=self.registry,
        )
        self.component_up = Gauge(
            "coinql_component_up",
            "1 when a component answered its last readiness check, else 0.",
            ["component"],
            registry=self.registry,
        )
        self.broadcast_reconnects = Counter(
            "coinql_broadcast_reconnects",
            "Times the Redis broadcast listener reconnected after losing its connection.",
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "coinql_active_subscriptions",
            "GraphQL subscriptions open on this process.",
            registry=self.registry,
        )
        self.jobs = Counter(
            "coinql_jobs",
            "Jobs by kind and status: QUEUED when submitted, then the final status, counted by"
            " the process that ran them (the API's pool, or a `coinql worker`).",
            ["kind", "status"],
            registry=self.registry,
        )
        self.job_duration = Histogram(
            "coinql_job_duration_seconds",
            "Time from a job's start to its final status, by kind and status.",
            ["kind", "status"],
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )
        self.candles_inserted = Counter(
            "coinql_candles_inserted",
            "Candles written to the store, by source: the exchange's id (ingestion), feed, import.",
            ["source"],
            registry=self.registry,
        )
        self.account_syncs = Counter(
            "coinql_account_syncs",
            "Scheduled exchange account syncs, by outcome: synced, failed, busy (already syncing).",
            ["outcome"],
            registry=self.registry,
        )
        self.ingestion_lag = Gauge(
            "coinql_ingestion_lag_seconds",
            "Seconds since each ingestion job last succeeded (set when /metrics is read).",
            ["symbol", "interval"],
            registry=self.registry,
        )
        self.feed_lag = Gauge(
            "coinql_feed_lag_seconds",
            "Seconds between now and the newest tick the feed published (set when /metrics is"
            " read; it grows while the feed is stalled).",
            registry=self.registry,
        )
        self.shared_streams = Gauge(
            "coinql_shared_streams",
            "Shared upstreams of public subscriptions (one per distinct document and variables),"
            " each fanned out to its subscribers (set when /metrics is read).",
            registry=self.registry,
        )
        self.read_retries = Counter(
            "coinql_read_retries",
            "Queries run a second time after the database connection was lost.",
            registry=self.registry,
        )
        self.series_cache = Counter(
            "coinql_series_cache",
            "Candle series reads by outcome: hit (from memory), miss (from the store), and"
            " series evicted to stay within COINQL_CACHE_MB.",
            ["outcome"],
            registry=self.registry,
        )
        self.series_cache_bytes = Gauge(
            "coinql_series_cache_bytes",
            "Bytes of candle series (and results computed from them) cached in this process.",
            registry=self.registry,
        )
        self._known_operations: set[str] = set()

    def job_ended(self, kind: str, status: JobStatus, seconds: float) -> None:
        self.jobs.labels(kind, status.value).inc()
        self.job_duration.labels(kind, status.value).observe(seconds)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        if not _VALID_OPERATION_NAME.match(name):
            return "other"
        if name in self._known_operations:
            return name
        if len(self._known_operations) >= MAX_OPERATION_LABELS:
            return "other"
        self._known_operations.add(name)
        return name

    def observe_operation(
        self,
        name: str | None,
        operation_type: str,
        outcome: str,
        seconds: float,
        cost: int | None = None,
    ) -> None:
        label = self.operation_label(name)
        self.operations.labels(label, operation_type, outcome).inc()
        self.latency.labels(label, operation_type).observe(seconds)
        if cost is not None:
            self.query_cost.labels(label).observe(cost)
