"""Declared bounds of numeric inputs: the interval a number must lie in and, for exact
decimals, how many places it may have.

A bound is checked before any arithmetic, and the check itself does none: decimals are compared
exactly whatever their exponent, so `Decimal("1e999999999")` is refused instead of overflowing
a context later, and NaN, infinities and signalling NaN are refused before a comparison could
trap on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

Number = int | float | Decimal


@dataclass(frozen=True, slots=True)
class Bounds:
    """`low` to `high`, each end inclusive unless `low_open` / `high_open`; `places` is the
    most digits a decimal may have after the point (trailing zeros not counted)."""

    low: Number
    high: Number
    low_open: bool = False
    high_open: bool = False
    places: int | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"empty bounds: {self.low} > {self.high}")

    def describe(self) -> str:
        """The bounds as a clause: "at least 1 and at most 100,000"."""
        low = f"{'more than' if self.low_open else 'at least'} {_number(self.low)}"
        high = f"{'less than' if self.high_open else 'at most'} {_number(self.high)}"
        places = "" if self.places is None else f", with at most {self.places} decimal places"
        return f"{low} and {high}{places}"

    def problem(self, value: Number) -> str | None:
        """What is wrong with `value` ("must be at least 0 and at most 1"), or None when it
        lies within the bounds."""
        if isinstance(value, Decimal):
            if not value.is_finite():
                return "must be a finite number"
            if self.places is not None and decimal_places(value) > self.places:
                return f"must be {self.describe()}"
        elif isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        too_low = value <= self.low if self.low_open else value < self.low
        too_high = value >= self.high if self.high_open else value > self.high
        if too_low or too_high:
            return f"must be {self.describe()}"
        return None


def decimal_places(value: Decimal) -> int:
    """Digits after the point of a finite decimal, not counting trailing zeros ("1.50" has 1),
    read from its exact representation."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "finite decimals only"
    if exponent >= 0 or not any(digits):
        return 0
    trailing = 0
    for digit in reversed(digits):
        if digit != 0 or trailing == -exponent:
            break
        trailing += 1
    return -exponent - trailing


def _number(value: Number) -> str:
    if isinstance(value, Decimal | float) and value == int(value):
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"
