"""What the tear-sheet tests share: quantstats as an oracle, fresh random series, comparison."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

P = 365


def quantstats():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats as qs
    return qs


def vectorbt():  # type: ignore[no-untyped-def]
    """vectorbt, imported without its warnings (numba's deprecations as it loads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import vectorbt as vbt
    return vbt


def oracle(function: Callable[..., Any], *args: Any, **options: Any) -> Any:
    """Call a reference function; its warnings (a NaN it returns, pandas' deprecations) are
    not ours."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return function(*args, **options)


def as_series(returns: np.ndarray, timestamps: np.ndarray | None = None) -> pd.Series:
    """The returns as quantstats wants them: a Series on a DatetimeIndex (daily by default)."""
    if timestamps is None:
        index = pd.date_range("2017-01-02", periods=returns.shape[0], freq="D")
    else:
        index = pd.DatetimeIndex(pd.to_datetime(timestamps, unit="ms"))
    return pd.Series(returns, index=index)


def fresh_seed() -> int:
    """A seed drawn now, so each run tries another series; the assertion messages print it."""
    return int(np.random.SeedSequence().entropy % 2**63)


def random_returns(seed: int, n: int = 1_000, *, missing: float = 0.0) -> np.ndarray:
    """Fat-tailed daily returns with some autocorrelation, exact zeros and, optionally, gaps.

    An AR(1) of Student-t shocks (rho 0.15, 4 degrees of freedom) around a small drift; about
    3 % of the days are exactly 0 (a flat day) and a share `missing` NaN.
    """
    rng = np.random.default_rng(seed)
    shocks = 0.03 * rng.standard_t(4, size=n)
    returns = np.empty(n)
    previous = 0.0
    for i in range(n):  # n is small; an AR(1) is a recursion
        previous = 0.15 * previous + shocks[i]
        returns[i] = previous
    returns = np.clip(returns + 0.0008, -0.9, 0.9)
    returns[rng.random(n) < 0.03] = 0.0
    returns[rng.random(n) < missing] = np.nan
    return returns


def close(ours: Any, theirs: Any, context: object) -> None:
    """Equal within 1e-9 relative (1e-12 absolute near 0), or both undefined."""
    ours, theirs = float(ours), float(theirs)
    if np.isnan(theirs):
        assert np.isnan(ours), f"{context}: ours {ours}, theirs NaN"
    else:
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), (
            f"{context}: ours {ours}, theirs {theirs}"
        )
