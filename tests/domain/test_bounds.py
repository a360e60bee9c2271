"""Bounds of numeric inputs: both ends open or closed, decimal places counted exactly, and
non-finite numbers refused before any comparison."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pytest

from coinql.domain.bounds import Bounds, Number, decimal_places


@pytest.mark.parametrize(
    ("value", "places"),
    [
        (D("1.50"), 1),
        (D("1.05"), 2),
        (D("100"), 0),
        (D("1E+3"), 0),
        (D("0.000"), 0),
        (D("-0.10"), 1),
        (D("1E-18"), 18),
        (D("10.000000"), 0),
        (D("1e-999999999"), 999999999),
    ],
)
def test_decimal_places_ignore_trailing_zeros(value: D, places: int) -> None:
    assert decimal_places(value) == places


@pytest.mark.parametrize(
    ("bounds", "value", "problem"),
    [
        (Bounds(0, 1), 0, None),
        (Bounds(0, 1), 1.0, None),
        (Bounds(0, 1, low_open=True), 0, "must be more than 0 and at most 1"),
        (Bounds(0, 1, high_open=True), D(1), "must be at least 0 and less than 1"),
        (Bounds(0, 1), -0.001, "must be at least 0 and at most 1"),
        (Bounds(0.5, 2.5), 3, "must be at least 0.5 and at most 2.5"),
        (Bounds(1, 100_000), 100_001, "must be at least 1 and at most 100,000"),
        (Bounds(0.0, D("1e6")), -1, "must be at least 0 and at most 1,000,000"),
        (Bounds(0, 10, places=2), D("1.25"), None),
        (Bounds(0, 10, places=2), D("1.250"), None),
        (
            Bounds(0, 10, places=2),
            D("1.255"),
            "must be at least 0 and at most 10, with at most 2 decimal places",
        ),
        (Bounds(0, 10), math.nan, "must be a finite number"),
        (Bounds(0, 10), math.inf, "must be a finite number"),
        (Bounds(0, 10), D("NaN"), "must be a finite number"),
        (Bounds(0, 10), D("sNaN"), "must be a finite number"),
        (Bounds(0, 10), D("-Infinity"), "must be a finite number"),
        (
            Bounds(0, 10, places=2),
            D("1e999999999"),
            "must be at least 0 and at most 10, with at most 2 decimal places",
        ),
    ],
)
def test_problem_names_the_bounds(bounds: Bounds, value: Number, problem: str | None) -> None:
    assert bounds.problem(value) == problem


def test_empty_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="empty bounds"):
        Bounds(2, 1)
    assert Bounds(1, 1).problem(1) is None
