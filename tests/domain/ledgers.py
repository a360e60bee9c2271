"""Transactions in a line each, and the hand-worked book the ledger and valuation tests read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from coinql.domain.ledger import Transaction, TransactionKind


def tx(kind: str, asset: str, quantity: str, day: int, price: str | None = None, fee: str = "0"):  # type: ignore[no-untyped-def]
    return Transaction(
        TransactionKind(kind),
        asset,
        D(quantity),
        datetime(2020, 1, day, 12, tzinfo=UTC),
        D(price) if price else None,
        D(fee),
    )


# Worked by hand:
#   deposit 10,000.00
#   buy 0.5 BTC @ 7,200 + fee 3.60 -> lot A: 0.5 @ 7,207.20 (cost 3,603.60), cash 6,396.40
#   buy 0.3 BTC @ 8,000 + fee 2.40 -> lot B: 0.3 @ 8,008.00 (cost 2,402.40), cash 3,994.00
#   sell 0.6 BTC @ 9,000 - fee 5.40 -> proceeds 5,394.60
#       FIFO cost: 0.5 of A (3,603.60) + 0.1 of B (800.80) = 4,404.40 -> realized 990.20
#       cash 9,388.60; left 0.2 BTC of lot B at 8,008.00 (cost 1,601.60)
#   at 10,000: market value 2,000.00, unrealized 398.40, value 11,388.60
WORKED = [
    tx("DEPOSIT", "USDT", "10000", 1),
    tx("BUY", "BTC", "0.5", 2, "7200", "3.6"),
    tx("BUY", "BTC", "0.3", 3, "8000", "2.4"),
    tx("SELL", "BTC", "0.6", 10, "9000", "5.4"),
]
