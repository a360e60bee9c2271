"""Every broadcast channel name, in one place. Payloads are JSON objects."""

from __future__ import annotations

PREFIX = "coinql"


def prices(symbol: str) -> str:
    """{symbol, price, timestamp (ms), source}"""
    return f"{PREFIX}.prices.{symbol.upper()}"


def candles(symbol: str, interval: str) -> str:
    """{symbol, interval, timestamp, open, high, low, close, volume, closed}"""
    return f"{PREFIX}.candles.{symbol.upper()}.{interval}"


def job(job_id: object) -> str:
    """{jobId, status, progress, stage}"""
    return f"{PREFIX}.jobs.{job_id}"


def alerts(user_id: object) -> str:
    """{portfolioId, limit, observed, threshold, triggeredAt}"""
    return f"{PREFIX}.alerts.{user_id}"


def revocations() -> str:
    """{sessionId, userId}: close the sockets of that login session, or of that user"""
    return f"{PREFIX}.revocations"


def series_written() -> str:
    """{origin, markets}: the candles of these markets changed (drop their cached series)"""
    return f"{PREFIX}.series-written"


def bot(bot_id: object) -> str:
    """{botId, timestamp, kind: order | fill | status | value, ...}: one bot's events"""
    return f"{PREFIX}.bots.{bot_id}"


def ledger(portfolio_id: object) -> str:
    """{portfolioId}: the portfolio's ledger changed (its live value reloads it)"""
    return f"{PREFIX}.ledgers.{portfolio_id}"
