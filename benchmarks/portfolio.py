"""[4/7] Portfolios: 50-asset MAX_SHARPE and a 50-point frontier against PyPortfolioOpt, and
valuing a 1,000-transaction ledger over 5 years."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from benchmarks.analytics import synthetic_returns
from benchmarks.common import Figure, median_seconds
from coinql.domain import ledger
from coinql.domain import mean_variance as mv
from coinql.domain.constraints import Constraints
from coinql.domain.valuation import value, value_history

P = 365


def optimizer_figures(quick: bool) -> list[Figure]:
    n_assets = 20 if quick else 50
    returns = synthetic_returns(5 * 365, n_assets, seed=3)
    mu = returns.mean(axis=0) * P
    cov = np.cov(returns, rowvar=False) * P
    constraints = Constraints(0.0, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pypfopt import EfficientFrontier

    def theirs_max_sharpe() -> None:
        EfficientFrontier(mu, cov, weight_bounds=(0.0, 0.1)).max_sharpe(risk_free_rate=0.0)

    def theirs_frontier() -> None:
        low = EfficientFrontier(mu, cov, weight_bounds=(0.0, 0.1))
        low.min_volatility()
        low_return = low.portfolio_performance()[0]
        high_return = float(mu @ mv.max_return(mu, constraints))
        for target in np.linspace(low_return, high_return, 50)[:-1]:
            EfficientFrontier(mu, cov, weight_bounds=(0.0, 0.1)).efficient_return(target)

    ours_sharpe = median_seconds(lambda: mv.max_sharpe(mu, cov, constraints), repeat=11)
    theirs_sharpe = median_seconds(theirs_max_sharpe, repeat=11)
    ours_frontier = median_seconds(lambda: mv.frontier(mu, cov, constraints, 50), repeat=1)
    theirs_frontier_s = median_seconds(theirs_frontier, repeat=1)
    return [
        Figure(
            f"MAX_SHARPE, {n_assets} assets, weights in [0, 0.1]",
            ours_sharpe * 1000,
            "ms",
            theirs_sharpe * 1000,
            "PyPortfolioOpt (cvxpy), same mu and cov",
            target=">= 2x",
        ),
        Figure(
            f"efficient frontier, {n_assets} assets, 50 points",
            ours_frontier * 1000,
            "ms",
            theirs_frontier_s * 1000,
            "PyPortfolioOpt efficient_return x 50",
            target=">= 3x",
        ),
    ]


def ledger_figures() -> list[Figure]:
    rng = np.random.default_rng(4)
    start = datetime(2019, 1, 1, tzinfo=UTC)
    coins = [f"C{i}" for i in range(10)]
    transactions = [
        ledger.Transaction(ledger.TransactionKind.DEPOSIT, "USDT", Decimal(1_000_000), start)
    ]
    held = dict.fromkeys(coins, Decimal(0))
    for i in range(999):
        coin = coins[int(rng.integers(len(coins)))]
        when = start + timedelta(days=1 + i * 5 * 365 // 1000)
        price = Decimal(str(round(float(rng.uniform(10, 100)), 2)))
        if held[coin] > 1 and rng.random() < 0.4:
            quantity = (held[coin] / 2).quantize(Decimal("0.0001"))
            kind = ledger.TransactionKind.SELL
            held[coin] -= quantity
        else:
            quantity = Decimal(str(round(float(rng.uniform(1, 10)), 4)))
            kind = ledger.TransactionKind.BUY
            held[coin] += quantity
        transactions.append(ledger.Transaction(kind, coin, quantity, when, price, Decimal("0.1")))
    prices = {coin: Decimal("55.5") for coin in coins}
    stamps = (
        np.datetime64("2019-01-01", "ms") + np.arange(5 * 365) * np.timedelta64(1, "D")
    ).astype(np.int64)
    closes = rng.uniform(10, 100, (stamps.size, len(coins)))

    def valuation() -> None:
        state = ledger.replay(transactions, base_currency="USDT", method=ledger.CostBasis.FIFO)
        value(state, prices)

    def history() -> None:
        value_history(
            transactions, base_currency="USDT", assets=coins, timestamps=stamps, closes=closes
        )

    return [
        Figure(
            "portfolio valuation, 1,000 transactions (FIFO, decimals)",
            median_seconds(valuation, repeat=7) * 1000,
            "ms",
        ),
        Figure(
            "value history, 1,000 transactions x 5 years D1",
            median_seconds(history, repeat=7) * 1000,
            "ms",
        ),
    ]


async def run(*, quick: bool) -> list[Figure]:
    return optimizer_figures(quick) + ledger_figures()
