"""Covariance estimators and PCA against scikit-learn, numpy, pandas and numpy's SVD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from coinql.domain import covariance
from coinql.domain.covariance import CovarianceMethod
from tests.domain.coins import NAMES, aligned_returns
from tests.helpers import ewma_reference

SYMBOLS = list(NAMES)


def test_ledoit_wolf_matches_scikit_learn() -> None:
    _, r = aligned_returns(SYMBOLS)
    ours, shrinkage = covariance.ledoit_wolf_covariance(r)
    theirs = LedoitWolf().fit(r)
    np.testing.assert_allclose(ours, theirs.covariance_, rtol=1e-10)
    assert shrinkage == pytest.approx(theirs.shrinkage_, rel=1e-10)


def test_sample_covariance_matches_numpy() -> None:
    _, r = aligned_returns(SYMBOLS)
    np.testing.assert_allclose(covariance.sample_covariance(r), np.cov(r, rowvar=False), rtol=1e-12)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.94, 0.97, 0.99])
def test_ewma_covariance_matches_a_plain_reference(decay: float) -> None:
    _, r = aligned_returns(["BTC", "ETH", "LTC"])
    r = r[-500:]
    ours = covariance.ewma_covariance(r, decay)
    np.testing.assert_allclose(ours, ewma_reference(r, decay), rtol=1e-12)
    # pandas' adjusted exponentially weighted mean of the cross products is the same thing.
    frame = pd.DataFrame(r)
    for i in range(3):
        for j in range(3):
            products = (frame[i] * frame[j]).ewm(alpha=1 - decay, adjust=True).mean()
            assert ours[i, j] == pytest.approx(products.iloc[-1], rel=1e-9)
    assert covariance.covariance(r, CovarianceMethod.EWMA, decay=decay) == pytest.approx(ours)


def test_ewma_decay_changes_the_estimate() -> None:
    _, r = aligned_returns(["BTC", "ETH"])
    fast, slow = covariance.ewma_covariance(r, 0.5), covariance.ewma_covariance(r, 0.99)
    assert not np.allclose(fast, slow, rtol=1e-3)
    # With decay -> 1 the weights flatten: the estimate tends to the uncentred mean square.
    np.testing.assert_allclose(
        covariance.ewma_covariance(r, 1 - 1e-9), r.T @ r / r.shape[0], rtol=1e-5
    )


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, np.nan])
def test_ewma_decay_out_of_range_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="decay"):
        covariance.ewma_covariance(np.zeros((10, 2)), decay)


def test_pca_matches_numpy_svd_up_to_sign() -> None:
    _, r = aligned_returns(SYMBOLS)
    found = covariance.pca(r, 3)
    centered = r - r.mean(axis=0)
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    np.testing.assert_allclose(
        found.explained_variance_ratio, (singular**2 / np.sum(singular**2))[:3], rtol=1e-12
    )
    for row in range(3):
        np.testing.assert_allclose(np.abs(found.loadings[row]), np.abs(vt[row]), rtol=1e-10)
        assert found.loadings[row][np.argmax(np.abs(found.loadings[row]))] > 0
    # Crypto moves together: the first component loads every coin with the same sign.
    assert np.all(found.loadings[0] > 0)
