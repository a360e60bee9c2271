"""The service around the schema: health, readiness, metrics, startup checks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.migrations import DatabaseBehind
from coinql.store.db import create_engine
from tests.client import GraphQLClient
from tests.conftest import CONTRACT_DIR, Backend, make_settings


async def test_live(client: GraphQLClient) -> None:
    response = await client.http.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_each_component(client: GraphQLClient, backend: Backend) -> None:
    response = await client.http.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["status"] == "up"
    assert body["components"]["database"]["kind"] == (
        "sqlite" if backend.name == "sqlite" else "postgresql"
    )
    assert ("redis" in body["components"]) == (backend.redis_url is not None)


async def test_ready_is_503_when_the_database_is_down(
    client: GraphQLClient, app: Starlette
) -> None:
    services = app.state.services
    healthy_engine = services.engine
    services.engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/unreachable")
    try:
        response = await client.http.get("/health/ready")
    finally:
        await services.engine.dispose()
        services.engine = healthy_engine
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["components"]["database"]["status"] == "down"
    assert body["components"]["database"]["error"]


async def test_metrics_count_operations_by_name_and_outcome(client: GraphQLClient) -> None:
    await client.contract("server", "ServerInfo")
    await client.contract("server", "Me", token="forged")
    lines = set((await client.http.get("/metrics")).text.splitlines())
    assert (
        'coinql_graphql_operations_total{operation="ServerInfo",outcome="success",type="query"} 1.0'
        in lines
    )
    assert (
        'coinql_graphql_operations_total{operation="Me",outcome="error",type="query"} 1.0' in lines
    )
    assert (
        'coinql_graphql_operation_duration_seconds_count{operation="ServerInfo",type="query"} 1.0'
        in lines
    )


async def test_refuses_to_start_on_a_database_that_is_behind(tmp_path: Path) -> None:
    empty = Backend("sqlite", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", None)
    app = create_app(make_settings(empty, tmp_path))
    with pytest.raises(DatabaseBehind, match="coinql migrate"):
        async with app.router.lifespan_context(app):
            pass  # pragma: no cover - startup must fail before this runs


async def test_cors_preflight_allows_configured_origins(backend: Backend, tmp_path: Path) -> None:
    import httpx

    app = create_app(make_settings(backend, tmp_path, cors_origins="https://app.example"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            allowed = await http.options(
                "/graphql",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": "POST",
                },
            )
            denied = await http.options(
                "/graphql",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
            )
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in denied.headers


async def test_json_logs_carry_the_request_id(
    backend: Backend, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import json

    import httpx

    settings = make_settings(backend, tmp_path, log_format="json", log_level="INFO")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/health/live", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.strip()]
    request_lines = [line for line in lines if line.get("event") == "request"]
    assert request_lines and request_lines[0]["request_id"] == "trace-42"
    assert request_lines[0]["path"] == "/health/live" and request_lines[0]["status"] == 200
    started = [line for line in lines if line.get("event") == "started"]
    assert started and started[0]["level"] == "info"


async def test_operations_are_logged_with_user_and_cost_and_slow_ones_warned(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import CapturingLogger

    from coinql.schema import extensions

    captured = CapturingLogger()
    # The module's logger, not structlog's configuration: loggers are cached on first use.
    monkeypatch.setattr(extensions, "log", captured)
    app = create_app(make_settings(backend, tmp_path, slow_operation_seconds=0.0))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            token = (await client.sign_up())["accessToken"]
            await client.contract("server", "Me", token=token)
    (call,) = [c for c in captured.calls if c.kwargs.get("operation") == "Me"]
    assert call.method_name == "warning" and call.args == ("slow operation",)
    assert call.kwargs["type"] == "query" and call.kwargs["outcome"] == "success"
    assert call.kwargs["cost"] == 3 and call.kwargs["user_id"]
    assert call.kwargs["duration_ms"] >= 0


async def test_metrics_ask_for_the_metrics_token_when_one_is_set(
    backend: Backend, tmp_path: Path
) -> None:
    app = create_app(make_settings(backend, tmp_path, metrics_token="scrape-me-please"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            anonymous = await http.get("/metrics")
            wrong = await http.get("/metrics", headers={"Authorization": "Bearer guess"})
            right = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert anonymous.status_code == wrong.status_code == 401
    assert "coinql" not in anonymous.text
    assert right.status_code == 200 and "coinql_" in right.text


async def test_client_mistakes_are_logged_at_info_and_refusals_as_such(
    backend: Backend,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unknown field, a query that needs a sign-in and an unknown symbol are the client's
    doing: info, never error. A mutation answering an error type is `refused`, not `success`."""
    from structlog.testing import CapturingLogger

    from coinql.schema import extensions

    captured = CapturingLogger()
    monkeypatch.setattr(extensions, "log", captured)
    app = create_app(make_settings(backend, tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            await client.execute("query Typo { serverInfo { versio } }")
            await client.execute("query Anonymous { portfolios { edges { node { id } } } }")
            await client.execute('query Unknown { asset(symbol: "NOPE") { symbol } }')
            await client.execute('query Broken { riskLimits(portfolioId: "x") { maxDrawdown } }')
            taken = {"email": "ada@example.com", "password": "correct horse battery staple"}
            await client.contract("server", "Register", taken)
            await client.contract("server", "Register", taken)
            lines = set((await http.get("/metrics")).text.splitlines())
    assert not [call for call in captured.calls if call.method_name == "error"], captured.calls
    assert not [record for record in caplog.records if record.levelname == "ERROR"]
    client_errors = [call for call in captured.calls if call.args == ("client error",)]
    assert {call.method_name for call in client_errors} == {"info"} and len(client_errors) >= 3
    registers = [c for c in captured.calls if c.kwargs.get("operation") == "Register"]
    assert [c.kwargs["outcome"] for c in registers] == ["success", "refused"]
    assert registers[1].kwargs["refused"] == ["EmailTaken"]
    assert (
        'coinql_graphql_operations_total{operation="Register",outcome="refused",type="mutation"}'
        " 1.0" in lines
    )
