"""A signal strategy over several symbols (a book), its trades and its metrics.

Each symbol is backtested on an equal share of the capital, on the timestamps they all share.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from coinql.domain.backtest import run
from coinql.domain.backtest_config import BacktestConfig
from coinql.domain.candles import Candles
from coinql.domain.metrics import Metrics, equity_returns, regime_labels, regime_stats, summarize
from coinql.domain.strategies import StrategySpec
from coinql.domain.trades import ExitReason, Trade
from coinql.domain.typing import FloatArray, IntArray, Progress


@dataclass(frozen=True, slots=True)
class BookResult:
    """A signal strategy over several symbols, each on an equal share of the capital.

    timestamps and equity : shape (n_bars,), the timestamps all symbols share.
    """

    timestamps: IntArray
    equity: FloatArray
    positions: FloatArray  # (n_bars, n_symbols), signed units
    exposure: float
    trades: list[tuple[str, Trade]]
    regimes: dict[str, FloatArray]


def run_book(
    spec: StrategySpec,
    candles: dict[str, Candles],
    config: BacktestConfig,
    progress: Progress | None = None,
) -> BookResult:
    """Backtest each symbol on its share of the capital, on the timestamps all share.

    Parameters
    ----------
    spec : StrategySpec
        A signal strategy.
    candles : dict of str to Candles
        By symbol; the first symbol's closes give the book's regimes.
    config : BacktestConfig
        Its `initial_capital` is shared equally between the symbols.
    progress : callable, optional
        Called after each symbol with the fraction done.

    Returns
    -------
    BookResult
        equity of shape (n_common,), positions of shape (n_common, n_symbols).
    """
    symbols = list(candles)
    common = candles[symbols[0]].timestamps
    for symbol in symbols[1:]:
        common = np.intersect1d(common, candles[symbol].timestamps)
    share = replace(config, initial_capital=config.initial_capital / len(symbols))
    equity = np.zeros(common.size)
    exposure = np.zeros(common.size)
    positions = np.zeros((common.size, len(symbols)))
    trades: list[tuple[str, Trade]] = []
    for column, symbol in enumerate(symbols):
        series = candles[symbol]
        aligned = series.select(np.searchsorted(series.timestamps, common))
        result = run(spec, aligned, share)
        equity += result.equity
        exposure += (result.position != 0) / len(symbols)
        positions[:, column] = result.position
        trades.extend((symbol, trade) for trade in result.trades)
        if progress is not None:
            progress((column + 1) / len(symbols))
    trades.sort(key=lambda item: item[1].entry_bar)
    first = candles[symbols[0]]
    aligned_first = first.select(np.searchsorted(first.timestamps, common))
    regimes = regime_labels(aligned_first.close, config.periods_per_year)
    return BookResult(common, equity, positions, float(exposure.mean()), trades, regimes)


def summary(book: BookResult, periods_per_year: float) -> Metrics:
    """Summarize a book: its headline metrics, and the same by volatility and trend regime.

    Parameters
    ----------
    book : BookResult
    periods_per_year : float

    Returns
    -------
    Metrics
        `summarize` of the equity's returns, with the trade count, the win rate (None
        without trades), the exposure, the turnover (traded notional / mean equity / year;
        None when the mean equity is not positive) and the regimes' metrics.
    """
    returns = equity_returns(book.equity)
    wins = sum(1 for _, trade in book.trades if trade.pnl > 0)
    traded = sum(
        trade.quantity * (trade.entry_price + trade.exit_price) for _, trade in book.trades
    )
    mean_equity = float(np.mean(book.equity)) if book.equity.size else 0.0
    years = max(returns.size / periods_per_year, 1e-12)
    return replace(
        summarize(returns, periods_per_year),
        trade_count=len(book.trades),
        win_rate=wins / len(book.trades) if book.trades else None,
        exposure=book.exposure,
        turnover=traded / mean_equity / years if mean_equity > 0 else None,
        by_regime=regime_stats(returns, book.regimes, periods_per_year),
    )


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One trade of a book, its bars as epoch milliseconds; `side` is +1 long or -1 short."""

    symbol: str
    side: int
    entry_time: int
    exit_time: int
    entry_price: float
    exit_price: float
    quantity: float
    pnl: float
    return_pct: float
    fees: float
    mae: float
    mfe: float
    exit_reason: ExitReason
    duration: int

    def to_json(self) -> dict[str, Any]:
        """Encode the row as stored with a run."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["exit_reason"] = self.exit_reason.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TradeRow:
        """Decode a row `to_json` wrote."""
        return cls(**{**data, "exit_reason": ExitReason(data["exit_reason"])})


def trade_table(book: BookResult) -> list[TradeRow]:
    """Tabulate the book's trades, in entry order, bars as epoch milliseconds.

    Parameters
    ----------
    book : BookResult

    Returns
    -------
    list of TradeRow
        One row per trade; `duration` counts bars.
    """
    timestamps = book.timestamps
    return [
        TradeRow(
            symbol=symbol,
            side=trade.side,
            entry_time=int(timestamps[trade.entry_bar]),
            exit_time=int(timestamps[trade.exit_bar]),
            entry_price=trade.entry_price,
            exit_price=trade.exit_price,
            quantity=trade.quantity,
            pnl=trade.pnl,
            return_pct=trade.return_pct,
            fees=trade.fees,
            mae=trade.mae,
            mfe=trade.mfe,
            exit_reason=trade.exit_reason,
            duration=trade.duration,
        )
        for symbol, trade in book.trades
    ]
