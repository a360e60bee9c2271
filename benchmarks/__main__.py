"""Run every benchmark and print one table: figure, coinql, baseline, ratio."""

from __future__ import annotations

import argparse
import asyncio
import platform

from benchmarks import (
    analytics,
    backtest,
    dashboard,
    distributed,
    market,
    portfolio,
    reads,
    realtime,
    trading,
    workers,
)
from benchmarks.common import Figure, print_table

SUITES = {
    "market": market.run,
    "reads": reads.run,
    "analytics": analytics.run,
    "portfolio": portfolio.run,
    "backtest": backtest.run,
    "realtime": realtime.run,
    "trading": trading.run,
    "dashboard": dashboard.run,
    "workers": workers.run,
    "distributed": distributed.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suites", nargs="*", choices=[*SUITES, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args()
    figures: list[Figure] = []
    for name in args.suites or list(SUITES):
        print(f"running {name} ...", flush=True)
        figures.extend(asyncio.run(SUITES[name](quick=args.quick)))
    print()
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.system()}"
    )
    print_table(figures)


if __name__ == "__main__":
    main()
