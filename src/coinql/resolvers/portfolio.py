"""Portfolios: the ledger, valuation at the latest prices, value history and rebalancing."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import partial

import structlog
from redis.exceptions import RedisError

from coinql.domain import ledger
from coinql.domain import valuation as book
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Interval
from coinql.domain.csv_lines import ImportRejected, LineProblem
from coinql.domain.errors import InvalidInput, NotFound
from coinql.domain.ledger import CostBasis, LedgerState, Transaction, TransactionKind
from coinql.domain.tearsheet import ReturnStream
from coinql.domain.valuation import Valuation
from coinql.realtime import channels
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.market import candles_for
from coinql.resolvers.owned import delete_owned, get_owned
from coinql.store import portfolio as portfolio_store
from coinql.store.portfolio import Portfolio

log = structlog.get_logger(__name__)

BASE_CURRENCIES = ("USD", "USDT", "USDC")  # candles are quoted in these, taken as equal
MAX_BATCH = 10_000
ANNOUNCE_SECONDS = 1.0
MAX_NAME = 100
TRANSACTION_COLUMNS = ("kind", "asset", "quantity", "price", "fee", "time")


async def owner_id(context: Context) -> uuid.UUID:
    return (await require_user(context)).id


async def create_portfolio(
    context: Context, *, name: str, base_currency: str, cost_basis: CostBasis
) -> Portfolio:
    owner = await owner_id(context)
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise InvalidInput("name", f"name must have 1 to {MAX_NAME} characters")
    currency = base_currency.strip().upper()
    if currency not in BASE_CURRENCIES:
        raise InvalidInput(
            "baseCurrency", f"baseCurrency must be one of {', '.join(BASE_CURRENCIES)}"
        )
    async with context.services.transaction() as session:
        return await portfolio_store.add_portfolio(
            session,
            owner_id=owner,
            name=name,
            base_currency=currency,
            cost_basis=cost_basis.value,
            now=context.services.now(),
        )


async def get_portfolio(context: Context, *, portfolio_id: uuid.UUID) -> Portfolio:
    """The caller's portfolio; `NotFound` for a missing one and for someone else's alike."""
    return await get_owned(
        context,
        partial(portfolio_store.get_portfolio, portfolio_id=portfolio_id),
        f"no portfolio {portfolio_id}",
    )


@dataclass(frozen=True, slots=True)
class PortfolioPage:
    portfolios: list[Portfolio]
    offset: int
    has_next_page: bool
    total_count: int


async def list_portfolios(context: Context, *, first: int, offset: int) -> PortfolioPage:
    if not 0 < first <= 500:
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = await owner_id(context)
    async with context.services.reader() as session:
        rows = await portfolio_store.list_portfolios(
            session, owner_id=owner, offset=offset, limit=first + 1
        )
        total = await portfolio_store.count_portfolios(session, owner_id=owner)
    return PortfolioPage(rows[:first], offset, len(rows) > first, total)


async def delete_portfolio(context: Context, *, portfolio_id: uuid.UUID) -> uuid.UUID:
    await delete_owned(
        context,
        partial(portfolio_store.get_portfolio, portfolio_id=portfolio_id),
        f"no portfolio {portfolio_id}",
    )
    return portfolio_id


async def transactions_of(context: Context, portfolio: Portfolio) -> list[Transaction]:
    entries = await context.loaders.entries.load(portfolio.id)
    return [entry.transaction() for entry in entries]


async def ledger_state(context: Context, portfolio: Portfolio) -> LedgerState:
    return ledger.replay(
        await transactions_of(context, portfolio),
        base_currency=portfolio.base_currency,
        method=CostBasis(portfolio.cost_basis),
    )


async def valuation(context: Context, portfolio: Portfolio) -> Valuation:
    """Positions valued at each asset's last price (one statement for all the assets)."""
    transactions = await transactions_of(context, portfolio)
    symbols = book.priced_assets(transactions, base_currency=portfolio.base_currency)
    assets = await context.loaders.assets.load_many(symbols)
    return book.valuation(
        transactions,
        base_currency=portfolio.base_currency,
        method=CostBasis(portfolio.cost_basis),
        last_prices={
            symbol: asset.last_price
            for symbol, asset in zip(symbols, assets, strict=True)
            if asset is not None
        },
    )


@dataclass(frozen=True, slots=True)
class TransactionInput:
    kind: TransactionKind
    asset: str
    quantity: Decimal
    time: datetime
    price: Decimal | None = None
    fee: Decimal | None = None
    note: str | None = None


async def add_transactions(
    context: Context, *, portfolio_id: uuid.UUID, inputs: list[TransactionInput]
) -> Portfolio:
    """Validate the batch against the whole ledger, then store it in one transaction.

    Each problem names its transaction: `transactions[2].quantity is more than ...`.
    """
    if not inputs:
        raise InvalidInput("transactions", "give at least one transaction")
    if len(inputs) > MAX_BATCH:
        raise InvalidInput("transactions", f"at most {MAX_BATCH} transactions per call")
    portfolio = await get_portfolio(context, portfolio_id=portfolio_id)
    services = context.services
    now = services.now()
    batch = [_checked(portfolio, item, index, now) for index, item in enumerate(inputs)]
    symbols = sorted({tx.asset for tx in batch if tx.asset != portfolio.base_currency})
    assets = await context.loaders.assets.load_many(symbols)
    for index, tx in enumerate(batch):
        if tx.asset in symbols and assets[symbols.index(tx.asset)] is None:
            raise InvalidInput(f"transactions[{index}].asset", f"unknown asset {tx.asset}")
    async with services.transaction() as session:
        await portfolio_store.append_to_ledger(
            session,
            portfolio=portfolio,
            new=[
                portfolio_store.NewEntry(tx, item.note)
                for tx, item in zip(batch, inputs, strict=True)
            ],
        )
    # Later fields of this request must see the new transactions, and live values at once.
    context.loaders.entries.clear_all()
    await announce_ledger_change(context, portfolio.id)
    return portfolio


async def announce_ledger_change(context: Context, portfolio_id: uuid.UUID) -> None:
    """Tell the portfolio's live values to reload it. They also reload every
    LEDGER_RECHECK_SECONDS, for writers that do not tell (account sync, bots), and when the
    broadcast is away, so a failure here only delays them."""
    try:
        async with asyncio.timeout(ANNOUNCE_SECONDS):  # the write is committed: never hang it
            await context.services.hub.publish(
                channels.ledger(portfolio_id), {"portfolioId": str(portfolio_id)}
            )
    except (ConnectionError, OSError, RedisError, TimeoutError) as error:
        log.warning("ledger change not announced", portfolio_id=str(portfolio_id), error=str(error))


def _checked(
    portfolio: Portfolio, item: TransactionInput, index: int, now: datetime
) -> Transaction:
    transaction = Transaction(
        kind=item.kind,
        asset=item.asset.strip().upper(),
        quantity=item.quantity,
        time=item.time,
        price=item.price,
        fee=item.fee if item.fee is not None else Decimal(0),
    )
    try:
        ledger.validate(transaction, base_currency=portfolio.base_currency, now=now)
    except ledger.LedgerError as error:
        raise error.at(index) from None
    return transaction


def parse_transactions_csv(data: bytes) -> list[TransactionInput]:
    """`kind,asset,quantity,price,fee,time[,note]` with a header; problems by line. Amounts
    have the bounds of the ledger's (`ledger.POSITIVE_AMOUNT`, `ledger.AMOUNT`); reading stops
    past MAX_BATCH rows."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected([LineProblem(1, "file is not UTF-8 text")]) from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in ("kind", "asset", "quantity", "time") if name not in header]
    if missing:
        raise ImportRejected([LineProblem(1, f"the header lacks {', '.join(missing)}")])
    reader.fieldnames = header
    inputs: list[TransactionInput] = []
    problems: list[LineProblem] = []
    for row in reader:
        if len(inputs) + len(problems) == MAX_BATCH:  # stop reading: the rest cannot be taken
            raise InvalidInput("file", f"the file has more than {MAX_BATCH:,} transactions")
        line = reader.line_num
        try:
            inputs.append(_row_to_input(row))
        except ValueError as error:
            problems.append(LineProblem(line, str(error)))
    if problems:
        raise ImportRejected(problems)
    if not inputs:
        raise ImportRejected([LineProblem(1, "the file has no transactions")])
    return inputs


def _row_to_input(row: dict[str, str | None]) -> TransactionInput:
    def decimal(name: str, bounds: Bounds, *, required: bool) -> Decimal | None:
        raw = (row.get(name) or "").strip()
        if not raw:
            if required:
                raise ValueError(f"{name} is empty")
            return None
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise ValueError(f"{name} {raw[:30]!r} is not a number") from None
        problem = bounds.problem(value)
        if problem is not None:
            raise ValueError(f"{name} {problem}")
        return value

    kind_text = (row.get("kind") or "").strip().upper()
    if kind_text not in TransactionKind.__members__:
        raise ValueError(f"kind {kind_text[:20]!r} is not one of {', '.join(TransactionKind)}")
    time_text = (row.get("time") or "").strip()
    try:
        time = datetime.fromisoformat(time_text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"time {time_text[:30]!r} is not ISO 8601") from None
    if time.tzinfo is None:
        raise ValueError(f"time {time_text!r} needs a UTC offset, e.g. 2020-01-01T00:00:00Z")
    quantity = decimal("quantity", ledger.POSITIVE_AMOUNT, required=True)
    assert quantity is not None
    return TransactionInput(
        kind=TransactionKind(kind_text),
        asset=(row.get("asset") or "").strip(),
        quantity=quantity,
        time=time,
        price=decimal("price", ledger.POSITIVE_AMOUNT, required=False),
        fee=decimal("fee", ledger.AMOUNT, required=False),
        note=(row.get("note") or "").strip() or None,
    )


@dataclass(frozen=True, slots=True)
class History:
    history: book.ValueHistory
    interval: Interval


async def value_history(context: Context, portfolio: Portfolio, interval: Interval) -> History:
    """NAV at each candle close from the first transaction to the newest candle."""
    transactions = await transactions_of(context, portfolio)
    if not transactions:
        return History(book.ValueHistory.empty(), interval)
    symbols = book.priced_assets(transactions, base_currency=portfolio.base_currency)
    start = book.history_start(transactions, interval)
    assets = await context.loaders.assets.load_many(symbols)
    candles = {}
    for symbol, asset in zip(symbols, assets, strict=True):
        if asset is None:
            raise NotFound(f"asset {symbol} of this portfolio is no longer in the universe")
        candles[symbol] = await candles_for(
            context, asset=asset, interval=interval, start=start, end=None
        )
    found = book.nav_history(
        transactions,
        base_currency=portfolio.base_currency,
        candles=candles,
        interval=interval,
        now=context.services.now(),
    )
    return History(found, interval)


async def return_stream(
    context: Context,
    portfolio: Portfolio,
    *,
    interval: Interval,
    risk_free_rate: float,
    periods_per_year: float | None,
) -> ReturnStream:
    """Time-weighted returns of the portfolio's NAV: deposits and withdrawals are not
    performance."""
    found = (await value_history(context, portfolio, interval)).history
    return ReturnStream(
        label=portfolio.name,
        interval=interval,
        timestamps=found.timestamps[1:],
        returns=found.returns[1:],
        periods_per_year=periods_per_year or interval.periods_per_year,
        risk_free_rate=risk_free_rate,
    )


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    side: str
    quantity: Decimal
    price: Decimal
    value: Decimal
    estimated_fee: Decimal
    current_weight: float
    target_weight: float


async def rebalance(
    context: Context,
    *,
    portfolio_id: uuid.UUID,
    targets: dict[str, float],
    min_trade_value: Decimal,
    fee_bps: Decimal,
) -> tuple[Valuation, list[Trade]]:
    """Trades that move the current positions to the target weights of the total value.

    Sells come first (they fund the buys); a trade smaller than `min_trade_value` is skipped;
    fees are estimated at `fee_bps` of each trade's value.
    """
    if any(weight < 0 for weight in targets.values()):
        raise InvalidInput("targetWeights", "weights must not be negative")
    if sum(targets.values()) > 1 + 1e-9:
        raise InvalidInput("targetWeights", "weights must sum to at most 1 (the rest is cash)")
    if min_trade_value < 0 or fee_bps < 0:
        raise InvalidInput("minTradeValue", "minTradeValue and feeBps must not be negative")
    portfolio = await get_portfolio(context, portfolio_id=portfolio_id)
    current = await valuation(context, portfolio)
    symbols = sorted(set(targets) | {p.asset for p in current.positions if p.quantity > 0})
    assets = await context.loaders.assets.load_many(symbols)
    trades = []
    for symbol, asset in zip(symbols, assets, strict=True):
        if asset is None or asset.last_price is None:
            raise InvalidInput("targetWeights", f"no price for {symbol}")
        price = Decimal(repr(asset.last_price))
        held = next((p.quantity for p in current.positions if p.asset == symbol), Decimal(0))
        target_value = current.value * Decimal(repr(targets.get(symbol, 0.0)))
        delta_value = target_value - held * price
        if abs(delta_value) < min_trade_value or delta_value == 0:
            continue
        quantity = abs(delta_value) / price
        trades.append(
            Trade(
                symbol=symbol,
                side="BUY" if delta_value > 0 else "SELL",
                quantity=quantity,
                price=price,
                value=abs(delta_value),
                estimated_fee=abs(delta_value) * fee_bps / Decimal(10_000),
                current_weight=float(held * price / current.value) if current.value else 0.0,
                target_weight=targets.get(symbol, 0.0),
            )
        )
    trades.sort(key=lambda trade: (trade.side != "SELL", trade.symbol))
    return current, trades
