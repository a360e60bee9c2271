"""Portfolios, positions, PnL, transactions, value history and rebalancing."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

import strawberry
from strawberry.file_uploads import Upload
from strawberry.types import Info

from coinql.domain.bounds import Bounds
from coinql.domain.errors import InvalidInput as InvalidInputError
from coinql.domain.ledger import AMOUNT, AMOUNT_PLACES, POSITIVE_AMOUNT
from coinql.domain.valuation import Position as BookPosition
from coinql.domain.valuation import Valuation
from coinql.resolvers import portfolio as portfolio_resolvers
from coinql.resolvers.benchmarks import benchmark_loader
from coinql.resolvers.context import Context
from coinql.schema.bounds import (
    WEIGHT,
    PageSizeArgument,
    PeriodsPerYearArgument,
    RiskFreeRateArgument,
    bounded,
    bounded_argument,
)
from coinql.schema.enums import CostBasis, Interval, TransactionKind
from coinql.schema.errors import ImportRejected, InvalidInput, NotAuthenticated, NotFound, naming
from coinql.schema.nodes import (
    Connection,
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_id,
    offset_after,
)
from coinql.schema.performance import Performance, Series
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.scalars import read_upload
from coinql.store import portfolio as portfolio_store

REBALANCE_FEE_BPS = Bounds(0, 1_000, places=AMOUNT_PLACES)


@strawberry.type
class Position:
    symbol: str
    quantity: Decimal
    average_cost: Decimal | None = strawberry.field(description="Cost per unit, buy fees included.")
    cost_basis: Decimal
    last_price: Decimal | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal = strawberry.field(description="Net of buy and sell fees.")
    fees: Decimal
    weight: float | None = strawberry.field(description="Market value / portfolio value.")

    @classmethod
    def from_model(cls, held: BookPosition, of: Valuation) -> Self:
        """The position `held` of the book `of`, which gives its weight."""
        return cls(
            symbol=held.asset,
            quantity=held.quantity,
            average_cost=held.average_cost,
            cost_basis=held.cost_basis,
            last_price=held.last_price,
            market_value=held.market_value,
            unrealized_pnl=held.unrealized_pnl,
            realized_pnl=held.realized_pnl,
            fees=held.fees,
            weight=of.weight(held),
        )


@strawberry.type
class LedgerTransaction:
    kind: TransactionKind
    asset: str
    quantity: Decimal
    price: Decimal | None
    fee: Decimal
    time: datetime
    note: str | None

    @classmethod
    def from_model(cls, entry: portfolio_store.LedgerEntry) -> Self:
        return cls(
            kind=TransactionKind(entry.kind),
            asset=entry.asset,
            quantity=entry.quantity,
            price=entry.price,
            fee=entry.fee,
            time=entry.time,
            note=entry.note,
        )


@strawberry.type(description="A user's portfolio. Amounts are exact decimals in baseCurrency.")
class Portfolio(OwnedNode):
    name: str
    base_currency: str
    cost_basis: CostBasis
    created_at: datetime
    model: strawberry.Private[portfolio_store.Portfolio]
    cache: strawberry.Private[dict[str, Any]]

    @classmethod
    def from_model(cls, portfolio: portfolio_store.Portfolio) -> Self:
        return cls(
            name=portfolio.name,
            base_currency=portfolio.base_currency,
            cost_basis=CostBasis(portfolio.cost_basis),
            created_at=portfolio.created_at,
            model=portfolio,
            cache={},
        )

    @staticmethod
    async def load_owned(context: Context, portfolio_id: uuid.UUID) -> Any:
        return await portfolio_resolvers.get_portfolio(context, portfolio_id=portfolio_id)

    async def _valuation(self, info: Info[Context, None]) -> Valuation:
        if "valuation" not in self.cache:
            self.cache["valuation"] = await portfolio_resolvers.valuation(info.context, self.model)
        valuation: Valuation = self.cache["valuation"]
        return valuation

    @strawberry.field(description="Cash plus positions at their last prices.")
    async def value(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).value

    @strawberry.field
    async def cash(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).cash

    @strawberry.field(description="Of every sale, net of fees; standalone fees count as losses.")
    async def realized_pnl(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).realized_pnl

    @strawberry.field
    async def unrealized_pnl(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).unrealized_pnl

    @strawberry.field(description="Deposits minus withdrawals.")
    async def net_deposits(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).net_deposits

    @strawberry.field
    async def fees_paid(self, info: Info[Context, None]) -> Decimal:
        return (await self._valuation(info)).fees_paid

    @strawberry.field(description="Open positions (closed ones with closed=true).")
    async def positions(
        self, info: Info[Context, None], closed: bool = False
    ) -> list[Position] | None:
        book = await self._valuation(info)
        return [Position.from_model(p, book) for p in book.positions if (p.quantity > 0) or closed]

    @strawberry.field(description="The ledger, in time order.")
    async def transactions(self, info: Info[Context, None]) -> list[LedgerTransaction]:
        entries = await info.context.loaders.entries.load(self.model.id)
        return [LedgerTransaction.from_model(entry) for entry in entries]

    @strawberry.field(description="NAV at each close since the first transaction (floats).")
    async def value_history(
        self, info: Info[Context, None], interval: Interval = Interval.D1
    ) -> Series | None:
        found = await portfolio_resolvers.value_history(info.context, self.model, interval)
        return Series(timestamps=found.history.timestamps, values=found.history.values)

    @strawberry.field(description="Tear sheet of the time-weighted returns (flows excluded).")
    async def performance(
        self,
        info: Info[Context, None],
        interval: Interval = Interval.D1,
        risk_free_rate: RiskFreeRateArgument = 0.0,
        periods_per_year: PeriodsPerYearArgument = None,
    ) -> Performance | None:
        stream = await portfolio_resolvers.return_stream(
            info.context,
            self.model,
            interval=interval,
            risk_free_rate=risk_free_rate,
            periods_per_year=periods_per_year,
        )
        start = int(stream.timestamps[0]) if stream.timestamps.size else None
        benchmarks = benchmark_loader(info.context, interval=interval, start=start, end=None)
        return Performance.from_model(stream, benchmarks)


@strawberry.type
class PortfolioConnection(Connection[Portfolio]):
    total_count: int


@strawberry.input
class CreatePortfolioInput:
    name: str
    base_currency: str = "USDT"
    cost_basis: CostBasis = CostBasis.FIFO


@strawberry.input
class TransactionInput:
    kind: TransactionKind
    asset: str = strawberry.field(description="A coin, or the base currency for cash.")
    quantity: Decimal = bounded(POSITIVE_AMOUNT)
    time: datetime
    price: Decimal | None = bounded(
        POSITIVE_AMOUNT, default=None, description="Per unit, base currency."
    )
    fee: Decimal | None = bounded(AMOUNT, default=None, description="In the base currency.")
    note: str | None = None

    def to_model(self) -> portfolio_resolvers.TransactionInput:
        return portfolio_resolvers.TransactionInput(
            kind=self.kind,
            asset=self.asset,
            quantity=self.quantity,
            time=self.time,
            price=self.price,
            fee=self.fee,
            note=self.note,
        )


@strawberry.input
class TargetWeight:
    symbol: str
    weight: float = bounded(WEIGHT)


@strawberry.type
class Trade:
    symbol: str
    side: str = strawberry.field(description="BUY or SELL.")
    quantity: Decimal
    price: Decimal
    value: Decimal
    estimated_fee: Decimal
    current_weight: float
    target_weight: float


@strawberry.type(description="Trades from the current positions to target weights; sells first.")
class RebalancePlan:
    portfolio_value: Decimal
    trades: list[Trade]
    estimated_fees: Decimal


CreatePortfolioResult = Annotated[
    Portfolio | InvalidInput | NotAuthenticated, strawberry.union("CreatePortfolioResult")
]
PortfolioChangeResult = Annotated[
    Portfolio | InvalidInput | NotFound | NotAuthenticated | ImportRejected,
    strawberry.union("PortfolioChangeResult"),
]


@strawberry.type
class PortfolioQuery:
    @strawberry.field(description="The caller's portfolios.", permission_classes=[IsAuthenticated])
    async def portfolios(
        self, info: Info[Context, None], first: PageSizeArgument = 50, after: str | None = None
    ) -> PortfolioConnection | None:
        page = await portfolio_resolvers.list_portfolios(
            info.context, first=first, offset=offset_after(after)
        )
        return PortfolioConnection.page(
            [Portfolio.from_model(p) for p in page.portfolios],
            offset=page.offset,
            has_next_page=page.has_next_page,
            total_count=page.total_count,
        )

    @strawberry.field(
        description="One of the caller's portfolios; null if absent or someone else's.",
        permission_classes=[IsAuthenticated],
    )
    async def portfolio(self, info: Info[Context, None], id: strawberry.ID) -> Portfolio | None:
        return await Portfolio.owned(info, id)

    @strawberry.field(
        description="Trades to reach target weights (the rest stays in cash).",
        permission_classes=[IsAuthenticated],
    )
    async def rebalance(
        self,
        info: Info[Context, None],
        portfolio_id: strawberry.ID,
        target_weights: list[TargetWeight],
        min_trade_value: Annotated[
            Decimal, bounded_argument(AMOUNT, description="Smaller trades are skipped.")
        ] = Decimal(0),
        fee_bps: Annotated[
            Decimal, bounded_argument(REBALANCE_FEE_BPS, description="Estimated fee per trade.")
        ] = Decimal(10),
    ) -> RebalancePlan | None:
        with naming("portfolioId"):
            valuation, trades = await portfolio_resolvers.rebalance(
                info.context,
                portfolio_id=decode_id(portfolio_id, "Portfolio"),
                targets={t.symbol.upper(): t.weight for t in target_weights},
                min_trade_value=min_trade_value,
                fee_bps=fee_bps,
            )
        return RebalancePlan(
            portfolio_value=valuation.value,
            trades=[
                Trade(
                    symbol=t.symbol,
                    side=t.side,
                    quantity=t.quantity,
                    price=t.price,
                    value=t.value,
                    estimated_fee=t.estimated_fee,
                    current_weight=t.current_weight,
                    target_weight=t.target_weight,
                )
                for t in trades
            ],
            estimated_fees=sum((t.estimated_fee for t in trades), Decimal(0)),
        )


@strawberry.type
class PortfolioMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_portfolio(
        self, info: Info[Context, None], input: CreatePortfolioInput
    ) -> CreatePortfolioResult | None:
        created = await portfolio_resolvers.create_portfolio(
            info.context,
            name=input.name,
            base_currency=input.base_currency,
            cost_basis=input.cost_basis,
        )
        return Portfolio.from_model(created)

    @strawberry.mutation(
        description="Add transactions; all or none. Errors name the transaction.",
        permission_classes=[IsAuthenticated],
    )
    async def add_transactions(
        self,
        info: Info[Context, None],
        portfolio_id: strawberry.ID,
        transactions: list[TransactionInput],
    ) -> PortfolioChangeResult | None:
        updated = await portfolio_resolvers.add_transactions(
            info.context,
            portfolio_id=decode_id(portfolio_id, "Portfolio"),
            inputs=[item.to_model() for item in transactions],
        )
        return Portfolio.from_model(updated)

    @strawberry.mutation(
        description="Add transactions from CSV: kind,asset,quantity,price,fee,time[,note].",
        permission_classes=[IsAuthenticated],
    )
    async def import_transactions(
        self, info: Info[Context, None], portfolio_id: strawberry.ID, file: Upload
    ) -> PortfolioChangeResult | None:
        limit = info.context.services.settings.import_max_bytes
        data = await read_upload(file, limit)
        if len(data) > limit:
            raise InvalidInputError("file", f"file is larger than the limit of {limit:,} bytes")
        inputs = portfolio_resolvers.parse_transactions_csv(data)
        updated = await portfolio_resolvers.add_transactions(
            info.context, portfolio_id=decode_id(portfolio_id, "Portfolio"), inputs=inputs
        )
        return Portfolio.from_model(updated)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_portfolio(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await portfolio_resolvers.delete_portfolio(
            info.context, portfolio_id=decode_id(id, "Portfolio")
        )
        return Deleted(id=id)
