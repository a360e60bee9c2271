"""What the examples share: a gql client on coinql's HTTP endpoint and one on its WebSocket,
signed in with an API key (COINQL_API_KEY) or, without one, with a token (COINQL_TOKEN)."""

from __future__ import annotations

import os

from gql import Client
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport


def authorization() -> dict[str, str]:
    if key := os.environ.get("COINQL_API_KEY"):
        return {"Authorization": f"ApiKey {key}"}
    if token := os.environ.get("COINQL_TOKEN"):
        return {"Authorization": f"Bearer {token}"}
    raise SystemExit(
        "set COINQL_API_KEY (create one on the dashboard's Account page) or COINQL_TOKEN"
    )


def base_url() -> str:
    return os.environ.get("COINQL_URL", "http://127.0.0.1:8000").rstrip("/")


def http_client() -> Client:
    return Client(
        transport=HTTPXAsyncTransport(
            url=f"{base_url()}/graphql", headers=authorization(), timeout=60
        ),
        fetch_schema_from_transport=False,
    )


def socket_client() -> Client:
    url = base_url().replace("http", "ws", 1) + "/graphql"
    return Client(
        transport=WebsocketsTransport(url=url, init_payload=authorization()),
        fetch_schema_from_transport=False,
    )
