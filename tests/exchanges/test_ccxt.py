"""The ccxt exchange adapter, through an object with ccxt's interface: pages, duplicates,
rate limits and network errors."""

from __future__ import annotations

import ccxt
import pytest

from coinql.domain.candles import DAY_MS, Interval
from tests.fakes import TODAY, FakeExchange, Sleeps, adapter_for, ohlcv_rows

START = TODAY - 30 * DAY_MS  # 30 closed daily candles: START .. TODAY - 1 day


async def test_pages_are_followed_and_duplicates_dropped() -> None:
    exchange = FakeExchange({("BTC/USDT", "1d"): ohlcv_rows(START, 31)})  # the last is forming
    candles = await adapter_for(exchange).fetch_candles("BTC", Interval.D1, since=START)
    assert candles.timestamps.tolist() == [START + i * DAY_MS for i in range(30)]
    assert len(exchange.calls) > 4  # 7 per page with overlaps
    assert all(call["timeframe"] == "1d" and call["limit"] == 7 for call in exchange.calls)


async def test_rate_limit_and_network_errors_back_off_then_succeed() -> None:
    sleeps = Sleeps()
    exchange = FakeExchange(
        {("BTC/USDT", "1d"): ohlcv_rows(START, 5)},
        failures=[ccxt.RateLimitExceeded("429"), ccxt.ExchangeNotAvailable("503")],
    )
    candles = await adapter_for(exchange, sleeps).fetch_candles("BTC", Interval.D1, since=START)
    assert len(candles) == 5
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 1.0 and 0 <= sleeps.delays[1] <= 2.0  # full jitter


async def test_persistent_network_errors_give_up_after_max_attempts() -> None:
    sleeps = Sleeps()
    exchange = FakeExchange({}, always_fail=ccxt.RequestTimeout("timed out"))
    with pytest.raises(ccxt.RequestTimeout):
        await adapter_for(exchange, sleeps).fetch_candles("BTC", Interval.D1, since=START)
    assert len(exchange.calls) == 4
    assert len(sleeps.delays) == 3


async def test_bad_symbol_is_not_retried() -> None:
    sleeps = Sleeps()
    exchange = FakeExchange({})
    with pytest.raises(ccxt.BadSymbol):
        await adapter_for(exchange, sleeps).fetch_candles("NOPE", Interval.D1, since=START)
    assert len(exchange.calls) == 1 and sleeps.delays == []
