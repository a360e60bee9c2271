"""Exchange accounts through ccxt's interface: verification, balances, trades and failures."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from coinql.domain.ledger import CostBasis, replay
from coinql.domain.paper import PaperBook
from coinql.domain.reconcile import reconcile
from coinql.exchanges.accounts import (
    AccountFailure,
    ExchangeAccountError,
    Permissions,
    classify,
    create_account_client,
    fetch_balances,
    fetch_trades_since,
    to_exchange_trade,
    verify,
)
from coinql.exchanges.paper import PaperExchange

SECRET = "sk-0123456789abcdefghijklmnopqrstuv"


def ccxt_trade(n: int, timestamp: int, side: str = "buy") -> dict[str, Any]:
    return {
        "id": f"t{n}",
        "order": f"o{n}",
        "timestamp": timestamp,
        "symbol": "BTC/USDT",
        "side": side,
        "price": 100.1,
        "amount": 0.1,
        "cost": 10.01,
        "fee": {"cost": 0.01, "currency": "USDT"},
    }


class FakeExchange:
    """A ccxt-shaped account: pages of trades by `since`, or a ccxt error on every call."""

    id = "fakex"

    def __init__(self, trades: Iterable[dict[str, Any]] = (), error: Exception | None = None):
        self.trades = sorted(trades, key=lambda t: t["timestamp"])
        self.error = error
        self.sandbox = False
        self.calls: list[int | None] = []

    def set_sandbox_mode(self, enabled: bool) -> None:
        if isinstance(self.error, ccxt.NotSupported):
            raise self.error
        self.sandbox = enabled

    async def fetch_balance(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {
            "free": {"USDT": 900.5, "BTC": 0.1, "ETH": 0.0},
            "used": {"USDT": 100.0, "BTC": 0.0, "ETH": 0.0},
            "total": {"USDT": 1000.5, "BTC": 0.1, "ETH": 0.0},
        }

    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self.calls.append(since)
        page = [t for t in self.trades if since is None or t["timestamp"] >= since]
        return page[:limit]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (ccxt.AuthenticationError(f"bad key {SECRET}"), AccountFailure.AUTHENTICATION),
        (ccxt.PermissionDenied(f"no {SECRET}"), AccountFailure.PERMISSION),
        (ccxt.ExchangeNotAvailable("maintenance"), AccountFailure.UNAVAILABLE),
        (ccxt.RateLimitExceeded("slow down"), AccountFailure.RATE_LIMITED),
        (ccxt.DDoSProtection("slow down"), AccountFailure.RATE_LIMITED),
        (ccxt.RequestTimeout("timeout"), AccountFailure.NETWORK),
        (ccxt.NetworkError("reset"), AccountFailure.NETWORK),
        (ccxt.ExchangeError("boom"), AccountFailure.EXCHANGE),
    ],
)
async def test_each_ccxt_failure_is_typed_names_the_exchange_and_never_echoes(
    error: Exception, failure: AccountFailure
) -> None:
    with pytest.raises(ExchangeAccountError) as raised:
        await verify(FakeExchange(error=error), sandbox=False)
    assert raised.value.failure is failure
    assert raised.value.exchange == "fakex" and "fakex" in raised.value.message
    assert SECRET not in raised.value.message and str(error) not in raised.value.message
    assert raised.value.retryable == (
        failure in {AccountFailure.UNAVAILABLE, AccountFailure.RATE_LIMITED, AccountFailure.NETWORK}
    )


async def test_an_exchange_without_a_sandbox_is_said_so() -> None:
    with pytest.raises(ExchangeAccountError) as raised:
        await verify(FakeExchange(error=ccxt.NotSupported("no testnet")), sandbox=True)
    assert raised.value.failure is AccountFailure.NO_SANDBOX


async def test_verify_sets_sandbox_and_reports_unknown_rights_as_none() -> None:
    fake = FakeExchange()
    assert await verify(fake, sandbox=True) == Permissions(read=True, trade=None, withdraw=None)
    assert fake.sandbox


async def test_balances_are_decimals_without_zero_currencies() -> None:
    assert await fetch_balances(FakeExchange()) == {
        "USDT": (Decimal("900.5"), Decimal("100"), Decimal("1000.5")),
        "BTC": (Decimal("0.1"), Decimal("0"), Decimal("0.1")),
    }


async def test_trades_are_paged_by_time_and_each_id_kept_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("coinql.exchanges.accounts.TRADES_PAGE", 3)
    # Two trades share the page boundary's timestamp: the next page starts at it again.
    stamps = [1_000, 2_000, 3_000, 3_000, 4_000, 5_000, 6_000]
    fake = FakeExchange(ccxt_trade(n, ts) for n, ts in enumerate(stamps))
    trades = await fetch_trades_since(fake, since=1_000)
    assert [t.id for t in trades] == [f"t{n}" for n in range(7)]
    assert fake.calls[0] == 1_000 and len(fake.calls) >= 3
    assert trades[0].price == Decimal("100.1") and trades[0].fee == Decimal("0.01")


async def test_an_exchange_that_ignores_since_cannot_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("coinql.exchanges.accounts.TRADES_PAGE", 2)
    fake = FakeExchange([ccxt_trade(1, 1_000), ccxt_trade(2, 2_000)])
    fake.fetch_my_trades = lambda **kwargs: _all(fake)  # type: ignore[method-assign]
    assert [t.id for t in await fetch_trades_since(fake, since=5_000)] == ["t1", "t2"]


async def _all(fake: FakeExchange) -> list[dict[str, Any]]:
    fake.calls.append(None)
    return fake.trades


def test_a_perpetuals_symbol_keeps_its_quote_and_a_bad_number_is_refused() -> None:
    raw = {**ccxt_trade(1, 1_000), "symbol": "BTC/USDT:USDT", "fee": None}
    trade = to_exchange_trade(raw)
    assert (trade.base, trade.quote, trade.fee, trade.fee_currency) == ("BTC", "USDT", 0, "USDT")
    with pytest.raises(ValueError, match="not a finite number"):
        to_exchange_trade({**raw, "price": float("nan")})
    with pytest.raises(ValueError, match="not a number"):
        to_exchange_trade({**raw, "price": "n/a"})


def test_classify_names_an_unknown_ccxt_error_by_class() -> None:
    error = classify("kraken", ccxt.InsufficientFunds("balance"))
    assert error.failure is AccountFailure.EXCHANGE and "InsufficientFunds" in error.message
    nonce = classify("kraken", ccxt.InvalidNonce("nonce"))  # ccxt counts it a NetworkError
    assert nonce.failure is AccountFailure.NETWORK and "InvalidNonce" in nonce.message


class Tape:
    def __init__(self) -> None:
        self.price = (Decimal(100), 1_000)

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return self.price if base == "BTC" else None

    def bases(self) -> Iterable[str]:
        return ["BTC"]


async def test_a_paper_account_syncs_into_a_ledger_that_holds_its_balances() -> None:
    tape = Tape()
    book = PaperBook(quote="USDT")
    book.deposit("USDT", Decimal(5000))
    paper = PaperExchange(book, tape)
    assert await verify(paper, sandbox=True) == Permissions(read=True, trade=True, withdraw=False)
    await paper.create_order("BTC/USDT", "market", "buy", "2")
    tape.price = (Decimal(110), 2_000)
    await paper.create_order("BTC/USDT", "limit", "sell", "0.5", "120")
    tape.price = (Decimal(125), 3_000)
    trades = await fetch_trades_since(paper, since=None)
    assert len(trades) == 2
    balances = await fetch_balances(paper)
    current = {currency: total for currency, (_, _, total) in balances.items()}
    result = reconcile(
        trades=trades,
        booked=(),
        previous=None,
        current=current,
        cash="USDT",
        prices={"BTC": Decimal(125)},
        now=trades[-1].time,
    )
    state = replay(
        [b.transaction for b in result.bookings], base_currency="USDT", method=CostBasis.FIFO
    )
    assert state.cash == current["USDT"] and state.holdings["BTC"].quantity == current["BTC"]
    assert [b.trade_id for b in result.bookings if b.trade_id] == [t.id for t in trades]


async def test_a_real_client_carries_the_credentials_and_its_rate_limiter() -> None:
    client = create_account_client("okx", api_key="pk-1", secret=SECRET, passphrase="phrase")
    try:
        assert client.id == "okx"
        assert (client.apiKey, client.secret, client.password) == ("pk-1", SECRET, "phrase")  # type: ignore[attr-defined]
        assert client.enableRateLimit  # type: ignore[attr-defined]
    finally:
        await client.close()
    with pytest.raises(ValueError, match="no exchange"):
        create_account_client("nope", api_key="k", secret="s", passphrase=None)
