"""The CoinGecko market cap provider, against a mock transport."""

from __future__ import annotations

import httpx

from coinql.exchanges.coingecko import CoinGeckoMarketCaps


async def test_coingecko_provider_reads_market_caps() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v3/coins/markets"
        assert request.url.params["vs_currency"] == "usd"
        return httpx.Response(
            200,
            json=[
                {"symbol": "btc", "market_cap": 1.2e12, "circulating_supply": 19.5e6},
                {"symbol": "eth", "market_cap": 4e11, "circulating_supply": 1.2e8},
                {"symbol": "btc", "market_cap": 1.0, "circulating_supply": 1.0},  # a copycat
            ],
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        caps = await CoinGeckoMarketCaps(http).fetch(["BTC", "DOGE"])
    assert list(caps) == ["BTC"]
    assert caps["BTC"].market_cap == 1.2e12 and caps["BTC"].circulating_supply == 19.5e6
