"""The domain's enums, registered once as GraphQL enums of the same names.

Schema modules import enums from here, so that registration happens before any type uses them.
"""

from __future__ import annotations

import strawberry

from coinql.domain.candles import Interval, ReturnKind
from coinql.domain.performance import RollingMetric
from coinql.domain.risk import CovarianceMethod, VarMethod
from coinql.store.market import AssetOrder

strawberry.enum(Interval, description="Candle intervals.")
strawberry.enum(ReturnKind, description="SIMPLE: p1/p0 - 1. LOG: ln(p1/p0).")
strawberry.enum(AssetOrder, description="Orderings of the universe.")
strawberry.enum(VarMethod, description="How VaR and expected shortfall are estimated.")
strawberry.enum(CovarianceMethod, description="Covariance estimator.")
strawberry.enum(RollingMetric, description="Metric over a trailing window.")

__all__ = [
    "AssetOrder",
    "CovarianceMethod",
    "Interval",
    "ReturnKind",
    "RollingMetric",
    "VarMethod",
]
