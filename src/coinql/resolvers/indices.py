"""Saved indices: create, read, list, delete, and an index's values.

An index follows an allocation strategy (its kind, lookback and rebalance schedule) over its
symbols, or over the top `universeTop` of the universe (stablecoins aside) at each rebalance,
from the first day all its candidates have daily candles. Its value starts at `INDEX_BASE`
and is computed from the stored candles whenever it is read (`index_values`, the backtest engine's
`run_allocation` without fees), so each new candle extends it and an import that corrects a
close corrects it too; nothing is stored but the rule.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

import numpy as np

from coinql.domain.allocation import run_allocation
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput
from coinql.domain.strategies import (
    AllocationConstraints,
    AllocationKind,
    Rebalance,
    StrategySpec,
    UniverseRank,
)
from coinql.domain.typing import FloatArray, IntArray
from coinql.resolvers.auth import require_user
from coinql.resolvers.context import Context
from coinql.resolvers.owned import delete_owned, get_owned
from coinql.resolvers.performance import offload
from coinql.resolvers.strategies import StrategyInput, validate_strategy
from coinql.store import indices as index_store
from coinql.store import market as market_store
from coinql.store.indices import SavedIndex

INDEX_BASE = 1_000.0  # an index's value on its first day
INTERVAL = Interval.D1
MAX_CANDIDATES = 200


@dataclass(frozen=True, slots=True)
class IndexRequest:
    name: str
    kind: str
    params: dict[str, object]
    symbols: list[str]
    universe_top: int | None
    universe_by: UniverseRank
    rebalance: Rebalance | None
    benchmark: str | None


@dataclass(frozen=True, slots=True)
class Rebalancing:
    """The weights an index took at one rebalance (epoch ms of its close)."""

    time: int
    weights: list[tuple[str, float]]


@dataclass(frozen=True, slots=True)
class IndexValues:
    """An index's value after each daily close from its first day, and its weights."""

    timestamps: IntArray
    values: FloatArray
    constituents: list[tuple[str, float]]  # held now, heaviest first
    rebalances: list[Rebalancing]


async def create_index(context: Context, request: IndexRequest) -> SavedIndex:
    """Validate the rule (an allocation strategy) and its benchmark, and save the index."""
    owner = (await require_user(context)).id
    if request.kind not in AllocationKind._value2member_map_:
        raise InvalidInput("kind", "an index follows an allocation strategy, e.g. marketCapWeight")
    if not request.symbols and request.universe_top is None:
        raise InvalidInput("universeTop", "give the symbols, or universeTop of the universe")
    spec = validate_strategy(
        StrategyInput(
            name=request.name,
            kind=request.kind,
            params=dict(request.params),
            symbols=request.symbols,
            universe_top=request.universe_top,
            constraints=AllocationConstraints(),
            rebalance=request.rebalance or Rebalance.MONTHLY,
            universe_by=request.universe_by,
        )
    )
    benchmark = request.benchmark.strip().upper() if request.benchmark else None
    async with context.services.reader() as session:
        wanted = [*spec.symbols, benchmark] if benchmark else spec.symbols
        known = await market_store.get_assets(session, symbols=wanted)
    unknown = [symbol for symbol in spec.symbols if symbol not in known]
    if unknown:
        raise InvalidInput("symbols", f"unknown symbols: {', '.join(unknown)}")
    if benchmark is not None and benchmark not in known:
        raise InvalidInput("benchmark", f"unknown symbol {benchmark}")
    async with context.services.transaction() as session:
        return await index_store.add_index(
            session,
            owner_id=owner,
            name=request.name.strip(),
            spec=spec.to_json(),
            benchmark=benchmark,
            now=context.services.now(),
        )


async def get_index(context: Context, *, index_id: uuid.UUID) -> SavedIndex:
    return await get_owned(
        context, partial(index_store.get_index, index_id=index_id), f"no index {index_id}"
    )


async def list_indices(context: Context, *, first: int, offset: int) -> list[SavedIndex]:
    owner = (await require_user(context)).id
    async with context.services.reader() as session:
        return await index_store.list_indices(session, owner_id=owner, offset=offset, limit=first)


async def delete_index(context: Context, *, index_id: uuid.UUID) -> uuid.UUID:
    await delete_owned(
        context, partial(index_store.get_index, index_id=index_id), f"no index {index_id}"
    )
    return index_id


async def index_values(context: Context, index: SavedIndex) -> IndexValues | None:
    """The index's values from its first day; None while its candidates have too little
    common history for its lookback."""
    spec = StrategySpec.from_json(index.spec)
    needed = int(spec.params.get("lookback", 90)) + 2
    async with context.services.reader() as session:
        if spec.symbols:
            assets = list((await market_store.get_assets(session, symbols=spec.symbols)).values())
        else:
            assets = await market_store.list_assets(
                session,
                order=market_store.AssetOrder.MARKET_CAP_DESC,  # the largest, if there are more
                where=market_store.AssetFilter(stablecoin=False),
                offset=0,
                limit=MAX_CANDIDATES,
            )
        candles = {}
        for asset in assets:
            series = await market_store.load_candles(
                session, asset=asset, interval=INTERVAL, start=None, end=None
            )
            if len(series) >= needed:
                candles[asset.symbol] = series
    if not candles:
        return None
    supply = {a.symbol: a.circulating_supply for a in assets if a.circulating_supply}
    try:
        found = await offload(
            sum(len(series) for series in candles.values()),
            partial(
                run_allocation,
                initial_capital=INDEX_BASE,
                fee_bps=0.0,
                periods_per_year=INTERVAL.periods_per_year,
                supply=supply,
            ),
            StrategySpec(
                spec.kind,
                spec.params,
                list(candles),
                spec.universe_top,
                spec.constraints,
                spec.rebalance,
                spec.universe_by,
            ),
            candles,
        )
    except InvalidInput:  # fewer common candles than the lookback needs
        return None
    return IndexValues(
        timestamps=found.timestamps,
        values=found.equity,
        constituents=_weights(found.symbols, found.weights[-1]),
        rebalances=[
            Rebalancing(int(found.timestamps[bar]), _weights(found.symbols, found.weights[bar]))
            for bar in found.rebalance_bars
        ],
    )


def _weights(symbols: list[str], weights: FloatArray) -> list[tuple[str, float]]:
    held = [(symbol, float(weight)) for symbol, weight in zip(symbols, weights, strict=True)]
    return sorted(
        ((symbol, weight) for symbol, weight in held if np.isfinite(weight) and weight > 1e-12),
        key=lambda item: -item[1],
    )
