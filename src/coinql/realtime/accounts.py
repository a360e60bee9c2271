"""Account sync: read an exchange account (or a paper one) and book what changed into its
portfolio, by request (`syncExchangeAccount`) or on a schedule.

A sync reads the balances, the trades since the last sync and, for a derivatives account, the
open positions; `coinql.domain.reconcile` turns trades into ledger transactions (an exchange
trade id is booked once) and what they do not explain into labelled deposits and withdrawals,
and a snapshot of the balances is kept. One sync of a connection runs at a time: the SYNCING
mark is taken in one statement. Secrets leave the store only to build the exchange client.

The scheduler syncs every connection each COINQL_ACCOUNT_SYNC_SECONDS while this process leads
(coinql.realtime.leader, like ingestion). Within a sync, rate limits and network errors are
retried with ingestion's backoff; a connection whose sync failed waits twice as long after
each failure in a row (up to `MAX_BACKOFF`), and its state shows in /health/ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import cast

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.errors import Conflict, NotFound, UserError
from coinql.domain.paper import PaperBook
from coinql.domain.reconcile import DerivativePosition, ExchangeTrade, reconcile
from coinql.exchanges.accounts import (
    AccountClient,
    AccountClients,
    fetch_balances,
    fetch_positions,
    fetch_trades_since,
)
from coinql.exchanges.ccxt import Backoff
from coinql.exchanges.paper import PaperExchange
from coinql.exchanges.trading import TradingClient
from coinql.realtime.clock import Clock, utc_now
from coinql.realtime.leader import Leader, LeadingLoop
from coinql.realtime.prices import LatestPrices
from coinql.settings import Settings
from coinql.store import accounts as account_store
from coinql.store import api_keys as key_store
from coinql.store import market as market_store
from coinql.store import portfolio as portfolio_store
from coinql.store.accounts import ExchangeConnection
from coinql.store.portfolio import Portfolio
from coinql.store.secrets import SecretBox

log = structlog.get_logger("coinql.accounts")

PAPER = "paper"
CASH = ("USD", "USDT", "USDC")  # taken as equal, as the candles are
SYNC_OVERLAP = timedelta(hours=1)  # trades re-read before the last sync: ids make it safe
SYNC_STALE = timedelta(minutes=10)  # a SYNCING mark older than this was a crashed sync
MAX_BACKOFF = timedelta(hours=6)
MAX_PRICED_ASSETS = 10_000
SYNCS_PER_PASS = 100
# Within one sync: a rate limit or network error is tried again 3 times, seconds apart.
SYNC_RETRIES = Backoff(base_seconds=1.0, cap_seconds=8.0, max_attempts=4)
Balances = dict[str, tuple[Decimal, Decimal, Decimal]]  # currency: (free, used, total)


@cache
def secret_box(keys: tuple[str, ...]) -> SecretBox:
    """The box of the configured encryption keys (built once per key set)."""
    return SecretBox(list(keys))


def box_of(settings: Settings) -> SecretBox:
    return secret_box(tuple(settings.resolved_encryption_keys()))


def paper_book(settings: Settings) -> PaperBook:
    """A new paper account: the configured starting balance, fees and slippage."""
    book = PaperBook(
        quote=settings.paper_quote,
        fee_bps=settings.paper_fee_bps,
        slippage_bps=settings.paper_slippage_bps,
    )
    book.deposit(settings.paper_quote, settings.paper_starting_balance)
    return book


class Prices:
    """A paper account's price source: the live price of each asset, else its stored one."""

    def __init__(self, quotes: dict[str, tuple[Decimal, int]]) -> None:
        self.quotes = quotes

    def latest(self, base: str) -> tuple[Decimal, int] | None:
        return self.quotes.get(base)

    def bases(self) -> Iterable[str]:
        return self.quotes


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    used: Decimal
    total: Decimal
    value_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: datetime
    balances: list[Balance]
    positions: list[DerivativePosition] | None  # None: not a derivatives account
    portfolio: Portfolio


@dataclass(frozen=True, slots=True)
class _Read:
    """What one sync read from the exchange."""

    balances: Balances
    trades: list[ExchangeTrade]
    positions: list[DerivativePosition] | None
    paper: account_store.PaperAccount | None
    book: PaperBook | None  # the paper account after the calls


class AccountSync:
    """Syncs connections: the code path of the mutation and the scheduler alike."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        prices: LatestPrices,
        settings: Settings,
        clients: AccountClients,
        clock: Clock = utc_now,
        backoff: Backoff = SYNC_RETRIES,
    ) -> None:
        self.sessions = sessions
        self.prices = prices
        self.settings = settings
        self.clients = clients  # builds a real exchange's client (tests give a fake)
        self.clock = clock
        self.backoff = backoff

    async def market_prices(self) -> Prices:
        """Every asset's latest price, as the portfolio queries value them."""
        async with self.sessions() as session:
            assets = await market_store.list_assets(
                session,
                order=market_store.AssetOrder.SYMBOL_ASC,
                where=market_store.AssetFilter(),
                offset=0,
                limit=MAX_PRICED_ASSETS,
            )
        quotes = {}
        for asset in map(self.prices.apply, assets):
            if asset.last_price is not None and asset.last_price > 0:
                moment = asset.last_price_at or 0
                quotes[asset.symbol] = (Decimal(str(asset.last_price)), int(moment))
        return Prices(quotes)

    def real_client(
        self, connection: ExchangeConnection, *, streaming: bool = False
    ) -> AccountClient:
        api_key, secret, passphrase = account_store.connection_credentials(
            connection, box_of(self.settings)
        )
        extra = {"streaming": True} if streaming else {}
        return self.clients(
            connection.exchange, api_key=api_key, secret=secret, passphrase=passphrase, **extra
        )

    def trading_client(self, connection: ExchangeConnection) -> TradingClient:
        """The connection's client for orders (a LIVE bot's): ccxt.pro's where it has the
        exchange, so that its orders can be streamed."""
        return cast(TradingClient, self.real_client(connection, streaming=True))

    async def sync(self, connection: ExchangeConnection, *, address: str | None) -> Snapshot:
        """Read the account, book what changed into its portfolio and keep a snapshot;
        `Conflict` while another sync of it runs. A failure is recorded on the connection
        (ERROR, its reason, one more failure in a row) and raised."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            claimed = await account_store.claim_sync(
                session, connection_id=connection.id, now=now, stale_before=now - SYNC_STALE
            )
        if not claimed:
            raise Conflict(f"a sync of exchange connection {connection.id} is already running")
        try:
            return await self._book(connection, await self._read(connection), now, address)
        except BaseException as error:
            async with self.sessions() as session, session.begin():
                await account_store.end_sync(
                    session,
                    connection_id=connection.id,
                    now=now,
                    error=failure_of(error),
                )
            raise

    async def _read(self, connection: ExchangeConnection) -> _Read:
        paper = None
        if connection.exchange == PAPER:
            async with self.sessions() as session:
                paper = await account_store.load_paper_book(session, connection_id=connection.id)
            if paper is None:
                raise NotFound(f"exchange connection {connection.id} has no paper account")
            client: AccountClient = PaperExchange(
                PaperBook.from_json(paper.book), await self.market_prices()
            )
        else:
            client = self.real_client(connection)
        since = connection.last_sync_at - SYNC_OVERLAP if connection.last_sync_at else None
        try:
            if connection.sandbox:
                client.set_sandbox_mode(True)
            balances = await fetch_balances(client, self.backoff)
            trades = await fetch_trades_since(
                client,
                since=None if since is None else int(since.timestamp() * 1000),
                backoff=self.backoff,
            )
            positions = await fetch_positions(client, self.backoff)
        finally:
            await client.close()
        book = client.book if isinstance(client, PaperExchange) else None
        return _Read(balances, trades, positions, paper, book)

    async def _book(
        self, connection: ExchangeConnection, read: _Read, now: datetime, address: str | None
    ) -> Snapshot:
        prices = await self.market_prices()
        async with self.sessions() as session, session.begin():
            portfolio = await portfolio_store.get_portfolio(
                session, owner_id=connection.owner_id, portfolio_id=connection.portfolio_id
            )
            if portfolio is None:
                raise NotFound(f"the portfolio of exchange connection {connection.id} is gone")
            previous = await account_store.latest_snapshot(session, connection_id=connection.id)
            cash = portfolio.base_currency
            held = in_cash(read.balances, cash)
            result = reconcile(
                trades=[_trade_in_cash(trade, cash) for trade in read.trades],
                booked=await portfolio_store.exchange_trade_ids(session, portfolio_id=portfolio.id),
                previous=None
                if previous is None
                else {c: Decimal(v["total"]) for c, v in previous.balances.items()},
                current={currency: total for currency, (_, _, total) in held.items()},
                cash=cash,
                prices={symbol: price for symbol, (price, _) in prices.quotes.items()},
                now=now,
            )
            await portfolio_store.append_to_ledger(
                session,
                portfolio=portfolio,
                new=[
                    portfolio_store.NewEntry(booking.transaction, booking.note, booking.trade_id)
                    for booking in result.bookings
                ],
            )
            await account_store.add_snapshot(
                session,
                connection_id=connection.id,
                taken_at=now,
                balances={
                    currency: {"free": str(free), "used": str(used), "total": str(total)}
                    for currency, (free, used, total) in held.items()
                },
                positions=None
                if read.positions is None
                else [position.to_json() for position in read.positions],
            )
            if read.paper is not None and read.book is not None:
                saved = await account_store.save_paper_book(
                    session, account=read.paper, book=read.book.to_json()
                )
                if not saved:
                    raise Conflict("the paper account changed during the sync; sync again")
            await account_store.end_sync(session, connection_id=connection.id, now=now, error=None)
            await key_store.record(
                session,
                user_id=connection.owner_id,
                action="ACCOUNT_SYNCED",
                target=f"{connection.exchange}:{connection.id}",
                address=address,
                now=now,
            )
        return Snapshot(
            taken_at=now,
            balances=[
                Balance(currency, free, used, total, _value(currency, total, cash, prices))
                for currency, (free, used, total) in held.items()
            ],
            positions=read.positions,
            portfolio=portfolio,
        )


def failure_of(error: BaseException) -> str:
    """What a failed sync records and logs: a coinql error's own message (an exchange's names
    the exchange and ccxt's class, never what ccxt said, which can quote a key); otherwise
    that it failed, and the class."""
    if isinstance(error, UserError):
        return error.message
    return f"the sync failed ({type(error).__name__})"


def in_cash(balances: Balances, cash: str) -> Balances:
    """The balances with every stablecoin the candles take as cash under the portfolio's."""
    merged: Balances = {}
    for currency, amounts in sorted(balances.items()):
        key = cash if currency in CASH else currency
        before = merged.get(key, (Decimal(0), Decimal(0), Decimal(0)))
        merged[key] = (
            before[0] + amounts[0],
            before[1] + amounts[1],
            before[2] + amounts[2],
        )
    return merged


def _value(currency: str, total: Decimal, cash: str, prices: Prices) -> Decimal | None:
    if currency == cash:
        return total
    latest = prices.latest(currency)
    return None if latest is None else total * latest[0]


def _trade_in_cash(trade: ExchangeTrade, cash: str) -> ExchangeTrade:
    """The trade with a stablecoin quote or fee read as the portfolio's cash."""
    quote = cash if trade.quote in CASH else trade.quote
    fee_currency = cash if trade.fee_currency in CASH else trade.fee_currency
    return replace(trade, quote=quote, fee_currency=fee_currency)


def retry_delay(failures: int, every: timedelta) -> timedelta:
    """How long a connection waits after its last attempt: `every`, doubled for each failure
    in a row, at most MAX_BACKOFF (or `every`, if that is longer)."""
    return min(every * (1 << min(failures, 16)), max(MAX_BACKOFF, every))


def is_due(connection: ExchangeConnection, *, now: datetime, every: timedelta) -> bool:
    """Whether the scheduler syncs `connection` now: an interval (and its backoff) after its
    last attempt, or after it was added (its owner syncs it first, without a Conflict)."""
    last = connection.last_attempt_at or connection.created_at
    return now - last >= retry_delay(connection.failures, every)


class AccountSyncScheduler(LeadingLoop):
    """Syncs every due connection each `every_seconds`, while this process leads; it looks
    every tenth of the interval, so a connection backing off is not held a whole one."""

    task_name = "coinql-account-sync"

    def __init__(
        self,
        *,
        syncer: AccountSync,
        every_seconds: float,
        leader: Leader | None = None,
        on_status: Callable[[str], None] = lambda status: None,
        on_sync: Callable[[str], None] = lambda outcome: None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(leader=leader, pause_seconds=every_seconds / 10, on_status=on_status)
        self.syncer = syncer
        self.every = timedelta(seconds=every_seconds)
        self.on_sync = on_sync
        self.clock = clock

    async def run_once(self) -> dict[str, int]:
        """Sync the connections that are due; how many of them synced, failed, or were being
        synced by their owner already."""
        now = self.clock()
        async with self.syncer.sessions() as session:
            due = await account_store.connections_to_sync(
                session,
                due=lambda connection: is_due(connection, now=now, every=self.every),
                stale_before=now - SYNC_STALE,
                limit=SYNCS_PER_PASS,
            )
        outcomes = dict.fromkeys(("synced", "failed", "busy"), 0)
        for connection in due:
            if self.stopping:
                break
            outcome = await self._sync_one(connection)
            outcomes[outcome] += 1
            self.on_sync(outcome)
        return outcomes

    async def _sync_one(self, connection: ExchangeConnection) -> str:
        try:
            await self.syncer.sync(connection, address=None)
        except asyncio.CancelledError:
            raise
        except Conflict:
            return "busy"  # its owner's own sync of it runs now
        except Exception as error:
            log.warning(
                "scheduled account sync failed",
                connection_id=str(connection.id),
                exchange=connection.exchange,
                failures=connection.failures + 1,
                error=failure_of(error),
            )
            return "failed"
        return "synced"
