"""What this deployment runs on."""

from __future__ import annotations

from dataclasses import dataclass

from coinql.resolvers.context import Context


@dataclass(frozen=True, slots=True)
class ServerDescription:
    version: str
    database: str
    broadcast: str
    job_queue: str
    data_source: str
    live_symbols: list[str]


def data_source_label(source: str) -> str:
    """The `dataSource` shown to clients for a `COINQL_SOURCE` setting."""
    return "import" if source == "none" else source


def describe(context: Context) -> ServerDescription:
    services = context.services
    return ServerDescription(
        version=services.version,
        database=services.engine.dialect.name,
        broadcast=services.hub.kind,
        job_queue=services.jobs.kind,
        data_source=data_source_label(services.settings.source),
        live_symbols=sorted(services.feed.source.symbols) if services.feed is not None else [],
    )
