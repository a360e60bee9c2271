"""The GraphQL endpoint's transport rules over HTTP: malformed bodies are clear 400s, and
multipart requests are held to every limit JSON requests are, before their bodies are read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.store.auth import User
from tests.client import GraphQLClient, contract_operations
from tests.conftest import CONTRACT_DIR, Backend, make_settings
from tests.helpers import count

PREFLIGHT = {"Apollo-Require-Preflight": "true"}
SERVER_INFO = "{ serverInfo { version } }"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"null", "not null"),
        (b"5", "not a JSON number"),
        (b'"abc"', "not a JSON string"),
        (b"[1, 2]", "not an array holding something else than objects"),
        (b'[[{"query": "{ serverInfo { version } }"}]]', "something else than objects"),
        (b"[]", "not an empty array"),
    ],
)
async def test_a_body_that_is_not_a_graphql_request_is_a_400(
    client: GraphQLClient, body: bytes, message: str
) -> None:
    response = await client.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert message in response.json()["errors"][0]["message"]


def multipart(operations: object, file_map: object, files: dict[str, bytes]) -> dict[str, object]:
    return {
        "data": {"operations": json.dumps(operations), "map": json.dumps(file_map)},
        "files": {name: (f"{name}.csv", content, "text/csv") for name, content in files.items()},
    }


async def test_a_file_map_pointing_nowhere_is_a_400(client: GraphQLClient) -> None:
    for file_map in ({"0": ["variables.f.deeper.still"]}, {"0": ["nowhere.at.all"]}, {"1": []}):
        response = await client.http.post(
            "/graphql",
            headers=PREFLIGHT,
            **multipart({"query": SERVER_INFO, "variables": {"f": None}}, file_map, {"0": b"x"}),
        )
        assert response.status_code == 400, (file_map, response.text)
        assert response.json()["errors"][0]["message"]


async def test_multipart_needs_a_preflight_header(client: GraphQLClient, app: Starlette) -> None:
    """A browser sends multipart/form-data cross-site without asking first; a header it can
    only send after a preflight makes such a request impossible to forge."""
    register = contract_operations(CONTRACT_DIR, "server")["Register"]
    variables = {"email": "forged@example.com", "password": "correct horse battery staple"}
    form = multipart({"query": register, "variables": variables}, {}, {})
    forged = await client.http.post("/graphql", data=form["data"], files={"x": b""})
    assert forged.status_code == 400
    assert "Apollo-Require-Preflight or X-Requested-With" in forged.json()["errors"][0]["message"]
    assert await count(app, User) == 0
    for header in ("Apollo-Require-Preflight", "X-Requested-With"):
        allowed = await client.http.post(
            "/graphql", data=form["data"], files={"x": b""}, headers={header: "1"}
        )
        assert allowed.status_code == 200, allowed.text
        variables["email"] = "second@example.com"
        form = multipart({"query": register, "variables": variables}, {}, {})
    assert await count(app, User) == 2


async def test_multipart_is_held_to_the_document_and_batch_limits(client: GraphQLClient) -> None:
    big = SERVER_INFO + " " * 30_000
    token = (await client.sign_up())["accessToken"]  # signed in: the body itself may be large
    headers = {**PREFLIGHT, "Authorization": f"Bearer {token}"}
    too_big = await client.http.post(
        "/graphql", headers=headers, **multipart({"query": big}, {}, {"0": b"x"})
    )
    assert too_big.status_code == 413
    assert "COINQL_MAX_DOCUMENT_BYTES" in too_big.json()["errors"][0]["message"]
    batch = [{"query": SERVER_INFO}] * 11
    too_many = await client.http.post(
        "/graphql", headers=headers, **multipart(batch, {}, {"0": b"x"})
    )
    assert too_many.status_code == 400
    assert "COINQL_MAX_BATCH_OPERATIONS" in too_many.json()["errors"][0]["message"]
    page = "assets(first: 500) { edges { node { symbol name rank marketCap } } }"
    costly = f"{{ a: {page} b: {page} }}"
    over_cost = await client.http.post(
        "/graphql", headers=headers, **multipart({"query": costly}, {}, {"0": b"x"})
    )
    assert "cost" in over_cost.json()["errors"][0]["message"]


async def test_an_anonymous_body_is_refused_as_it_arrives(client: GraphQLClient) -> None:
    """200 MB to `{ serverInfo }` without a token: refused after a few chunks, without a
    Content-Length to go by, and at once with one."""
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield json.dumps({"query": SERVER_INFO, "variables": {"pad": ""}})[:-3].encode()
        for _ in range(200):
            sent += 1
            yield b" " * 1024 * 1024

    streamed = await client.http.post(
        "/graphql", content=endless(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert "COINQL_MAX_ANONYMOUS_BODY_BYTES" in streamed.json()["errors"][0]["message"]
    assert sent < 5
    declared = await client.http.post(
        "/graphql",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(200 * 1024 * 1024)},
    )
    assert declared.status_code == 413


async def test_the_request_timeout_applies_to_multipart(backend: Backend, tmp_path: Path) -> None:
    app = create_app(make_settings(backend, tmp_path, request_timeout_seconds=0.5))

    async def slow() -> AsyncIterator[bytes]:
        boundary = b'--b\r\nContent-Disposition: form-data; name="operations"\r\n\r\n'
        yield boundary + json.dumps({"query": SERVER_INFO}).encode()
        await asyncio.sleep(3)
        yield b"\r\n--b--\r\n"

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post(
                "/graphql",
                content=slow(),
                headers={**PREFLIGHT, "content-type": "multipart/form-data; boundary=b"},
            )
    assert response.status_code == 504
    assert response.json()["errors"][0]["extensions"]["code"] == "TIMEOUT"


CONTRACT_SERVER = (CONTRACT_DIR / "server.graphql").read_text()


async def test_several_operations_without_an_operation_name_are_refused(
    client: GraphQLClient,
) -> None:
    """The spec asks for an error, not the first operation: a contract file sent whole."""
    response = await client.execute(CONTRACT_SERVER)
    assert response.status_code == 400
    message = response.body["errors"][0]["message"]
    assert message.startswith("the document holds 6 operations (ServerInfo, Register, Login")
    assert message.endswith("name the one to run in operationName")
    named = await client.execute(CONTRACT_SERVER, operation_name="ServerInfo")
    assert named.ok()["serverInfo"]["version"]


async def test_a_subscription_over_http_is_a_client_error(client: GraphQLClient) -> None:
    response = await client.execute('subscription { prices(symbols: ["BTC"]) { price } }')
    assert response.status_code == 400
    assert response.body["errors"][0]["message"].startswith(
        "subscriptions need the WebSocket transport"
    )


async def test_a_batch_past_the_timeout_answers_each_operation_truthfully(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The finished operation's answer (its write committed) beside the unfinished one's
    TIMEOUT (its write rolled back), not one 504 for both."""
    import time

    from coinql.domain import auth

    hash_password = auth.hash_password

    def hash_slowly(password: str) -> str:
        if password.startswith("slow"):
            time.sleep(2)
        return hash_password(password)

    monkeypatch.setattr(auth, "hash_password", hash_slowly)
    app = create_app(make_settings(backend, tmp_path, request_timeout_seconds=1.0))
    register = contract_operations(CONTRACT_DIR, "server")["Register"]
    operations = [
        {"query": register, "variables": {"email": f"{name}@example.com", "password": password}}
        for name, password in (("quick", "quick password!!"), ("slow", "slow password!!!"))
    ]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post("/graphql", json=operations)
            await asyncio.sleep(1.5)  # the slow hash's thread ends; nothing more is written
            users = await count(app, User)
    quick, slow = response.json()
    assert response.status_code == 200
    assert quick["data"]["register"]["__typename"] == "AuthPayload"
    assert slow["data"] is None and slow["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert users == 1
