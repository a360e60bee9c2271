"""The real daily series of ../shared/data/coins-daily as arrays, for oracle tests."""

from __future__ import annotations

from functools import cache

import numpy as np

from coinql.domain.imports import ParsedFile, parse_candle_file
from tests.conftest import COINS_DIR

NAMES = {
    "BTC": "Bitcoin",
    "ETH": "Ethereum",
    "BNB": "BinanceCoin",
    "ADA": "Cardano",
    "DOGE": "Dogecoin",
    "LTC": "Litecoin",
}


@cache
def parsed(symbol: str) -> ParsedFile:
    return parse_candle_file((COINS_DIR / f"coin_{NAMES[symbol]}.csv").read_bytes())


def daily_returns(symbol: str) -> np.ndarray:
    close = parsed(symbol).candles.close
    return close[1:] / close[:-1] - 1.0


def aligned_returns(symbols: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, returns of shape (n, len(symbols))) on the days all symbols share."""
    series = [parsed(symbol).candles for symbol in symbols]
    common = series[0].timestamps
    for candles in series[1:]:
        common = np.intersect1d(common, candles.timestamps)
    closes = np.column_stack([c.close[np.searchsorted(c.timestamps, common)] for c in series])
    return common[1:], closes[1:] / closes[:-1] - 1.0
