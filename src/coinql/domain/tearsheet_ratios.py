"""The rest of the tear sheet: quantstats' ratios of a return stream, by their GraphQL names.

`RATIOS` maps each figure to how it is computed from a stream (its returns, periods per year
and per-period risk-free rate) and why it is undefined when it is NaN; `ReturnStream.ratio`
and `ReturnStream.undefined` read it. The definitions, and where they differ from
quantstats', are in docs/metrics.md and in `win_loss`, `ratios` and `drawdown_ratios`.

Where quantstats subtracts a risk-free rate from a total (the recovery factor, the ulcer
performance index, the serenity index, Treynor), it is what the risk-free rate would have
compounded to over the stream's known periods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from coinql.domain import drawdown_ratios, estimators, ratios, win_loss
from coinql.domain.typing import FloatArray, IntArray


class Stream(Protocol):
    """What a ratio reads of a `ReturnStream`."""

    @property
    def returns(self) -> FloatArray:
        """Simple returns of shape (n_observations,), NaN where missing."""

    @property
    def periods_per_year(self) -> float:
        """Annualises."""

    @property
    def risk_free_per_period(self) -> float:
        """The per-period rate of the annual risk-free rate."""


@dataclass(frozen=True, slots=True)
class Ratio:
    """How a figure is computed, and why it is undefined when it is NaN (with enough data)."""

    compute: Callable[[Stream], FloatArray | IntArray | float]
    cause: str
    needs: int = 1  # known returns at least


def risk_free_total(stream: Stream, returns: FloatArray | None = None) -> float:
    """Return what the risk-free rate compounds to over the known periods of `returns`.

    Parameters
    ----------
    stream : Stream
        For the per-period rate.
    returns : ndarray of shape (n_observations,), optional
        The periods (by default the stream's own).

    Returns
    -------
    float
        (1 + rf) ** n - 1 with rf the per-period rate and n the known returns.
    """
    n = float(estimators.observations(stream.returns if returns is None else returns))
    return float((1 + stream.risk_free_per_period) ** n - 1)


def _of_returns(
    function: Callable[[FloatArray], FloatArray | IntArray],
) -> Callable[[Stream], FloatArray | IntArray]:
    return lambda stream: function(stream.returns)


def _annualised(
    function: Callable[[FloatArray, float, float], FloatArray],
) -> Callable[[Stream], FloatArray]:
    return lambda stream: function(
        stream.returns, stream.periods_per_year, stream.risk_free_per_period
    )


def _over_total(
    function: Callable[[FloatArray, float], FloatArray],
) -> Callable[[Stream], FloatArray]:
    return lambda stream: function(stream.returns, risk_free_total(stream))


_NO_LOSS = "no period lost"
_NO_WIN = "no period gained"
_NO_DRAWDOWN = "no drawdown"
RATIOS: dict[str, Ratio] = {
    "smartSharpe": Ratio(_annualised(ratios.smart_sharpe), "returns do not vary", 2),
    "smartSortino": Ratio(_annualised(ratios.smart_sortino), "no downside", 2),
    "adjustedSortino": Ratio(_annualised(ratios.adjusted_sortino), "no downside", 2),
    "probabilisticSharpe": Ratio(
        lambda stream: ratios.probabilistic_sharpe_ratio(
            stream.returns, stream.risk_free_per_period
        ),
        "returns do not vary",
        4,
    ),
    "kelly": Ratio(_of_returns(win_loss.kelly_criterion), "no period both gained and lost"),
    "profitFactor": Ratio(_of_returns(win_loss.profit_factor), _NO_LOSS),
    "payoffRatio": Ratio(_of_returns(win_loss.payoff_ratio), "no period both gained and lost"),
    "gainToPain": Ratio(_of_returns(win_loss.gain_to_pain_ratio), _NO_LOSS),
    "commonSenseRatio": Ratio(
        _of_returns(win_loss.common_sense_ratio), "no loss, or a zero 5th percentile", 2
    ),
    "cpcIndex": Ratio(_of_returns(win_loss.cpc_index), "no period both gained and lost"),
    "riskOfRuin": Ratio(_of_returns(win_loss.risk_of_ruin), "no period gained or lost"),
    "consecutiveWins": Ratio(_of_returns(win_loss.consecutive_wins), "never undefined"),
    "consecutiveLosses": Ratio(_of_returns(win_loss.consecutive_losses), "never undefined"),
    "averageWin": Ratio(_of_returns(win_loss.avg_win), _NO_WIN),
    "averageLoss": Ratio(_of_returns(win_loss.avg_loss), _NO_LOSS),
    "expectedReturn": Ratio(_of_returns(win_loss.expected_return), "no observations"),
    "outlierWinRatio": Ratio(_of_returns(win_loss.outlier_win_ratio), _NO_WIN),
    "outlierLossRatio": Ratio(_of_returns(win_loss.outlier_loss_ratio), _NO_LOSS),
    "stability": Ratio(_of_returns(ratios.stability), "the equity does not move", 2),
    "recoveryFactor": Ratio(_over_total(drawdown_ratios.recovery_factor), _NO_DRAWDOWN, 2),
    "ulcerPerformanceIndex": Ratio(
        _over_total(drawdown_ratios.ulcer_performance_index), _NO_DRAWDOWN, 2
    ),
    "serenityIndex": Ratio(
        _over_total(drawdown_ratios.serenity_index), "no drawdown, or returns do not vary", 2
    ),
}


def ratio(stream: Stream, name: str) -> float:
    """Return one figure of `RATIOS` for a stream.

    Parameters
    ----------
    stream : Stream
    name : str
        A key of `RATIOS`.

    Returns
    -------
    float
        NaN where undefined.
    """
    return float(RATIOS[name].compute(stream))


def undefined_ratios(stream: Stream) -> dict[str, str]:
    """Return why each figure of `RATIOS` that is NaN for the stream is undefined.

    Parameters
    ----------
    stream : Stream

    Returns
    -------
    dict of str to str
        The undefined figures by name, each with its reason.
    """
    n = int(estimators.observations(stream.returns))
    reasons = {}
    for name, found in RATIOS.items():
        if not np.isnan(ratio(stream, name)):
            continue
        if n == 0:
            reasons[name] = "no observations"
        elif n < found.needs:
            reasons[name] = f"needs at least {found.needs} observations, has {n}"
        else:
            reasons[name] = found.cause
    return reasons


def treynor(stream: Stream, ours: FloatArray, theirs: FloatArray) -> float:
    """Return quantstats' Treynor ratio on the periods the stream shares with a benchmark.

    Parameters
    ----------
    stream : Stream
        For the risk-free rate.
    ours, theirs : ndarray of shape (n_common,)
        The stream's and the benchmark's returns on their common periods.

    Returns
    -------
    float
        (total return - the risk-free total) / beta, not annualised; NaN for a zero beta.
    """
    return float(ratios.treynor_ratio(ours, theirs, risk_free_total(stream, ours)))
