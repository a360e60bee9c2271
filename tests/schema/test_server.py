"""The operations of ../shared/contract/server.graphql, and bad input around them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select
from starlette.applications import Starlette

from coinql import __version__
from coinql.domain.auth import issue_access_token
from coinql.store.auth import RefreshToken, User
from tests.client import GraphQLClient
from tests.conftest import TEST_SECRET, Backend

PASSWORD = "correct horse battery staple"


async def count(app: Starlette, model: type[User] | type[RefreshToken]) -> int:
    async with app.state.services.reader() as session:
        result = await session.exec(select(func.count()).select_from(model))
        return int(result.one())


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
