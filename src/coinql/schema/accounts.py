"""Exchange connections and account sync: the caller's exchange (and paper) accounts."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Self

import strawberry
from strawberry.types import Info

from coinql.domain.errors import ExchangeAccountError
from coinql.domain.reconcile import DerivativePosition
from coinql.resolvers import accounts as account_resolvers
from coinql.resolvers.context import Context
from coinql.schema.enums import AccountFailure
from coinql.schema.errors import (
    Conflict,
    Error,
    InvalidInput,
    NotAuthenticated,
)
from coinql.schema.errors import NotFound as NotFoundError
from coinql.schema.nodes import (
    Deleted,
    DeleteResult,
    OwnedNode,
    decode_id,
)
from coinql.schema.permissions import IsAuthenticated
from coinql.schema.portfolio import Portfolio
from coinql.store.accounts import ExchangeConnection as ConnectionRow


@strawberry.enum(description="Where a connection stands with its exchange.")
class ConnectionStatus(Enum):
    ACTIVE = "ACTIVE"
    SYNCING = "SYNCING"
    ERROR = "ERROR"


@strawberry.type(description="The exchange refused or failed a call; nothing was stored.")
class ExchangeRefused(Error):
    exchange: str
    reason: AccountFailure
    retryable: bool = strawberry.field(description="Whether the same call may work later.")

    @classmethod
    def from_exception(cls, error: ExchangeAccountError) -> Self:
        return cls(
            message=error.message,
            exchange=error.exchange,
            reason=error.failure,
            retryable=error.retryable,
        )


@strawberry.type(description="What the exchange says the key may do; null where it does not say.")
class Permissions:
    read: bool | None
    trade: bool | None
    withdraw: bool | None


@strawberry.type(description="An account on an exchange, or on coinql's paper exchange.")
class ExchangeConnection(OwnedNode):
    exchange: str = strawberry.field(description='"paper" or a ccxt exchange id.')
    label: str
    api_key_mask: str = strawberry.field(description="The API key's last 4 characters.")
    sandbox: bool
    status: ConnectionStatus
    permissions: Permissions
    last_sync_at: datetime | None
    last_error: str | None
    created_at: datetime
    model: strawberry.Private[ConnectionRow]

    @classmethod
    def from_model(cls, row: ConnectionRow) -> Self:
        return cls(
            exchange=row.exchange,
            label=row.label,
            api_key_mask=row.api_key_mask,
            sandbox=row.sandbox,
            status=ConnectionStatus(row.status),
            permissions=Permissions(
                read=row.can_read, trade=row.can_trade, withdraw=row.can_withdraw
            ),
            last_sync_at=row.last_sync_at,
            last_error=row.last_error,
            created_at=row.created_at,
            model=row,
        )

    @staticmethod
    async def load_owned(context: Context, connection_id: uuid.UUID) -> Any:
        return await account_resolvers.get_connection(context, connection_id=connection_id)

    @strawberry.field(description="The portfolio the account syncs into.")
    async def portfolio(self, info: Info[Context, None]) -> Portfolio | None:
        return await Portfolio.of_row(info.context, self.model.portfolio_id)


@strawberry.type
class AccountBalance:
    asset: str
    free: Decimal
    used: Decimal
    total: Decimal
    value_usd: Decimal | None = strawberry.field(
        description="The total at the asset's last price; null for an asset without one."
    )


@strawberry.type(description="An open futures or perpetual swap position on the exchange.")
class AccountPosition:
    symbol: str = strawberry.field(description='ccxt\'s market symbol: "BTC/USDT:USDT".')
    side: str = strawberry.field(description='"long" or "short".')
    contracts: Decimal
    contract_size: Decimal | None
    entry_price: Decimal | None
    mark_price: Decimal | None
    notional: Decimal | None
    unrealized_pnl: Decimal | None
    leverage: Decimal | None
    liquidation_price: Decimal | None

    @classmethod
    def from_domain(cls, position: DerivativePosition) -> Self:
        return cls(
            symbol=position.symbol,
            side=position.side,
            contracts=position.contracts,
            contract_size=position.contract_size,
            entry_price=position.entry_price,
            mark_price=position.mark_price,
            notional=position.notional,
            unrealized_pnl=position.unrealized_pnl,
            leverage=position.leverage,
            liquidation_price=position.liquidation_price,
        )


@strawberry.type(description="The account as one sync read it.")
class AccountSnapshot:
    taken_at: datetime
    balances: list[AccountBalance]
    positions: list[AccountPosition] | None = strawberry.field(
        description="A derivatives account's open positions (kept in the snapshot, not booked"
        " into the portfolio's ledger); null for an account without them."
    )
    portfolio: Portfolio

    @classmethod
    def from_domain(cls, snapshot: account_resolvers.Snapshot) -> Self:
        return cls(
            taken_at=snapshot.taken_at,
            balances=[
                AccountBalance(
                    asset=b.asset, free=b.free, used=b.used, total=b.total, value_usd=b.value_usd
                )
                for b in snapshot.balances
            ],
            positions=None
            if snapshot.positions is None
            else [AccountPosition.from_domain(position) for position in snapshot.positions],
            portfolio=Portfolio.from_model(snapshot.portfolio),
        )


@strawberry.input
class AddExchangeConnectionInput:
    exchange: str = strawberry.field(description='"paper", or a ccxt exchange id ("binance").')
    label: str
    api_key: str
    secret: str = strawberry.field(description="Write-only: stored encrypted, never shown.")
    passphrase: str | None = strawberry.field(
        default=None, description="For exchanges that have one (OKX, KuCoin); write-only."
    )
    sandbox: bool = strawberry.field(
        default=False, description="Use the exchange's sandbox or testnet."
    )
    allow_withdraw: bool = strawberry.field(
        default=False,
        description="Connect a key that can withdraw funds (refused unless this is true).",
    )


AddExchangeConnectionResult = Annotated[
    ExchangeConnection | InvalidInput | ExchangeRefused | NotAuthenticated,
    strawberry.union("AddExchangeConnectionResult"),
]
SyncAccountResult = Annotated[
    AccountSnapshot | ExchangeRefused | Conflict | InvalidInput | NotFoundError | NotAuthenticated,
    strawberry.union("SyncAccountResult"),
]

RenameConnectionResult = Annotated[
    ExchangeConnection | InvalidInput | NotFoundError | NotAuthenticated,
    strawberry.union("RenameConnectionResult"),
]


@strawberry.type
class AccountsQuery:
    @strawberry.field(
        description="The caller's exchange connections, oldest first.",
        permission_classes=[IsAuthenticated],
    )
    async def exchange_connections(self, info: Info[Context, None]) -> list[ExchangeConnection]:
        rows = await account_resolvers.list_connections(info.context)
        return [ExchangeConnection.from_model(row) for row in rows]


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(
        description="Verify an exchange account's key with the exchange, then connect it.",
        permission_classes=[IsAuthenticated],
    )
    async def add_exchange_connection(
        self, info: Info[Context, None], input: AddExchangeConnectionInput
    ) -> AddExchangeConnectionResult | None:
        row = await account_resolvers.add_connection(
            info.context,
            account_resolvers.NewConnection(
                exchange=input.exchange,
                label=input.label,
                api_key=input.api_key,
                secret=input.secret,
                passphrase=input.passphrase,
                sandbox=input.sandbox,
                allow_withdraw=input.allow_withdraw,
            ),
        )
        return ExchangeConnection.from_model(row)

    @strawberry.mutation(
        description="Read the account's balances and trades and book what changed.",
        permission_classes=[IsAuthenticated],
    )
    async def sync_exchange_account(
        self, info: Info[Context, None], connection_id: strawberry.ID
    ) -> SyncAccountResult | None:
        snapshot = await account_resolvers.sync_connection(
            info.context, connection_id=decode_id(connection_id, "ExchangeConnection")
        )
        return AccountSnapshot.from_domain(snapshot)

    @strawberry.mutation(
        description="Relabel a connection (its portfolio keeps its name).",
        permission_classes=[IsAuthenticated],
    )
    async def rename_exchange_connection(
        self, info: Info[Context, None], id: strawberry.ID, label: str
    ) -> RenameConnectionResult | None:
        row = await account_resolvers.rename_connection(
            info.context, connection_id=decode_id(id, "ExchangeConnection"), label=label
        )
        return ExchangeConnection.from_model(row)

    @strawberry.mutation(
        description="Remove a connection and its secrets; its portfolio stays.",
        permission_classes=[IsAuthenticated],
    )
    async def remove_exchange_connection(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> DeleteResult | None:
        await account_resolvers.remove_connection(
            info.context, connection_id=decode_id(id, "ExchangeConnection")
        )
        return Deleted(id=id)


ERROR_TYPES = [(ExchangeAccountError, ExchangeRefused)]
