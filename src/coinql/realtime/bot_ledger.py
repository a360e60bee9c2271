"""A bot's account as a ledger: its capital and fills as transactions, valued as portfolios
are, and a paper bot's booking into the portfolio it names (each entry once, by its id)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from coinql.domain.bots import BotSettings
from coinql.domain.ledger import CostBasis, LedgerError, Transaction, TransactionKind, replay
from coinql.domain.valuation import Valuation, value
from coinql.realtime.order_rows import QUOTE
from coinql.store.bots import Bot, BotFillRow, BotMode
from coinql.store.portfolio import NewEntry, Portfolio, append_to_ledger

log = structlog.get_logger("coinql.bots")


def bot_transactions(bot: Bot, fills: Iterable[BotFillRow]) -> list[Transaction]:
    """The bot's account as a ledger: its capital, then its fills."""
    settings = BotSettings.from_json(bot.config)
    return [
        Transaction(
            kind=TransactionKind.DEPOSIT,
            asset=QUOTE,
            quantity=Decimal(repr(settings.config.initial_capital)),
            time=bot.created_at,
        ),
        *(
            Transaction(
                kind=TransactionKind.BUY if fill.side == "BUY" else TransactionKind.SELL,
                asset=bot.symbol,
                quantity=fill.quantity,
                price=fill.price,
                fee=fill.fee,
                time=fill.time,
            )
            for fill in fills
        ),
    ]


def bot_valuation(bot: Bot, fills: Iterable[BotFillRow], price: Decimal | None) -> Valuation:
    """The bot's account valued at `price`, as a portfolio is: cash, position, realized and
    unrealized PnL, fees."""
    state = replay(bot_transactions(bot, fills), base_currency=QUOTE, method=CostBasis.FIFO)
    return value(state, {} if price is None else {bot.symbol: price})


async def book_capital(session: AsyncSession, bot: Bot) -> None:
    """A paper bot that books into a portfolio brings its capital there, as a deposit."""
    capital = Decimal(repr(BotSettings.from_json(bot.config).config.initial_capital))
    deposit = Transaction(TransactionKind.DEPOSIT, QUOTE, capital, time=bot.created_at)
    await _book(session, bot, [NewEntry(deposit, f"bot {bot.name}: capital", f"bot:{bot.id}")])


async def book_fills(session: AsyncSession, bot: Bot, fills: Iterable[BotFillRow]) -> None:
    """Book a paper bot's fills into its portfolio (a LIVE bot's come through the sync of
    its connection), each once: its id is the entry's trade id."""
    fills = list(fills)
    transactions = bot_transactions(bot, fills)[1:]
    await _book(
        session,
        bot,
        [
            NewEntry(transaction, f"bot {bot.name}", f"bot:{fill.id}")
            for transaction, fill in zip(transactions, fills, strict=True)
        ],
    )


async def _book(session: AsyncSession, bot: Bot, entries: list[NewEntry]) -> None:
    if bot.portfolio_id is None or bot.mode != BotMode.PAPER.value or not entries:
        return
    portfolio = await session.get(Portfolio, bot.portfolio_id)
    if portfolio is None:
        return
    try:
        async with session.begin_nested():
            await append_to_ledger(session, portfolio=portfolio, new=entries)
    except LedgerError as error:  # the owner sold what the bot holds there: its own book stands
        log.warning("bot fills not booked", bot_id=str(bot.id), why=error.message)
