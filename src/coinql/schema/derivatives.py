"""An asset's perpetual: funding rates, open interest and basis (fields of `Asset`)."""

from __future__ import annotations

from typing import Self

import strawberry

from coinql.resolvers.derivatives import Funding, PerpetualSeries
from coinql.schema.performance import Series
from coinql.schema.scalars import FloatArray, TimestampArray


@strawberry.type(
    description="Fundings of the asset's perpetual: parallel arrays, one entry per funding."
)
class FundingSeries:
    timestamps: TimestampArray = strawberry.field(description="When each was paid, epoch ms.")
    rates: FloatArray = strawberry.field(
        description="Per funding period (0.0001 = 0.01 %); positive when longs pay shorts."
    )
    data_source: str = strawberry.field(
        description='"demo" (synthetic, not market data) or an exchange id.'
    )

    @classmethod
    def from_model(cls, funding: Funding) -> Self:
        return cls(
            timestamps=funding.rates.timestamps,
            rates=funding.rates.rates,
            data_source=funding.data_source,
        )


def series(found: PerpetualSeries) -> Series:
    return Series(timestamps=found.timestamps, values=found.values)
