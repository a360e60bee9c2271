"""Saved strategies: validated, stored, listed and deleted for their owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import partial

from coinql.domain.errors import InvalidInput
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    SignalKind,
    StrategySpec,
    UniverseRank,
    validate_allocation,
    validate_signal,
    validate_universe,
)
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import delete_owned, get_owned
from coinql.store import portfolio as portfolio_store
from coinql.store.portfolio import Strategy


@dataclass(frozen=True)
class StrategyInput:
    name: str
    kind: str
    params: dict[str, object]
    symbols: list[str] = field(default_factory=list)
    universe_top: int | None = None
    constraints: AllocationConstraints | None = None
    rebalance: Rebalance | None = None
    universe_by: UniverseRank = UniverseRank.QUOTE_VOLUME


def validate_strategy(item: StrategyInput) -> StrategySpec:
    name = item.name.strip()
    if not 0 < len(name) <= 100:
        raise InvalidInput("name", "name must have 1 to 100 characters")
    symbols = validate_universe(item.symbols, item.universe_top)
    if item.kind in SignalKind._value2member_map_:
        if item.constraints is not None or item.rebalance is not None:
            raise InvalidInput(
                "constraints", "constraints and rebalance apply to allocation strategies"
            )
        params = validate_signal(SignalKind(item.kind), dict(item.params))
        return StrategySpec(item.kind, params, symbols, item.universe_top)  # signals: one symbol
    constraints = item.constraints or AllocationConstraints()
    params = validate_allocation(AllocationKind(item.kind), dict(item.params), constraints)
    return StrategySpec(
        item.kind,
        params,
        symbols,
        item.universe_top,
        constraints,
        item.rebalance or Rebalance.MONTHLY,
        item.universe_by,
    )


async def create_strategy(context: Context, item: StrategyInput) -> Strategy:
    owner = (await require_user(context)).id
    spec = validate_strategy(item)
    async with context.services.transaction() as session:
        return await portfolio_store.add_strategy(
            session,
            owner_id=owner,
            name=item.name.strip(),
            family=spec.family,
            spec=spec.to_json(),
            now=context.services.now(),
        )


async def get_strategy(context: Context, *, strategy_id: uuid.UUID) -> Strategy:
    return await get_owned(
        context,
        partial(portfolio_store.get_strategy, strategy_id=strategy_id),
        f"no strategy {strategy_id}",
    )


async def list_strategies(context: Context, *, first: int, offset: int) -> list[Strategy]:
    if not 0 < first <= 501:  # the connection asks for one more to see if there is a next
        raise InvalidInput("first", "first must be between 1 and 500")
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await portfolio_store.list_strategies(
            session, owner_id=owner, offset=offset, limit=first
        )


async def delete_strategy(context: Context, *, strategy_id: uuid.UUID) -> uuid.UUID:
    await delete_owned(
        context,
        partial(portfolio_store.get_strategy, strategy_id=strategy_id),
        f"no strategy {strategy_id}",
    )
    return strategy_id
