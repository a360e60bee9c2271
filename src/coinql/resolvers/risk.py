"""Weighted baskets of stored assets for the risk report, PCA and the optimizer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from coinql.domain import covariance
from coinql.domain.basket import Basket, check_weights
from coinql.domain.candles import Interval
from coinql.domain.errors import InvalidInput
from coinql.domain.returns import ReturnKind
from coinql.domain.typing import FloatArray
from coinql.resolvers.context import Context
from coinql.resolvers.market import returns_matrix
from coinql.resolvers.performance import check_conventions, offload

MAX_COMPONENTS = 50


async def load_basket(
    context: Context,
    *,
    symbols: Sequence[str],
    weights: Sequence[float] | None,
    interval: Interval,
    start: int | None,
    end: int | None,
    periods_per_year: float | None = None,
) -> Basket:
    check_weights(symbols, weights)
    check_conventions(0.0, periods_per_year)
    matrix = await returns_matrix(
        context, symbols=symbols, interval=interval, start=start, end=end, kind=ReturnKind.SIMPLE
    )
    return Basket.of(
        matrix.symbols,
        matrix.timestamps,
        matrix.values,
        weights,
        periods_per_year or interval.periods_per_year,
    )


async def basket_covariance(
    basket: Basket, method: covariance.CovarianceMethod, decay: float
) -> FloatArray:
    """The per-period covariance of the basket's returns; `decay` is EWMA's lambda (checked
    whatever the method, so that a bad argument is never silently ignored)."""
    if not 0 < decay < 1:
        raise InvalidInput("ewmaDecay", "ewmaDecay must be between 0 and 1 (exclusive)")
    estimate = partial(covariance.covariance, method=method, decay=decay)
    return await offload(basket.returns.size, estimate, basket.returns)


async def principal_components(basket: Basket, components: int) -> covariance.Pca:
    if not 1 <= components <= MAX_COMPONENTS:
        raise InvalidInput("components", f"components must be between 1 and {MAX_COMPONENTS}")
    return await offload(basket.returns.size, covariance.pca, basket.returns, components)
