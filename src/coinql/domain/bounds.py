"""Declared bounds of numeric inputs.

A bound is the interval a number must lie in and, for exact decimals, how many places it may
have.

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
    """The interval a number must lie in and, for decimals, its most decimal places.

    Parameters
    ----------
    low, high : int, float or Decimal
        The ends of the interval, `low <= high`.
    low_open, high_open : bool, default False
        Whether the end is excluded.
    places : int or None, default None
        The most digits a decimal may have after the point (trailing zeros not counted);
        None for no limit.

    Raises
    ------
    ValueError
        When `low > high` (or either end is NaN).
    """

    low: Number
    high: Number
    low_open: bool = False
    high_open: bool = False
    places: int | None = None

    def __post_init__(self) -> None:
        """Refuse empty bounds."""
        if not self.low <= self.high:
            raise ValueError(f"empty bounds: {self.low} > {self.high}")

    def describe(self) -> str:
        """Describe the bounds as a clause.

        Returns
        -------
        str
            E.g. "at least 1 and at most 100,000", with ", with at most 2 decimal places"
            when `places` is set.
        """
        low = f"{'more than' if self.low_open else 'at least'} {_number(self.low)}"
        high = f"{'less than' if self.high_open else 'at most'} {_number(self.high)}"
        places = "" if self.places is None else f", with at most {self.places} decimal places"
        return f"{low} and {high}{places}"

    def problem(self, value: Number) -> str | None:
        """Say what is wrong with `value`, doing no arithmetic on it.

        Parameters
        ----------
        value : int, float or Decimal
            The number to check.

        Returns
        -------
        str or None
            The problem ("must be at least 0 and at most 1", "must be a finite number"), or
            None when `value` lies within the bounds. NaN, infinities and signalling NaN are
            refused as not finite.
        """
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
    """Count the digits after the point of a finite decimal.

    Read from its exact representation, so any exponent is safe.

    Parameters
    ----------
    value : Decimal
        A finite decimal.

    Returns
    -------
    int
        The digits after the point, not counting trailing zeros ("1.50" has 1, "100" has 0).
    """
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
