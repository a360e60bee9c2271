"""Indicators over an asset's candles: one @oneOf spec per indicator, mapped to the domain's
`IndicatorSpec` and computed there (coinql.domain.indicators)."""

from __future__ import annotations

import strawberry

from coinql.domain import indicators as ind
from coinql.domain.bounds import Bounds
from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput
from coinql.schema.bounds import WEIGHT, bounded
from coinql.schema.scalars import FloatArray, TimestampArray

MAX_WINDOW = 10_000
WINDOW = Bounds(1, MAX_WINDOW)


@strawberry.input
class WindowInput:
    window: int = bounded(WINDOW, description="Periods.")


@strawberry.input
class BandsInput:
    window: int = bounded(WINDOW, default=20, description="Periods.")
    width: float = bounded(
        Bounds(0, 10, low_open=True), default=2.0, description="Standard deviations."
    )


@strawberry.input
class VolOfVolInput:
    window: int = bounded(WINDOW, description="Periods of each volatility.")
    outer_window: int | None = bounded(
        WINDOW, default=None, description="Periods of volatilities it varies over."
    )


@strawberry.input
class RegimeInput:
    window: int = bounded(WINDOW, description="Periods of each volatility.")
    lookback: int = bounded(WINDOW, default=365, description="Periods ranked against.")


@strawberry.input
class TrendInput:
    window: int = bounded(WINDOW, description="Periods of the trend's average.")
    band: float = bounded(WEIGHT, default=0.02, description="Around the average, a fraction.")


@strawberry.input(one_of=True, description="One indicator, e.g. {ema: {window: 20}}.")
class IndicatorSpec:
    sma: WindowInput | None = strawberry.UNSET
    ema: WindowInput | None = strawberry.UNSET
    rsi: WindowInput | None = strawberry.UNSET
    atr: WindowInput | None = strawberry.UNSET
    bollinger: BandsInput | None = strawberry.UNSET
    zscore: WindowInput | None = strawberry.UNSET
    vwap: WindowInput | None = strawberry.UNSET
    realized_volatility: WindowInput | None = strawberry.UNSET
    vol_of_vol: VolOfVolInput | None = strawberry.UNSET
    volatility_regime: RegimeInput | None = strawberry.UNSET
    trend_regime: TrendInput | None = strawberry.UNSET

    def to_model(self) -> ind.IndicatorSpec:
        """The one indicator chosen; `InvalidInput` naming `specs` if none is."""
        for kind in ind.IndicatorKind:
            chosen = getattr(self, _snake(kind.value))
            if chosen:
                return ind.IndicatorSpec(kind, **vars(chosen))
        raise InvalidInput("specs", "each spec names exactly one indicator")


@strawberry.type
class IndicatorSeries:
    name: str = strawberry.field(description='e.g. "ema(20)" or "bollinger(20,2).upper".')
    values: FloatArray


@strawberry.type(description="Indicators aligned on the candles' timestamps.")
class IndicatorSet:
    timestamps: TimestampArray
    series: list[IndicatorSeries]
    legend: list[str] = strawberry.field(description="What the regime series' codes mean.")


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


def indicator_set(
    specs: list[IndicatorSpec], candles: Candles, periods_per_year: float
) -> IndicatorSet:
    """The series of every spec (three for Bollinger bands), in order, on the candles."""
    series = [
        IndicatorSeries(name=found.name, values=found.values)
        for spec in specs
        for found in ind.compute(spec.to_model(), candles, periods_per_year)
    ]
    return IndicatorSet(timestamps=candles.timestamps, series=series, legend=ind.REGIME_LEGEND)
