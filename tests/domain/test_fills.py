"""Pairing entries with exits: the vectorized pairing equals the one-trade-at-a-time rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coinql.domain import fills


def one_by_one(enter: list[int], leave: list[int], last_bar: int) -> tuple[list, list, bool]:
    """The rule as stated: the first entry from `bar` on, the first exit after it."""
    starts, ends, bar = [], [], 0
    while True:
        entries = [e for e in enter if e >= bar]
        if not entries:
            return starts, ends, False
        starts.append(entries[0])
        exits = [x for x in leave if x > entries[0]]
        if not exits:
            ends.append(last_bar)
            return starts, ends, True
        ends.append(exits[0])
        bar = exits[0] + 1


bars = st.lists(st.integers(0, 60), max_size=25, unique=True).map(sorted)


@given(bars, bars)
def test_pairing_follows_the_rule(enter: list[int], leave: list[int]) -> None:
    starts, ends, still_open = fills.pair_signals(
        np.asarray(enter, dtype=np.int64), np.asarray(leave, dtype=np.int64), 60
    )
    expected = one_by_one(enter, leave, 60)
    assert (starts.tolist(), ends.tolist(), still_open) == expected
    assert starts.dtype == ends.dtype == np.int64


@pytest.mark.parametrize(
    ("enter", "leave", "expected"),
    [
        ([2, 5, 9], [3, 5, 7], ([2, 5, 9], [3, 7, 20], True)),  # bar 5 both: enters after 3
        ([1, 4], [4, 6], ([1], [4], False)),  # bar 4 exits and cannot re-enter the same bar
        ([], [3], ([], [], False)),
        ([3], [], ([3], [20], True)),
    ],
)
def test_a_bar_that_both_enters_and_exits(
    enter: list[int], leave: list[int], expected: tuple
) -> None:
    starts, ends, still_open = fills.pair_signals(
        np.asarray(enter, dtype=np.int64), np.asarray(leave, dtype=np.int64), 20
    )
    assert (starts.tolist(), ends.tolist(), still_open) == expected
