"""Market caps from a provider: CoinGecko's public API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True, slots=True)
class MarketCap:
    symbol: str
    market_cap: float | None
    circulating_supply: float | None


class MarketCapProvider(Protocol):
    async def fetch(self, symbols: list[str]) -> dict[str, MarketCap]: ...


class CoinGeckoMarketCaps:
    """Market caps from CoinGecko's public `/coins/markets` endpoint (USD)."""

    URL = "https://api.coingecko.com/api/v3/coins/markets"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def fetch(self, symbols: list[str]) -> dict[str, MarketCap]:
        wanted = {symbol.upper() for symbol in symbols}
        response = await self.http.get(
            self.URL,
            params={"vs_currency": "usd", "order": "market_cap_desc", "per_page": 250, "page": 1},
            timeout=15,
        )
        response.raise_for_status()
        found: dict[str, MarketCap] = {}
        for coin in response.json():
            symbol = str(coin.get("symbol", "")).upper()
            if symbol in wanted and symbol not in found:  # the first is the largest by cap
                found[symbol] = MarketCap(
                    symbol, coin.get("market_cap"), coin.get("circulating_supply")
                )
        return found
