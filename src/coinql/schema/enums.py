"""The domain's enums, registered once as GraphQL enums of the same names.

Schema modules import enums from here, so that registration happens before any type uses them.
"""

from __future__ import annotations

import strawberry

from coinql.domain.candles import Interval, ReturnKind
from coinql.domain.ledger import CostBasis, TransactionKind
from coinql.domain.optimize import Objective
from coinql.domain.performance import RollingMetric
from coinql.domain.risk import CovarianceMethod, VarMethod
from coinql.domain.strategies import Rebalance
from coinql.store.market import AssetOrder

strawberry.enum(Interval, description="Candle intervals.")
strawberry.enum(ReturnKind, description="SIMPLE: p1/p0 - 1. LOG: ln(p1/p0).")
strawberry.enum(AssetOrder, description="Orderings of the universe.")
strawberry.enum(VarMethod, description="How VaR and expected shortfall are estimated.")
strawberry.enum(CovarianceMethod, description="Covariance estimator.")
strawberry.enum(RollingMetric, description="Metric over a trailing window.")
strawberry.enum(TransactionKind, description="What a ledger transaction does.")
strawberry.enum(CostBasis, description="How sold units are costed: oldest lots first, or average.")
strawberry.enum(Objective, description="What the optimizer optimizes.")
strawberry.enum(Rebalance, description="How often an allocation strategy rebalances.")

__all__ = [
    "AssetOrder",
    "CostBasis",
    "CovarianceMethod",
    "Interval",
    "Objective",
    "Rebalance",
    "ReturnKind",
    "RollingMetric",
    "TransactionKind",
    "VarMethod",
]
