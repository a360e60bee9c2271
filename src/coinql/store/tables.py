"""Every table, imported in one place so that `SQLModel.metadata` is complete for Alembic."""

from __future__ import annotations

from sqlmodel import SQLModel

from coinql.store.accounts import AccountSnapshot, ExchangeConnection, PaperAccount
from coinql.store.api_keys import ApiKey, AuditEntry
from coinql.store.auth import RefreshToken, User
from coinql.store.bots import Bot, BotFillRow, BotOrder
from coinql.store.candles import Candle
from coinql.store.derivatives import FundingRate, Perpetual, PerpetualBar
from coinql.store.indices import SavedIndex
from coinql.store.ingestion import IngestionState
from coinql.store.jobs import Job
from coinql.store.market import Asset, Market
from coinql.store.portfolio import LedgerEntry, Portfolio, Strategy
from coinql.store.risk import Alert, RiskLimits
from coinql.store.runs import BacktestRun, SimulationRun, StudyRun

metadata = SQLModel.metadata

__all__ = [
    "AccountSnapshot",
    "Alert",
    "ApiKey",
    "Asset",
    "AuditEntry",
    "BacktestRun",
    "Bot",
    "BotFillRow",
    "BotOrder",
    "Candle",
    "ExchangeConnection",
    "FundingRate",
    "IngestionState",
    "Job",
    "LedgerEntry",
    "Market",
    "PaperAccount",
    "Perpetual",
    "PerpetualBar",
    "Portfolio",
    "RefreshToken",
    "RiskLimits",
    "SavedIndex",
    "SimulationRun",
    "Strategy",
    "StudyRun",
    "User",
    "metadata",
]
