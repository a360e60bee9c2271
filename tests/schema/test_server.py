"""The operations of ../shared/contract/server.graphql, and bad input around them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from coinql import __version__
from coinql.app import create_app
from coinql.domain.auth import issue_access_token
from coinql.store.auth import RefreshToken, User
from tests.client import GraphQLClient, contract_operations
from tests.conftest import CONTRACT_DIR, TEST_SECRET, Backend, make_settings
from tests.helpers import count

PASSWORD = "correct horse battery staple"


async def test_server_info_names_the_backends(client: GraphQLClient, backend: Backend) -> None:
    info = (await client.contract("server", "ServerInfo")).ok()["serverInfo"]
    expected = (
        {"database": "sqlite", "broadcast": "memory", "jobQueue": "in-process"}
        if backend.name == "sqlite"
        else {"database": "postgresql", "broadcast": "redis", "jobQueue": "redis"}
    )
    assert info == {"version": __version__, "dataSource": "import", **expected}


async def test_register_login_me_refresh_logout(client: GraphQLClient, app: Starlette) -> None:
    registered = await client.sign_up()
    assert registered["expiresIn"] == 15 * 60
    assert registered["user"]["email"] == "ada@example.com"

    me = (await client.contract("server", "Me", token=registered["accessToken"])).ok()["me"]
    assert me == registered["user"]

    login = (
        await client.contract(
            "server", "Login", {"email": "Ada@Example.com ", "password": PASSWORD}
        )
    ).ok()["login"]
    assert login["__typename"] == "AuthPayload"
    assert login["user"]["id"] == registered["user"]["id"]

    refreshed = (
        await client.contract("server", "Refresh", {"refreshToken": login["refreshToken"]})
    ).ok()["refreshToken"]
    assert refreshed["__typename"] == "AuthPayload"
    assert refreshed["refreshToken"] != login["refreshToken"]
    me = (await client.contract("server", "Me", token=refreshed["accessToken"])).ok()["me"]
    assert me["id"] == registered["user"]["id"]

    logout = await client.contract("server", "Logout", {"refreshToken": refreshed["refreshToken"]})
    assert logout.ok() == {"logout": True}
    again = await client.contract("server", "Logout", {"refreshToken": refreshed["refreshToken"]})
    assert again.ok() == {"logout": False}

    # Logging out ends that login's access tokens too; the first login's session lives on.
    revoked = await client.contract("server", "Me", token=refreshed["accessToken"])
    assert revoked.data == {"me": None}
    assert "invalid or expired" in revoked.errors[0]["message"]
    still = await client.contract("server", "Me", token=registered["accessToken"])
    assert still.ok()["me"]["id"] == registered["user"]["id"]


async def test_me_is_null_when_anonymous(client: GraphQLClient) -> None:
    assert (await client.contract("server", "Me")).ok() == {"me": None}


async def test_node_resolves_only_the_callers_own_user(client: GraphQLClient) -> None:
    ada = await client.sign_up("ada@example.com")
    bob = await client.sign_up("bob@example.com")
    query = "query($id: ID!) { node(id: $id) { id ... on User { email } } }"
    own = await client.execute(query, {"id": ada["user"]["id"]}, token=ada["accessToken"])
    assert own.ok()["node"] == {"id": ada["user"]["id"], "email": "ada@example.com"}
    other = await client.execute(query, {"id": bob["user"]["id"]}, token=ada["accessToken"])
    assert other.ok()["node"] is None
    anonymous = await client.execute(query, {"id": ada["user"]["id"]})
    assert anonymous.ok()["node"] is None


@pytest.mark.parametrize(
    ("email", "password", "typename", "field"),
    [
        ("ada@example.com", "short", "WeakPassword", "password"),
        ("ada@example.com", " " * 12, "WeakPassword", "password"),
        ("not-an-email", PASSWORD, "InvalidInput", "email"),
        ("ada@example.com", "x" * 2000, "InvalidInput", "password"),
    ],
)
async def test_register_rejects_bad_input_and_writes_nothing(
    client: GraphQLClient, app: Starlette, email: str, password: str, typename: str, field: str
) -> None:
    response = await client.execute(
        "mutation($e: String!, $p: String!) { register(email: $e, password: $p) {"
        " __typename ... on Error { message } ... on InvalidInput { field }"
        " ... on WeakPassword { field minLength } } }",
        {"e": email, "p": password},
    )
    result = response.ok()["register"]
    assert result["__typename"] == typename
    assert result["field"] == field
    assert field in result["message"]
    assert await count(app, User) == 0


async def test_register_twice_is_email_taken(client: GraphQLClient, app: Starlette) -> None:
    await client.sign_up("ada@example.com")
    again = await client.contract(
        "server", "Register", {"email": "ADA@example.com", "password": PASSWORD}
    )
    assert again.ok()["register"] == {
        "__typename": "EmailTaken",
        "message": "an account with this email already exists",
    }
    assert await count(app, User) == 1


async def test_login_failure_says_the_same_for_unknown_email_and_wrong_password(
    client: GraphQLClient, app: Starlette
) -> None:
    await client.sign_up()
    tokens_before = await count(app, RefreshToken)
    wrong_password = await client.contract(
        "server", "Login", {"email": "ada@example.com", "password": "wrong password!"}
    )
    unknown = await client.contract(
        "server", "Login", {"email": "eve@example.com", "password": PASSWORD}
    )
    assert wrong_password.ok() == unknown.ok()
    assert wrong_password.ok()["login"] == {
        "__typename": "InvalidCredentials",
        "message": "email or password is incorrect",
    }
    assert await count(app, RefreshToken) == tokens_before


async def test_reusing_a_rotated_refresh_token_revokes_the_family(
    client: GraphQLClient, app: Starlette
) -> None:
    first = await client.sign_up()
    second = (
        await client.contract("server", "Refresh", {"refreshToken": first["refreshToken"]})
    ).ok()["refreshToken"]

    replay = await client.contract("server", "Refresh", {"refreshToken": first["refreshToken"]})
    assert replay.ok()["refreshToken"]["__typename"] == "InvalidToken"
    assert "already used" in replay.ok()["refreshToken"]["message"]

    # The thief's replay ended the legitimate session too: its newest token is dead...
    after = await client.contract("server", "Refresh", {"refreshToken": second["refreshToken"]})
    assert after.ok()["refreshToken"]["__typename"] == "InvalidToken"
    # ...and so are the access tokens of that login.
    me = await client.contract("server", "Me", token=second["accessToken"])
    assert me.data == {"me": None} and me.errors


REFRESH = contract_operations(CONTRACT_DIR, "server")["Refresh"]


async def test_a_refresh_token_used_many_times_at_once_rotates_once(
    client: GraphQLClient, app: Starlette
) -> None:
    """Ten identical uses in one batch, then eight parallel requests: one rotation each time;
    every other use is reuse, which revokes the family (the winner's new token with it)."""
    first = await client.sign_up()
    operation = {"query": REFRESH, "variables": {"refreshToken": first["refreshToken"]}}
    batch = await client.http.post("/graphql", json=[operation] * 10)
    names = [item["data"]["refreshToken"]["__typename"] for item in batch.json()]
    assert names.count("AuthPayload") == 1 and names.count("InvalidToken") == 9
    winner = next(
        item["data"]["refreshToken"]
        for item in batch.json()
        if item["data"]["refreshToken"]["__typename"] == "AuthPayload"
    )
    after = await client.contract("server", "Refresh", {"refreshToken": winner["refreshToken"]})
    assert after.ok()["refreshToken"]["__typename"] == "InvalidToken"

    second = await client.sign_up("bob@example.com")
    answers = await asyncio.gather(
        *(
            client.contract("server", "Refresh", {"refreshToken": second["refreshToken"]})
            for _ in range(8)
        )
    )
    names = [answer.ok()["refreshToken"]["__typename"] for answer in answers]
    assert names.count("AuthPayload") == 1 and names.count("InvalidToken") == 7


async def test_register_hashes_the_password_for_a_taken_email_too(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A taken email must cost what a new one costs, or the answer's time tells who has an
    account: the password is hashed on both paths (counted, not timed)."""
    from coinql.domain import auth

    hashed: list[str] = []
    hash_password = auth.hash_password
    monkeypatch.setattr(auth, "hash_password", lambda p: hashed.append(p) or hash_password(p))
    await client.sign_up("ada@example.com")
    taken = await client.contract(
        "server", "Register", {"email": "ada@example.com", "password": PASSWORD}
    )
    assert taken.ok()["register"]["__typename"] == "EmailTaken"
    assert hashed == [PASSWORD, PASSWORD]


async def test_register_is_throttled_per_address(backend: Backend, tmp_path: Path) -> None:
    """Sign-ups count per client address, taken emails included, atomically: parallel
    batches create no more accounts than the limit."""
    app = create_app(make_settings(backend, tmp_path, registrations_per_address=3))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            client = GraphQLClient(http, CONTRACT_DIR)
            register = contract_operations(CONTRACT_DIR, "server")["Register"]

            async def batch(request: int) -> list[str]:
                operations = [
                    {
                        "query": register,
                        "variables": {"email": f"u{request}-{i}@example.com", "password": PASSWORD},
                    }
                    for i in range(4)
                ]
                response = await http.post("/graphql", json=operations)
                return [item["data"]["register"]["__typename"] for item in response.json()]

            found = await asyncio.gather(*map(batch, range(4)))
            names = [name for answer in found for name in answer]
            assert names.count("AuthPayload") == 3 and names.count("RateLimited") == 13
            assert await count(app, User) == 3
            refused = await client.contract(
                "server", "Register", {"email": "late@example.com", "password": PASSWORD}
            )
            assert refused.ok()["register"]["__typename"] == "RateLimited"
            assert int(refused.headers["retry-after"]) >= 1


async def test_unknown_refresh_token_is_invalid(client: GraphQLClient) -> None:
    response = await client.contract("server", "Refresh", {"refreshToken": "made-up"})
    assert response.ok()["refreshToken"]["__typename"] == "InvalidToken"


async def test_expired_access_token_is_rejected(client: GraphQLClient) -> None:
    registered = await client.sign_up()
    payload = await _claims_of(client, registered)
    expired = issue_access_token(
        TEST_SECRET,
        user_id=payload[0],
        session_id=payload[1],
        now=datetime.now(UTC) - timedelta(hours=1),
        ttl=timedelta(minutes=15),
    )
    response = await client.contract("server", "Me", token=expired)
    assert response.data == {"me": None}
    assert response.errors[0]["message"] == "access token is invalid or expired"


async def test_forged_access_token_is_rejected(client: GraphQLClient) -> None:
    registered = await client.sign_up()
    user_id, session_id = await _claims_of(client, registered)
    forged = issue_access_token(
        "another-secret-key-of-sufficient-length-for-hs256!!",
        user_id=user_id,
        session_id=session_id,
        now=datetime.now(UTC),
        ttl=timedelta(minutes=15),
    )
    for token in (forged, registered["accessToken"][:-4] + "AAAA", "not.a.jwt"):
        response = await client.contract("server", "Me", token=token)
        assert response.errors[0]["message"] == "access token is invalid or expired"


async def test_authorization_header_must_be_bearer(client: GraphQLClient) -> None:
    response = await client.contract("server", "Me", headers={"Authorization": "Basic abc"})
    assert "Bearer" in response.errors[0]["message"]


async def _claims_of(client: GraphQLClient, registered: dict[str, object]) -> tuple[object, object]:
    from coinql.domain.auth import read_access_token

    claims = read_access_token(TEST_SECRET, str(registered["accessToken"]), now=datetime.now(UTC))
    return claims.user_id, claims.session_id


async def test_malformed_json_is_a_clear_400(client: GraphQLClient) -> None:
    response = await client.http.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Unable to parse request body as JSON"}]}


async def test_unknown_operation_name_is_an_error(client: GraphQLClient) -> None:
    response = await client.execute("query A { me { id } }", operation_name="B")
    assert response.status_code == 400
    assert response.body == {"errors": [{"message": 'Unknown operation named "B".'}]}


async def test_wrong_variable_type_names_the_variable(
    client: GraphQLClient, app: Starlette
) -> None:
    response = await client.contract("server", "Register", {"email": 42, "password": PASSWORD})
    assert response.body.get("data") is None
    message = response.errors[0]["message"]
    assert "$email" in message and "String" in message
    assert await count(app, User) == 0


async def test_graphiql_is_served_to_browsers(client: GraphQLClient) -> None:
    response = await client.http.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_request_id_is_returned_and_kept_when_plain(client: GraphQLClient) -> None:
    generated = await client.contract("server", "ServerInfo")
    assert len(generated.headers["x-request-id"]) == 32
    kept = await client.contract("server", "ServerInfo", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    replaced = await client.contract("server", "ServerInfo", headers={"X-Request-ID": "a b;<"})
    assert len(replaced.headers["x-request-id"]) == 32
