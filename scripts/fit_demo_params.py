"""Fit the demo generator's parameters to the real daily series in ../shared/data/coins-daily.

Writes src/coinql/domain/demo_params.py: per-asset drift, volatility in a calm and a turbulent
regime, Student-t tail index, latest price and supply; the regime transition matrix; and the
correlation matrix. Only these fitted numbers are committed, never the data.

    python scripts/fit_demo_params.py [../shared/data/coins-daily]
"""

from __future__ import annotations

import pprint
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
from scipy import stats

from coinql.domain.imports import parse_candle_file

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "src/coinql/domain/demo_params.py"
REGIME_WINDOW = 30


def main(data_dir: Path) -> None:
    parsed = [parse_candle_file(path.read_bytes()) for path in sorted(data_dir.glob("coin_*.csv"))]
    parsed.sort(key=lambda item: -float(item.market_caps[-1]))
    common = parsed[0].candles.timestamps
    for item in parsed[1:]:
        common = np.intersect1d(common, item.candles.timestamps)
    log_returns = np.column_stack(
        [
            np.diff(np.log(item.candles.close[np.searchsorted(item.candles.timestamps, common)]))
            for item in parsed
        ]
    )
    # Regimes from the market's (BTC's) 30-day realised volatility: above its median = turbulent.
    market = log_returns[:, 0]
    rolling = np.array(
        [market[max(0, i - REGIME_WINDOW + 1) : i + 1].std() for i in range(market.size)]
    )
    turbulent = rolling > np.median(rolling)
    transitions = np.zeros((2, 2))
    for before, after in pairwise(turbulent):
        transitions[int(before), int(after)] += 1
    transitions /= transitions.sum(axis=1, keepdims=True)

    assets = []
    for column, item in enumerate(parsed):
        returns = log_returns[:, column]
        calm, wild = returns[~turbulent].std(ddof=1), returns[turbulent].std(ddof=1)
        standardized = returns / np.where(turbulent, wild, calm)
        tail_index, _, _ = stats.t.fit(standardized, floc=0.0)
        last_close = float(item.candles.close[-1])
        assets.append(
            {
                "symbol": item.symbol,
                "name": item.name,
                "drift": round(float(returns.mean()), 6),
                "volatility": [round(float(calm), 6), round(float(wild), 6)],
                "tail_index": round(float(max(tail_index, 2.5)), 3),
                "price": round(last_close, 8),
                "supply": round(float(item.market_caps[-1]) / last_close, 0),
                "quote_volume": round(float(np.nanmedian(item.candles.quote_volume[-365:])), 0),
            }
        )
    correlation = np.corrcoef(log_returns, rowvar=False)
    params = {
        "source": "fitted to ../shared/data/coins-daily "
        f"({len(common)} common days to 2021-07-06) by scripts/fit_demo_params.py",
        "assets": assets,
        "regime_transitions": np.round(transitions, 6).tolist(),
        "correlation": np.round(correlation, 6).tolist(),
    }
    OUTPUT.write_text(
        '"""Demo generator parameters, fitted by scripts/fit_demo_params.py. Do not edit."""\n\n'
        "from typing import Any\n\n"
        f"DEMO_PARAMS: dict[str, Any] = {pprint.pformat(params, width=96, sort_dicts=False)}\n"
    )
    print(f"wrote {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/coins-daily")
