"""Research on signal strategies: parameter sweeps and walk-forward validation.

A sweep runs every combination of a grid of parameters on the same candles and reports a
metrics table and the best combination by a chosen metric. Indicators are computed once per
distinct window and shared by every combination that uses it, and each combination takes the
engine's vectorized path when its configuration allows.

Walk-forward validation splits the candles into successive train/test windows (rolling:
a fixed-length train window that slides; anchored: a train window that always starts at the
first candle), picks the best parameters on each train window, runs them on the following test
window, and reports in-sample against out-of-sample metrics and their decay (OOS / IS).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from coinql.domain import backtest as bt
from coinql.domain import backtest_config as bc
from coinql.domain import indicators as ind
from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput
from coinql.domain.expressions import signals_from_params
from coinql.domain.metrics import Metrics, finite, summarize
from coinql.domain.signals import crossed_above, lookback, signals
from coinql.domain.strategies import SignalKind, StrategySpec, validate_signal
from coinql.domain.typing import Progress

MAX_COMBINATIONS = 5_000
METRICS = ("total_return", "sharpe", "sortino", "calmar", "max_drawdown", "trade_count")


class SplitMode(StrEnum):
    """How walk-forward train windows move: ROLLING slides them, ANCHORED starts each at bar 0."""

    ROLLING = "ROLLING"
    ANCHORED = "ANCHORED"


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One combination of a sweep and its metrics (all None when the candles were too few)."""

    params: dict[str, Any]
    metrics: Metrics


@dataclass(frozen=True, slots=True)
class SweepResult:
    """A sweep's rows in the order of `combinations`, and the best row by `metric`, if any."""

    metric: str
    rows: list[SweepRow]
    best: SweepRow | None


def combinations(kind: str, grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Return every valid combination of the grid, validated like a strategy.

    Combinations that are not a strategy (e.g. fast >= slow) are skipped.

    Parameters
    ----------
    kind : str
        A signal strategy kind (`SignalKind` value).
    grid : dict of str to list
        The values of each parameter.

    Returns
    -------
    list of dict
        Validated parameters, in the product order of the sorted parameter names.

    Raises
    ------
    InvalidInput
        ("grid") When a parameter has no values, the grid has more than `MAX_COMBINATIONS`
        combinations, or none of them is valid (saying why the first is not).
    """
    if not grid or any(not values for values in grid.values()):
        raise InvalidInput("grid", "give at least one value for each parameter")
    names = sorted(grid)
    total = int(np.prod([len(grid[name]) for name in names]))
    if total > MAX_COMBINATIONS:
        raise InvalidInput("grid", f"{total} combinations; at most {MAX_COMBINATIONS}")
    valid, first_refusal = [], ""
    for values in itertools.product(*(grid[name] for name in names)):
        params = dict(zip(names, values, strict=True))
        try:
            valid.append(validate_signal(SignalKind(kind), params))
        except InvalidInput as refused:  # e.g. fast >= slow: not a strategy, skipped
            first_refusal = first_refusal or refused.message
    if not valid:
        raise InvalidInput(
            "grid", f"no combination of the grid is a valid strategy (the first: {first_refusal})"
        )
    return valid


def _metrics(result: bt.BacktestResult, periods_per_year: float) -> Metrics:
    """Summarize one run for a sweep: its total return is the equity's (end / start - 1)."""
    return replace(
        summarize(result.returns, periods_per_year),
        total_return=finite(result.equity[-1] / result.equity[0] - 1),
        trade_count=result.trade_count,
    )


class _Averages:
    """Moving averages by (kind, window), and an expression's parts, computed once per sweep."""

    def __init__(self, close: Any) -> None:
        self.close = close
        self.cache: dict[tuple[str, int], Any] = {}
        self.parts: dict[Any, Any] = {}  # `coinql.domain.expressions.evaluate`'s memo

    def get(self, kind: str, window: int) -> Any:
        key = (kind, window)
        if key not in self.cache:
            function: Callable[[Any, int], Any] = ind.sma if kind == "sma" else ind.ema
            self.cache[key] = function(self.close, window)
        return self.cache[key]


def _signals(kind: str, params: dict[str, Any], candles: Candles, averages: _Averages) -> Any:
    if kind in (SignalKind.SMA_CROSS.value, SignalKind.EMA_CROSS.value):
        family = "sma" if kind == SignalKind.SMA_CROSS.value else "ema"
        fast = averages.get(family, int(params["fast"]))
        slow = averages.get(family, int(params["slow"]))
        return crossed_above(fast, slow), crossed_above(slow, fast)
    if kind == SignalKind.EXPRESSION.value:
        return signals_from_params(params).signals(candles, averages.parts)
    return signals(StrategySpec(kind, params), candles)


def sweep(
    kind: str,
    grid: dict[str, list[Any]],
    candles: Candles,
    config: bc.BacktestConfig,
    metric: str = "sharpe",
    progress: Progress | None = None,
    part: tuple[int, int] | None = None,
) -> SweepResult:
    """Backtest every combination of the grid on the same candles.

    Parameters
    ----------
    kind : str
        A signal strategy kind (`SignalKind` value).
    grid : dict of str to list
        The values of each parameter.
    candles : Candles
    config : BacktestConfig
    metric : str, default "sharpe"
        One of `METRICS`; the best row maximises it (minimises max_drawdown).
    progress : callable, optional
        Called with the share of combinations done, after each one that ran.
    part : tuple of int, optional
        Only the combinations [start, stop) of `combinations`' list (a chunk of a sweep run
        on several workers: each row depends on its combination alone, so the chunks' rows
        in order are the whole sweep's).

    Returns
    -------
    SweepResult
        A combination whose lookback does not fit the candles gets empty metrics; with
        `part`, the best row is the part's.

    Raises
    ------
    InvalidInput
        When `metric` is unknown ("metric") or the grid is invalid ("grid").
    """
    if metric not in METRICS:
        raise InvalidInput("metric", f"metric must be one of {', '.join(METRICS)}")
    params_list = combinations(kind, grid)
    if part is not None:
        params_list = params_list[part[0] : part[1]]
    averages = _Averages(candles.close)
    rows = []
    for index, params in enumerate(params_list):
        needed = lookback(StrategySpec(kind, params)) + 2
        if len(candles) < needed:
            rows.append(SweepRow(params, Metrics()))
            continue
        enter, leave = _signals(kind, params, candles, averages)
        result = bt.simulate(candles, enter, leave, config, record_trades=False)
        rows.append(SweepRow(params, _metrics(result, config.periods_per_year)))
        if progress is not None:
            progress((index + 1) / len(params_list))
    return SweepResult(metric, rows, best_row(rows, metric))


def best_row(rows: list[SweepRow], metric: str) -> SweepRow | None:
    """Return the row that maximises `metric` (minimises max_drawdown).

    Parameters
    ----------
    rows : list of SweepRow
    metric : str
        One of `METRICS`.

    Returns
    -------
    SweepRow or None
        Rows whose metric is None are skipped; None when no row has a value. Ties go to the
        first row.
    """
    scored = [row for row in rows if row.metrics[metric] is not None]
    if not scored:
        return None
    sign = -1.0 if metric == "max_drawdown" else 1.0
    return max(scored, key=lambda row: sign * float(row.metrics[metric] or 0.0))


def _part(progress: Progress | None, part: int, parts: int) -> Progress | None:
    """Scale `progress` to part `part` (from 0) of a run in `parts` equal parts."""
    if progress is None:
        return None

    def report(fraction: float) -> None:
        progress((part + fraction) / parts)

    return report


@dataclass(frozen=True, slots=True)
class Split:
    """One walk-forward window: train and test bar ranges, each [start, end)."""

    train: tuple[int, int]  # bar indexes [start, end)
    test: tuple[int, int]


def splits(n: int, *, train: int, test: int, mode: SplitMode) -> list[Split]:
    """Cut `n` bars into successive train/test windows.

    Each test window follows its train window; the next split starts `test` bars later.

    Parameters
    ----------
    n : int
        The number of bars.
    train, test : int
        The bars of each train and test window, at least 2 each.
    mode : SplitMode
        ROLLING slides the train window; ANCHORED starts it at bar 0 and lets it grow.

    Returns
    -------
    list of Split
        As many as fit in `n` bars.

    Raises
    ------
    InvalidInput
        ("trainBars") When a window is shorter than 2 bars or train + test exceeds `n`.
    """
    if train < 2 or test < 2:
        raise InvalidInput("trainBars", "train and test windows need at least 2 bars each")
    if train + test > n:
        raise InvalidInput(
            "trainBars", f"train ({train}) + test ({test}) bars exceed the {n} candles"
        )
    found = []
    start = 0
    while start + train + test <= n:
        train_start = 0 if mode is SplitMode.ANCHORED else start
        found.append(Split((train_start, start + train), (start + train, start + train + test)))
        start += test
    return found


@dataclass(frozen=True, slots=True)
class WalkForwardSplit:
    """One window's chosen parameters with their in-sample and out-of-sample metrics."""

    split: Split
    params: dict[str, Any]
    in_sample: Metrics
    out_of_sample: Metrics


@dataclass(frozen=True, slots=True)
class WalkForwardResult:
    """The walk-forward windows that found a best combination, and the metric they used."""

    metric: str
    splits: list[WalkForwardSplit] = field(default_factory=list)

    @property
    def decay(self) -> float | None:
        """The mean out-of-sample metric over the mean in-sample metric.

        Windows whose metric is None are left out of each mean; None without any value on
        either side or when the in-sample mean is zero.
        """
        ins = [
            s.in_sample[self.metric] for s in self.splits if s.in_sample[self.metric] is not None
        ]
        outs = [
            s.out_of_sample[self.metric]
            for s in self.splits
            if s.out_of_sample[self.metric] is not None
        ]
        if not ins or not outs or np.mean(ins) == 0:  # type: ignore[arg-type]
            return None
        return float(np.mean(outs) / np.mean(ins))  # type: ignore[arg-type]


def walk_forward(
    kind: str,
    grid: dict[str, list[Any]],
    candles: Candles,
    config: bc.BacktestConfig,
    *,
    train: int,
    test: int,
    mode: SplitMode,
    metric: str = "sharpe",
    progress: Progress | None = None,
    part: tuple[int, int] | None = None,
) -> WalkForwardResult:
    """Optimise on each train window and evaluate out of sample on the next test window.

    The test run sees the train window's bars too, as warm-up for its indicators, but only
    trades and counts returns inside the test window.

    Parameters
    ----------
    kind : str
        A signal strategy kind (`SignalKind` value).
    grid : dict of str to list
        The values of each parameter.
    candles : Candles
    config : BacktestConfig
    train, test : int
        The bars of each train and test window.
    mode : SplitMode
    metric : str, default "sharpe"
        The metric each train window's sweep selects by (see `sweep`).
    progress : callable, optional
        Called with the share done, after each combination of each window's sweep.
    part : tuple of int, optional
        Only the windows [start, stop) of `splits`' list (a chunk of a run on several
        workers: each window is optimised and tested on its own).

    Returns
    -------
    WalkForwardResult
        Windows whose sweep found no best combination are left out.

    Raises
    ------
    InvalidInput
        When the windows do not fit ("trainBars"), the metric is unknown or the grid invalid.
    """
    windows = splits(len(candles), train=train, test=test, mode=mode)
    if part is not None:
        windows = windows[part[0] : part[1]]
    results = []
    for index, window in enumerate(windows):
        train_candles = candles.select(np.arange(*window.train))
        found = sweep(
            kind, grid, train_candles, config, metric, _part(progress, index, len(windows))
        )
        if found.best is None:
            continue
        params = found.best.params
        warm = candles.select(np.arange(window.train[0], window.test[1]))
        enter, leave = signals(StrategySpec(kind, params), warm)
        offset = window.test[0] - window.train[0]
        tested = bt.simulate(
            warm.select(np.arange(offset, len(warm))), enter[offset:], leave[offset:], config
        )
        results.append(
            WalkForwardSplit(
                window, params, found.best.metrics, _metrics(tested, config.periods_per_year)
            )
        )
        if progress is not None:
            progress((index + 1) / len(windows))
    return WalkForwardResult(metric, results)
