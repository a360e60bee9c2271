"""Returns of several assets: aligned on the timestamps they share, simple or log."""

from __future__ import annotations

import numpy as np

from coinql.domain.candles import DAY_MS
from coinql.domain.returns import ReturnKind, returns_matrix


def test_returns_matrix_aligns_on_common_timestamps() -> None:
    btc = (np.asarray([0, 1, 2, 3]) * DAY_MS, np.asarray([100.0, 110.0, 99.0, 120.0]))
    eth = (np.asarray([1, 2, 3, 4]) * DAY_MS, np.asarray([10.0, 12.0, 9.0, 8.0]))
    matrix = returns_matrix(["BTC", "ETH"], [btc, eth], ReturnKind.SIMPLE)
    assert matrix.timestamps.tolist() == [2 * DAY_MS, 3 * DAY_MS]
    np.testing.assert_allclose(matrix.values[:, 0], [99 / 110 - 1, 120 / 99 - 1], rtol=1e-15)
    np.testing.assert_allclose(matrix.values[:, 1], [12 / 10 - 1, 9 / 12 - 1], rtol=1e-15)
    log = returns_matrix(["BTC", "ETH"], [btc, eth], ReturnKind.LOG)
    np.testing.assert_allclose(log.values, np.log1p(matrix.values), rtol=1e-13)


def test_returns_matrix_of_too_little_data_is_empty() -> None:
    one = (np.asarray([0]), np.asarray([1.0]))
    assert returns_matrix(["A"], [one], ReturnKind.SIMPLE).values.shape == (0, 1)


def test_returns_matrix_of_no_assets_is_empty() -> None:
    matrix = returns_matrix([], [], ReturnKind.SIMPLE)
    assert matrix.values.shape == (0, 0) and matrix.timestamps.shape == (0,)
