"""The one clock of the business's "now" outside domain/ (which takes `now` as an argument).

`Services.now` reads it, and the app hands `services.now` to what it starts (feed, risk
monitor, ingestion), so a test that sets the time sets it for all. The market's time
(`Services.market_now`: the feed's ticks and candles, and the bots trading on them) is the same
clock, except for an accelerated demo (COINQL_DEMO_SPEED), whose market runs faster than the
wall clock; sign-ins, tokens and audit entries keep the real time. Timeouts and durations
measure with `time.monotonic()` instead: they are not a time of day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system's time, timezone-aware in UTC."""
    return datetime.now(UTC)


def epoch_ms(clock: Clock) -> int:
    """The clock's time in epoch milliseconds (ticks and candles are stamped so)."""
    return int(clock().timestamp() * 1000)


def accelerated(origin: datetime, speed: float) -> Clock:
    """A clock at `origin` now, running `speed` times as fast as real time from here."""
    started = time.monotonic()

    def now() -> datetime:
        return origin + timedelta(seconds=(time.monotonic() - started) * speed)

    return now
