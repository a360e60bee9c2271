"""The domain's enums, registered once as GraphQL enums of the same names.

Schema modules import enums from here, so that registration happens before any type uses them.
"""

from __future__ import annotations

import strawberry

from coinql.domain.aggregate import Period
from coinql.domain.auth import ApiScope
from coinql.domain.backtest_config import Direction, FillPrice, Sizing
from coinql.domain.candles import Interval
from coinql.domain.covariance import CovarianceMethod
from coinql.domain.errors import AccountFailure
from coinql.domain.ledger import CostBasis, TransactionKind
from coinql.domain.optimize import Objective
from coinql.domain.performance import RollingMetric
from coinql.domain.research import SplitMode
from coinql.domain.returns import ReturnKind
from coinql.domain.risk import VarMethod
from coinql.domain.simulation import SimulationMethod
from coinql.domain.strategies import Rebalance, UniverseRank
from coinql.domain.trades import ExitReason
from coinql.store.jobs import JobKind, JobStatus
from coinql.store.market import AssetOrder

strawberry.enum(Interval, description="Candle intervals.")
strawberry.enum(ReturnKind, description="SIMPLE: p1/p0 - 1. LOG: ln(p1/p0).")
strawberry.enum(AssetOrder, description="Orderings of the universe.")
strawberry.enum(VarMethod, description="How VaR and expected shortfall are estimated.")
strawberry.enum(CovarianceMethod, description="Covariance estimator.")
strawberry.enum(RollingMetric, description="Metric over a trailing window.")
strawberry.enum(
    Period,
    name="AggregationPeriod",
    description="Calendar buckets (UTC); weeks open on Monday 00:00, as W1 candles.",
)
strawberry.enum(TransactionKind, description="What a ledger transaction does.")
strawberry.enum(CostBasis, description="How sold units are costed: oldest lots first, or average.")
strawberry.enum(Objective, description="What the optimizer optimizes.")
strawberry.enum(Rebalance, description="How often an allocation strategy rebalances.")
strawberry.enum(
    UniverseRank,
    description="How universeTop ranks the candidates at each rebalance, from what was known"
    " then. QUOTE_VOLUME: traded quote volume over the lookback. MARKET_CAP: the close at the"
    " rebalance times the circulating supply as stored now (a coin without one ranks last).",
)
strawberry.enum(FillPrice, description="CLOSE: the signal bar's close; NEXT_OPEN: the next open.")
strawberry.enum(Direction, description="Long only, or long and short.")
strawberry.enum(Sizing, description="How much each entry buys.")
strawberry.enum(ExitReason, description="Why a trade ended (END: still open at the last bar).")
strawberry.enum(SimulationMethod, description="How Monte Carlo paths are drawn.")
strawberry.enum(SplitMode, description="Walk-forward windows: sliding, or growing from the start.")
strawberry.enum(JobKind, description="What a job computes.")
strawberry.enum(JobStatus, description="Where a job is; the last four are final.")
strawberry.enum(ApiScope, description="What an API key may do.")
strawberry.enum(AccountFailure, description="Why an exchange call failed (ccxt's error classes).")

__all__ = [
    "AccountFailure",
    "ApiScope",
    "AssetOrder",
    "CostBasis",
    "CovarianceMethod",
    "Direction",
    "ExitReason",
    "FillPrice",
    "Interval",
    "JobKind",
    "JobStatus",
    "Objective",
    "Period",
    "Rebalance",
    "ReturnKind",
    "RollingMetric",
    "SimulationMethod",
    "Sizing",
    "SplitMode",
    "TransactionKind",
    "UniverseRank",
    "VarMethod",
]
