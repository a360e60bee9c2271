"""The one clock of the business's "now" outside domain/ (which takes `now` as an argument).

`Services.now` reads it, and the app hands `services.now` to what it starts (feed, risk
monitor, ingestion), so a test that sets the time sets it for all. Timeouts and durations
measure with `time.monotonic()` instead: they are not a time of day.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system's time, timezone-aware in UTC."""
    return datetime.now(UTC)


def epoch_ms(clock: Clock) -> int:
    """The clock's time in epoch milliseconds (ticks and candles are stamped so)."""
    return int(clock().timestamp() * 1000)
