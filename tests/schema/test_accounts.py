"""Exchange connections and account sync: the contract's operations, a ccxt-shaped fake
exchange with ccxt's exceptions, the paper exchange end to end, and secrets that never show."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import ccxt
import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from strawberry import relay

from coinql.exchanges.ccxt import Backoff
from tests.client import GraphQLClient
from tests.conftest import COINS_DIR, make_user, upload
from tests.fakes import API_KEY, SECRET, FakeAccountExchange, add_connection

SYNC = """
mutation($id: ID!) {
  syncExchangeAccount(connectionId: $id) {
    __typename
    ... on AccountSnapshot { balances { asset total valueUsd } portfolio { id value } }
    ... on ExchangeRefused { message reason }
    ... on Error { message }
  }
}
"""
LEDGER = "query($id: ID!) { portfolio(id: $id) { transactions { kind asset quantity price } } }"


class Derivatives(FakeAccountExchange):
    """A futures account: ccxt's unified positions, one of them closed (no contracts)."""

    def __init__(self) -> None:
        super().__init__()
        self.has = {"fetchPositions": True}
        self.positions: list[dict[str, Any]] | Exception = [
            {
                "symbol": "BTC/USDT:USDT",
                "side": "short",
                "contracts": 2.0,
                "contractSize": 0.001,
                "entryPrice": 61000.5,
                "markPrice": 60000.0,
                "notional": 120.0,
                "unrealizedPnl": 2.001,
                "leverage": 5,
                "liquidationPrice": 70000.0,
            },
            {"symbol": "ETH/USDT:USDT", "side": "long", "contracts": 0.0},
        ]

    async def fetch_positions(self, symbols: Any = None, params: Any = None) -> Any:
        if isinstance(self.positions, Exception):
            raise self.positions
        return self.positions


class WithPermissions(FakeAccountExchange):
    async def fetch_permissions(self) -> dict[str, bool]:
        return {"trade": True, "withdraw": True}


@pytest.fixture
def fake(app: Starlette, sleeps: Sleeps) -> Iterable[FakeAccountExchange]:
    exchange = FakeAccountExchange()

    def build(exchange_id: str, *, api_key: str, secret: str, passphrase: str | None) -> Any:
        exchange.credentials.append((api_key, secret))
        return exchange

    app.state.services.accounts.clients = build
    app.state.services.accounts.backoff = Backoff(sleep=sleeps.append_async)
    yield exchange


class Sleeps(list[float]):
    """The backoff's waits, taken at once."""

    async def append_async(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


async def test_a_paper_account_connects_syncs_and_is_removed_as_the_contract_says(
    app: Starlette, client: GraphQLClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await make_user(app, client, "ada@example.com", admin=False)
    answers = []
    added = await client.contract("accounts", "AddExchangeConnection", token=token)
    answers.append(added.body)
    connection = added.ok()["addExchangeConnection"]
    assert connection["__typename"] == "ExchangeConnection", connection
    assert connection["apiKeyMask"] == "cdef" and connection["status"] == "ACTIVE"
    assert connection["permissions"] == {"read": True, "trade": True, "withdraw": False}
    listed = (await client.contract("accounts", "Connections", token=token)).ok()
    assert [c["id"] for c in listed["exchangeConnections"]] == [connection["id"]]
    assert listed["exchangeConnections"][0]["lastSyncAt"] is None
    variables = {"connectionId": connection["id"]}
    for _ in range(2):  # a second sync books nothing again
        synced = await client.contract("accounts", "SyncAccount", variables, token=token)
        answers.append(synced.body)
        snapshot = synced.ok()["syncExchangeAccount"]
        assert snapshot["__typename"] == "AccountSnapshot", snapshot
        assert snapshot["balances"] == [
            {"asset": "USDT", "free": "10000", "used": "0", "total": "10000", "valueUsd": "10000"}
        ]
        assert snapshot["portfolio"]["value"] == "10000"
    ledger = (await client.execute(LEDGER, {"id": snapshot["portfolio"]["id"]}, token=token)).ok()
    assert ledger["portfolio"]["transactions"] == [
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "10000", "price": None}
    ]
    listed = (await client.contract("accounts", "Connections", token=token)).ok()
    assert listed["exchangeConnections"][0]["lastSyncAt"] is not None
    removed = await client.contract("accounts", "RemoveConnection", variables, token=token)
    assert removed.ok()["removeExchangeConnection"]["__typename"] == "Deleted"
    assert (await client.contract("accounts", "Connections", token=token)).ok() == {
        "exchangeConnections": []
    }
    gone = await client.contract("accounts", "SyncAccount", variables, token=token)
    assert gone.ok()["syncExchangeAccount"]["__typename"] == "NotFound"
    kept = (await client.execute(LEDGER, {"id": snapshot["portfolio"]["id"]}, token=token)).ok()
    assert kept["portfolio"] is not None  # the portfolio outlives its connection
    for seen in [str(answer) for answer in answers] + [caplog.text]:
        assert "sk-0123456789abcdefghijklmnopqrstuv" not in seen
        assert "pk-live-0123456789abcdef" not in seen


async def test_another_user_cannot_sync_or_see_a_connection(
    app: Starlette, client: GraphQLClient
) -> None:
    owner = await make_user(app, client, "ada@example.com", admin=False)
    other = await make_user(app, client, "eve@example.com", admin=False)
    added = (await client.contract("accounts", "AddExchangeConnection", token=owner)).ok()
    connection_id = added["addExchangeConnection"]["id"]
    refused = await client.execute(SYNC, {"id": connection_id}, token=other)
    assert refused.ok()["syncExchangeAccount"]["__typename"] == "NotFound"
    node = await client.execute(
        "query($id: ID!) { node(id: $id) { id } }", {"id": connection_id}, token=other
    )
    assert node.ok()["node"] is None
    assert (await client.contract("accounts", "Connections", token=other)).ok() == {
        "exchangeConnections": []
    }
    anonymous = await client.contract("accounts", "Connections")
    assert anonymous.body["data"] is None
    assert [e["extensions"]["code"] for e in anonymous.errors] == ["NotAuthenticated"]


@pytest.mark.parametrize(
    ("error", "reason", "retryable"),
    [
        (ccxt.AuthenticationError(f"invalid key {API_KEY}"), "AUTHENTICATION", False),
        (ccxt.PermissionDenied("no"), "PERMISSION", False),
        (ccxt.ExchangeNotAvailable("maintenance"), "UNAVAILABLE", True),
        (ccxt.RateLimitExceeded("slow"), "RATE_LIMITED", True),
        (ccxt.NetworkError("reset"), "NETWORK", True),
    ],
)
async def test_an_exchange_refusal_is_typed_and_stores_nothing(
    app: Starlette,
    client: GraphQLClient,
    fake: FakeAccountExchange,
    error: Exception,
    reason: str,
    retryable: bool,
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    fake.error = error
    refused = await add_connection(client, token)
    assert refused["__typename"] == "ExchangeRefused", refused
    assert (refused["exchange"], refused["reason"], refused["retryable"]) == (
        "binance",
        reason,
        retryable,
    )
    assert API_KEY not in refused["message"] and "binance" in refused["message"]
    assert (await client.contract("accounts", "Connections", token=token)).ok() == {
        "exchangeConnections": []
    }


async def test_a_key_that_can_withdraw_needs_allow_withdraw(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    exchange = WithPermissions()
    app.state.services.accounts.clients = lambda *args, **kwargs: exchange
    refused = await add_connection(client, token)
    assert (refused["__typename"], refused["field"]) == ("InvalidInput", "allowWithdraw")
    assert (await client.contract("accounts", "Connections", token=token)).ok() == {
        "exchangeConnections": []
    }
    allowed = await add_connection(client, token, allowWithdraw=True)
    assert allowed["permissions"] == {"read": True, "trade": True, "withdraw": True}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"exchange": "nope"}, "exchange"),
        ({"label": " "}, "label"),
        ({"apiKey": "short"}, "apiKey"),
        ({"secret": ""}, "secret"),
    ],
)
async def test_bad_input_names_its_field(
    app: Starlette,
    client: GraphQLClient,
    fake: FakeAccountExchange,
    fields: dict[str, str],
    field: str,
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    refused = await add_connection(client, token, **fields)
    assert (refused["__typename"], refused["field"]) == ("InvalidInput", field)
    assert fake.credentials == []  # refused before the exchange was asked


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def ccxt_trade(n: int, side: str, amount: float, price: float, timestamp: int) -> dict[str, Any]:
    return {
        "id": f"T{n}",
        "timestamp": timestamp,
        "symbol": "BTC/USDT",
        "side": side,
        "amount": amount,
        "price": price,
        "fee": {"cost": 1.0, "currency": "USDT"},
    }


async def test_a_sync_books_trades_once_and_labels_what_they_do_not_explain(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    connection = await add_connection(client, token)
    assert fake.credentials == [(API_KEY, SECRET)]
    first = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
    portfolio = first["syncExchangeAccount"]["portfolio"]["id"]
    fake.trades = [ccxt_trade(1, "buy", 0.01, 20000.0, now_ms())]
    fake.balance = {"USDT": 1000.0 - 200.0 - 1.0 + 500.0, "BTC": 0.01}
    for _ in range(2):
        synced = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
        assert synced["syncExchangeAccount"]["__typename"] == "AccountSnapshot", synced
    ledger = (await client.execute(LEDGER, {"id": portfolio}, token=token)).ok()
    assert ledger["portfolio"]["transactions"] == [
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "1000", "price": None},
        {"kind": "DEPOSIT", "asset": "USDT", "quantity": "500", "price": None},
        {"kind": "BUY", "asset": "BTC", "quantity": "0.01", "price": "20000"},
    ]


BOOK = """
query($id: ID!) {
  portfolio(id: $id) {
    baseCurrency value cash realizedPnl unrealizedPnl netDeposits feesPaid
    positions { symbol quantity averageCost costBasis lastPrice marketValue unrealizedPnl
                realizedPnl fees weight }
    valueHistory { timestamps values }
    performance { observations totalReturn cagr volatility sharpe sortino calmar maxDrawdown
                  valueAtRisk expectedShortfall }
  }
}
"""


def at_ms(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


async def test_a_synced_portfolio_answers_as_the_same_book_kept_by_hand(
    app: Starlette, client: GraphQLClient, admin: str, fake: FakeAccountExchange
) -> None:
    """On real BTC candles: an account that bought and sold, synced, has the positions, PnL,
    value history and performance (risk included) of a portfolio its owner keeps by hand
    with the transactions the sync booked."""
    report = await upload(client, (COINS_DIR / "coin_Bitcoin.csv").read_bytes(), token=admin)
    assert report["__typename"] == "ImportReport", report
    token = await make_user(app, client, "ada@example.com", admin=False)
    fake.trades = [
        ccxt_trade(1, "buy", 0.5, 7200.0, at_ms("2020-01-02T00:00:00+00:00")),
        ccxt_trade(2, "sell", 0.2, 9000.0, at_ms("2020-06-01T00:00:00+00:00")),
    ]
    fake.balance = {"USDT": 10_000 - 3600 - 1 + 1800 - 1, "BTC": 0.3}
    connection = await add_connection(client, token)
    synced = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
    portfolio = synced["syncExchangeAccount"]["portfolio"]["id"]
    ledger = (
        await client.execute(
            "query($id: ID!) { portfolio(id: $id) { transactions"
            " { kind asset quantity price fee time } } }",
            {"id": portfolio},
            token=token,
        )
    ).ok()["portfolio"]["transactions"]
    assert [(t["kind"], t["asset"]) for t in ledger] == [
        ("DEPOSIT", "USDT"),
        ("BUY", "BTC"),
        ("SELL", "BTC"),
    ]
    by_hand = (
        await client.execute(
            'mutation { createPortfolio(input: {name: "by hand", baseCurrency: "USDT"})'
            " { ... on Portfolio { id } } }",
            token=token,
        )
    ).ok()["createPortfolio"]["id"]
    added = await client.contract(
        "portfolio",
        "AddTransactions",
        {"portfolioId": by_hand, "transactions": ledger},
        token=token,
    )
    assert added.ok()["addTransactions"]["__typename"] == "Portfolio", added.body
    synced_book = (await client.execute(BOOK, {"id": portfolio}, token=token)).ok()
    hand_book = (await client.execute(BOOK, {"id": by_hand}, token=token)).ok()
    assert synced_book == hand_book
    book = synced_book["portfolio"]
    assert book["positions"][0]["quantity"] == "0.3" and book["realizedPnl"] != "0"
    assert book["performance"]["observations"] > 300 and book["performance"]["sharpe"] is not None


async def test_concurrent_syncs_book_once(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    connection = await add_connection(client, token)
    fake.trades = [ccxt_trade(1, "buy", 0.01, 20000.0, now_ms())]
    fake.balance = {"USDT": 799.0, "BTC": 0.01}
    answers = await asyncio.gather(
        *(client.execute(SYNC, {"id": connection["id"]}, token=token) for _ in range(4))
    )
    kinds = sorted(a.ok()["syncExchangeAccount"]["__typename"] for a in answers)
    assert kinds.count("AccountSnapshot") >= 1
    assert set(kinds) <= {"AccountSnapshot", "Conflict"}
    portfolio = next(
        a.ok()["syncExchangeAccount"]["portfolio"]["id"]
        for a in answers
        if a.ok()["syncExchangeAccount"]["__typename"] == "AccountSnapshot"
    )
    ledger = (await client.execute(LEDGER, {"id": portfolio}, token=token)).ok()
    buys = [t for t in ledger["portfolio"]["transactions"] if t["kind"] == "BUY"]
    deposits = [t for t in ledger["portfolio"]["transactions"] if t["kind"] == "DEPOSIT"]
    assert len(buys) == 1 and len(deposits) == 1


async def test_a_failed_sync_marks_the_connection_and_says_why(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange, sleeps: Sleeps
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    connection = await add_connection(client, token)
    fake.error = ccxt.RateLimitExceeded("429")
    refused = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
    assert refused["syncExchangeAccount"]["reason"] == "RATE_LIMITED"
    assert len(sleeps) == Backoff().max_attempts - 1  # retried first, as ingestion does
    listed = (await client.contract("accounts", "Connections", token=token)).ok()
    assert listed["exchangeConnections"][0]["status"] == "ERROR"
    assert "rate limiting" in listed["exchangeConnections"][0]["lastError"]
    fake.error = None
    synced = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
    assert synced["syncExchangeAccount"]["__typename"] == "AccountSnapshot"
    listed = (await client.contract("accounts", "Connections", token=token)).ok()
    assert listed["exchangeConnections"][0]["status"] == "ACTIVE"
    assert listed["exchangeConnections"][0]["lastError"] is None


async def test_a_passing_rate_limit_is_waited_out_within_the_sync(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange, sleeps: Sleeps
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    connection = await add_connection(client, token)
    fake.flaky = [ccxt.RateLimitExceeded("429"), ccxt.RequestTimeout("slow")]
    synced = (await client.execute(SYNC, {"id": connection["id"]}, token=token)).ok()
    assert synced["syncExchangeAccount"]["__typename"] == "AccountSnapshot", synced
    assert len(sleeps) == 2 and all(0 <= wait <= 2 for wait in sleeps)  # 1 s, then 2 s at most


POSITIONS = """
mutation($id: ID!) {
  syncExchangeAccount(connectionId: $id) {
    __typename
    ... on AccountSnapshot {
      balances { asset total }
      positions { symbol side contracts contractSize entryPrice markPrice notional
                  unrealizedPnl leverage liquidationPrice }
    }
    ... on Error { message }
  }
}
"""


async def test_a_derivatives_account_keeps_its_open_positions_in_the_snapshot(
    app: Starlette, client: GraphQLClient
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    exchange = Derivatives()
    app.state.services.accounts.clients = lambda *args, **kwargs: exchange
    connection = await add_connection(client, token)
    synced = (await client.execute(POSITIONS, {"id": connection["id"]}, token=token)).ok()
    assert synced["syncExchangeAccount"]["positions"] == [
        {
            "symbol": "BTC/USDT:USDT",
            "side": "short",
            "contracts": "2",
            "contractSize": "0.001",
            "entryPrice": "61000.5",
            "markPrice": "60000",
            "notional": "120",
            "unrealizedPnl": "2.001",
            "leverage": "5",
            "liquidationPrice": "70000",
        }
    ]
    async with app.state.services.reader() as session:
        stored = await session.exec(text("SELECT positions FROM account_snapshots"))
        (row,) = stored.all()
    assert "BTC/USDT:USDT" in str(row[0]) and "ETH" not in str(row[0])
    # A spot-only key on the same exchange: ccxt says NotSupported, so there are none to show.
    exchange.positions = ccxt.NotSupported("fetchPositions() is not supported for spot")
    spot = (await client.execute(POSITIONS, {"id": connection["id"]}, token=token)).ok()
    assert spot["syncExchangeAccount"]["positions"] is None
    # Any other failure fails the sync, as a balance failure does.
    exchange.positions = ccxt.AuthenticationError("key expired")
    refused = (await client.execute(POSITIONS, {"id": connection["id"]}, token=token)).ok()
    assert refused["syncExchangeAccount"]["__typename"] == "ExchangeRefused"


async def test_a_spot_account_has_no_positions(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    connection = await add_connection(client, token)
    synced = (await client.execute(POSITIONS, {"id": connection["id"]}, token=token)).ok()
    assert synced["syncExchangeAccount"]["positions"] is None


RENAME = """
mutation($id: ID!, $label: String!) {
  renameExchangeConnection(id: $id, label: $label) {
    __typename
    ... on ExchangeConnection { id label }
    ... on InvalidInput { field message }
    ... on Error { message }
  }
}
"""


async def test_a_connection_is_relabelled_by_its_owner_only(
    app: Starlette, client: GraphQLClient, fake: FakeAccountExchange
) -> None:
    token = await make_user(app, client, "ada@example.com", admin=False)
    other = await make_user(app, client, "bob@example.com", admin=False)
    connection = await add_connection(client, token)
    renamed = (
        await client.execute(RENAME, {"id": connection["id"], "label": " spot "}, token=token)
    ).ok()
    assert renamed["renameExchangeConnection"] == {
        "__typename": "ExchangeConnection",
        "id": connection["id"],
        "label": "spot",
    }
    blank = (await client.execute(RENAME, {"id": connection["id"], "label": " "}, token=token)).ok()
    assert blank["renameExchangeConnection"]["field"] == "label"
    theirs = (
        await client.execute(RENAME, {"id": connection["id"], "label": "mine"}, token=other)
    ).ok()
    assert theirs["renameExchangeConnection"]["__typename"] == "NotFound"
    listed = (await client.contract("accounts", "Connections", token=token)).ok()
    assert listed["exchangeConnections"][0]["label"] == "spot"


AUDIT = """
query($first: Int, $after: String, $userId: ID) {
  auditLog(first: $first, after: $after, userId: $userId) {
    edges { cursor node { action target address } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def actions(client: GraphQLClient, token: str, **variables: Any) -> list[str]:
    log = (await client.execute(AUDIT, variables, token=token)).ok()["auditLog"]
    return [edge["node"]["action"] for edge in log["edges"]]


async def test_the_audit_log_records_sensitive_actions_for_their_user_only(
    app: Starlette, client: GraphQLClient
) -> None:
    ada = (await client.sign_up("ada@example.com"))["accessToken"]
    wrong = {"email": "ada@example.com", "password": "not the password at all"}
    assert (await client.contract("server", "Login", wrong)).ok()["login"]["__typename"] == (
        "InvalidCredentials"
    )
    added = (await client.contract("accounts", "AddExchangeConnection", token=ada)).ok()
    variables = {"connectionId": added["addExchangeConnection"]["id"]}
    await client.contract("accounts", "SyncAccount", variables, token=ada)
    await client.contract("accounts", "RemoveConnection", variables, token=ada)
    contract = (await client.contract("accounts", "AuditLog", token=ada)).ok()
    nodes = [edge["node"] for edge in contract["auditLog"]["edges"]]
    assert [node["action"] for node in nodes] == [
        "CONNECTION_REMOVED",
        "ACCOUNT_SYNCED",
        "CONNECTION_ADDED",
        "LOGIN_FAILED",
        "REGISTERED",
    ]
    assert all(node["address"] == "127.0.0.1" and node["at"] for node in nodes)
    first = (await client.execute(AUDIT, {"first": 2}, token=ada)).ok()["auditLog"]
    assert first["pageInfo"]["hasNextPage"]
    rest = await actions(client, ada, first=10, after=first["pageInfo"]["endCursor"])
    assert rest == ["CONNECTION_ADDED", "LOGIN_FAILED", "REGISTERED"]
    eve = (await client.sign_up("eve@example.com"))["accessToken"]
    assert await actions(client, eve) == ["REGISTERED"]
    ada_id = (await client.execute("{ me { id } }", token=ada)).ok()["me"]["id"]
    refused = await client.execute(AUDIT, {"userId": ada_id}, token=eve)
    assert refused.body["data"]["auditLog"] is None
    assert [e["extensions"]["code"] for e in refused.errors] == ["Forbidden"]
    admin = await make_user(app, client, "root@example.com", admin=True)
    assert len(await actions(client, admin, userId=ada_id)) == 5
    assert "LOGIN" in await actions(client, admin, first=50)  # everyone's, the admin's own login
    unknown = {"email": "nobody@example.com", "password": "not the password at all"}
    await client.contract("server", "Login", unknown)
    everyone = (await client.execute(AUDIT, {"first": 1}, token=admin)).ok()["auditLog"]
    assert everyone["edges"][0]["node"] == {
        "action": "LOGIN_FAILED",
        "target": "nobody@example.com",
        "address": "127.0.0.1",
    }
    bad = await client.execute(AUDIT, {"after": "bm90IGEgY3Vyc29y"}, token=ada)
    assert [e["extensions"]["code"] for e in bad.errors] == ["InvalidInput"]


async def test_changing_the_password_revokes_every_session(
    app: Starlette, client: GraphQLClient
) -> None:
    first = await client.sign_up("ada@example.com")
    login = {"email": "ada@example.com", "password": "correct horse battery staple"}
    second = (await client.contract("server", "Login", login)).ok()["login"]
    passwords = {
        "currentPassword": "correct horse battery staple",
        "newPassword": "another long passphrase",
    }
    wrong = {**passwords, "currentPassword": "not it at all, no"}
    refused = await client.contract("accounts", "ChangePassword", wrong, token=first["accessToken"])
    assert refused.ok()["changePassword"]["__typename"] == "InvalidCredentials"
    weak = {**passwords, "newPassword": "short"}
    refused = await client.contract("accounts", "ChangePassword", weak, token=first["accessToken"])
    assert refused.ok()["changePassword"]["__typename"] == "WeakPassword"
    changed = await client.contract(
        "accounts", "ChangePassword", passwords, token=first["accessToken"]
    )
    payload = changed.ok()["changePassword"]
    assert payload["__typename"] == "AuthPayload"
    for old in (first, second):
        me = await client.execute("{ me { email } }", token=old["accessToken"])
        assert [e["extensions"]["code"] for e in me.errors] == ["InvalidToken"]
        reused = await client.contract("server", "Refresh", {"refreshToken": old["refreshToken"]})
        assert reused.ok()["refreshToken"]["__typename"] == "InvalidToken"
    me = (await client.execute("{ me { email } }", token=payload["accessToken"])).ok()
    assert me["me"]["email"] == "ada@example.com"
    assert (await client.contract("server", "Login", login)).ok()["login"]["__typename"] == (
        "InvalidCredentials"
    )
    new_login = {"email": "ada@example.com", "password": "another long passphrase"}
    assert (await client.contract("server", "Login", new_login)).ok()["login"]["__typename"] == (
        "AuthPayload"
    )
    assert "PASSWORD_CHANGED" in await actions(client, payload["accessToken"])


KEYED = "query { me { email } apiKeys { prefix lastUsedAt } }"


async def new_key(client: GraphQLClient, token: str, scopes: list[str]) -> dict[str, Any]:
    created = await client.execute(
        'mutation($scopes: [ApiScope!]!) { createApiKey(input: {name: "script", scopes:'
        " $scopes}) { __typename ... on CreatedApiKey { key apiKey { id prefix scopes } }"
        " ... on Error { message } } }",
        {"scopes": scopes},
        token=token,
    )
    return dict(created.ok()["createApiKey"])


def keyed(key: str) -> dict[str, str]:
    return {"Authorization": f"ApiKey {key}"}


async def test_an_api_key_is_shown_once_works_in_its_scope_and_is_revoked(
    app: Starlette, client: GraphQLClient
) -> None:
    token = (await client.sign_up("ada@example.com"))["accessToken"]
    created = (await client.contract("accounts", "CreateApiKey", token=token)).ok()
    made = created["createApiKey"]
    assert made["__typename"] == "CreatedApiKey", made
    key, prefix = made["key"], made["apiKey"]["prefix"]
    assert key.startswith(f"cq_{prefix}_") and made["apiKey"]["scopes"] == ["READ"]
    assert made["apiKey"]["lastUsedAt"] is None
    listed = (await client.contract("accounts", "ApiKeys", token=token)).ok()
    assert key not in str(listed) and [k["prefix"] for k in listed["apiKeys"]] == [prefix]
    used = (await client.execute(KEYED, headers=keyed(key))).ok()
    assert used["me"]["email"] == "ada@example.com"
    assert used["apiKeys"][0]["lastUsedAt"] is not None
    # READ may not change money or credentials; the refusal names what it needs.
    refused = await client.contract("portfolio", "CreatePortfolio", headers=keyed(key))
    assert refused.body["data"]["createPortfolio"] is None
    assert [e["extensions"]["code"] for e in refused.errors] == ["Forbidden"]
    assert "needs TRADE" in refused.errors[0]["message"]
    for operation in ("AddExchangeConnection", "CreateApiKey"):
        answer = await client.contract("accounts", operation, headers=keyed(key))
        assert "Forbidden" in str(answer.body), answer.body
    trade = await new_key(client, token, ["TRADE", "READ"])
    assert trade["apiKey"]["scopes"] == ["READ", "TRADE"]
    made_with_trade = await client.contract(
        "portfolio", "CreatePortfolio", headers=keyed(trade["key"])
    )
    assert made_with_trade.ok()["createPortfolio"]["__typename"] == "Portfolio"
    no_keys_from_keys = await new_key_with_key(client, trade["key"])
    assert no_keys_from_keys["__typename"] == "Forbidden"
    variables = {"apiKeyId": made["apiKey"]["id"]}
    revoked = await client.contract("accounts", "RevokeApiKey", variables, token=token)
    assert revoked.ok()["revokeApiKey"]["__typename"] == "Deleted"
    again = await client.contract("accounts", "RevokeApiKey", variables, token=token)
    assert again.ok()["revokeApiKey"]["__typename"] == "NotFound"
    gone = await client.execute(KEYED, headers=keyed(key))
    assert {e["extensions"]["code"] for e in gone.errors} == {"InvalidToken"}
    for bad in ("cq_nope", key[:-1] + ("A" if key[-1] != "A" else "B"), "x" * 60):
        wrong = await client.execute(KEYED, headers=keyed(bad))
        assert {e["extensions"]["code"] for e in wrong.errors} == {"InvalidToken"}
    actions_logged = await actions(client, token)
    assert actions_logged[:3] == ["API_KEY_REVOKED", "API_KEY_CREATED", "API_KEY_CREATED"]


async def new_key_with_key(client: GraphQLClient, key: str) -> dict[str, Any]:
    created = await client.execute(
        'mutation { createApiKey(input: {name: "child", scopes: [TRADE]}) { __typename } }',
        headers=keyed(key),
    )
    return dict(created.ok()["createApiKey"])


async def test_another_users_key_cannot_be_revoked(app: Starlette, client: GraphQLClient) -> None:
    ada = (await client.sign_up("ada@example.com"))["accessToken"]
    eve = (await client.sign_up("eve@example.com"))["accessToken"]
    made = await new_key(client, ada, ["READ"])
    variables = {"apiKeyId": made["apiKey"]["id"]}
    refused = await client.contract("accounts", "RevokeApiKey", variables, token=eve)
    assert refused.ok()["revokeApiKey"]["__typename"] == "NotFound"
    assert (await client.execute(KEYED, headers=keyed(made["key"]))).ok()["me"]


CHANGE_EMAIL = """
mutation($password: String!, $email: String!) {
  changeEmail(password: $password, newEmail: $email) {
    __typename ... on User { email } ... on Error { message }
  }
}
"""
DELETE_ACCOUNT = """
mutation($password: String!) { deleteAccount(password: $password) { __typename } }
"""
PASSWORD = "correct horse battery staple"


async def test_the_email_changes_with_the_password_only(
    app: Starlette, client: GraphQLClient
) -> None:
    ada = (await client.sign_up("ada@example.com"))["accessToken"]
    await client.sign_up("eve@example.com")
    wrong = {"password": "not it at all, no", "email": "ada2@example.com"}
    answer = (await client.execute(CHANGE_EMAIL, wrong, token=ada)).ok()["changeEmail"]
    assert answer["__typename"] == "InvalidCredentials"
    taken = {"password": PASSWORD, "email": "EVE@example.com"}
    answer = (await client.execute(CHANGE_EMAIL, taken, token=ada)).ok()["changeEmail"]
    assert answer["__typename"] == "EmailTaken"
    moved = {"password": PASSWORD, "email": "Ada.New@Example.com"}
    answer = (await client.execute(CHANGE_EMAIL, moved, token=ada)).ok()["changeEmail"]
    assert answer == {"__typename": "User", "email": "ada.new@example.com"}
    login = {"email": "ada.new@example.com", "password": PASSWORD}
    assert (await client.contract("server", "Login", login)).ok()["login"]["__typename"] == (
        "AuthPayload"
    )
    assert "EMAIL_CHANGED" in await actions(client, ada)


async def owned_rows(app: Starlette, user_id: uuid.UUID) -> dict[str, int]:
    """How many rows of some tables a user owns."""
    owners = {"portfolios": "owner_id", "exchange_connections": "owner_id", "api_keys": "owner_id"}
    found = {}
    async with app.state.services.engine.connect() as connection:
        value = user_id.hex if connection.dialect.name == "sqlite" else user_id
        for table, column in {**owners, "refresh_tokens": "user_id"}.items():
            query = text(f"SELECT count(*) FROM {table} WHERE {column} = :user")
            found[table] = (await connection.execute(query, {"user": value})).scalar_one()
    return found


async def test_deleting_the_account_removes_everything_it_owns(
    app: Starlette, client: GraphQLClient
) -> None:
    ada = (await client.sign_up("ada@example.com"))["accessToken"]
    eve = (await client.sign_up("eve@example.com"))["accessToken"]
    for token in (ada, eve):
        await client.contract("accounts", "AddExchangeConnection", token=token)
        await client.contract("portfolio", "CreatePortfolio", token=token)
    key = (await new_key(client, ada, ["READ"]))["key"]
    me = (await client.execute("{ me { id } }", token=ada)).ok()["me"]["id"]
    ada_id = uuid.UUID(relay.GlobalID.from_id(me).node_id)
    assert 0 not in (await owned_rows(app, ada_id)).values()  # the check below can fail
    refused = (await client.execute(DELETE_ACCOUNT, {"password": "nope, not it"}, token=ada)).ok()
    assert refused["deleteAccount"]["__typename"] == "InvalidCredentials"
    deleted = (await client.execute(DELETE_ACCOUNT, {"password": PASSWORD}, token=ada)).ok()
    assert deleted["deleteAccount"]["__typename"] == "Deleted"
    for credential in ({"token": ada}, {"headers": keyed(key)}):
        gone = await client.execute("{ me { email } }", **credential)  # type: ignore[arg-type]
        assert {e["extensions"]["code"] for e in gone.errors} == {"InvalidToken"}
    login = {"email": "ada@example.com", "password": PASSWORD}
    assert (await client.contract("server", "Login", login)).ok()["login"]["__typename"] == (
        "InvalidCredentials"
    )
    assert set((await owned_rows(app, ada_id)).values()) == {0}
    async with app.state.services.engine.connect() as connection:
        kept = (
            await connection.execute(
                text("SELECT count(*) FROM audit_log WHERE action = 'ACCOUNT_DELETED'")
            )
        ).scalar_one()
    assert kept == 1
    assert (await client.contract("accounts", "Connections", token=eve)).ok()["exchangeConnections"]
