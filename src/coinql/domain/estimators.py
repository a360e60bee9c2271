"""Estimators over the known observations of return streams, and when a result is undefined.

The NaN policy the measures of `coinql.domain.performance`, `compounding`, `downside`,
`distribution` and `benchmark` share (see docs/metrics.md):

- `values` is an ndarray of shape (n_observations,) or (n_observations, n_series); the
  estimators reduce along axis 0 unless given another `axis`, so one call serves many series.
- NaN marks a missing observation, and so does ±inf (a return from a zero price): it is left
  out (n counts the others).
- An undefined result (too few observations, zero dispersion) is NaN. A dispersion is zero
  when it is rounding noise (`negligible`), so a constant series has no Sharpe ratio rather
  than 1e17.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from coinql.domain.typing import BoolArray, FloatArray

MIN_OBSERVATIONS = 2
ROUNDING = 1e-12
"""A per-period dispersion at most this size (relative, floored at 1) is zero; see `negligible`."""


@contextmanager
def undefined_as_nan() -> Iterator[None]:
    """Make undefined results NaN silently; the callers map NaN to "undefined".

    Yields
    ------
    None
        Within the block, numpy's divide, invalid and overflow errors and the
        `RuntimeWarning` of a mean over no values are silenced.
    """
    with (
        np.errstate(divide="ignore", invalid="ignore", over="ignore"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of an all-NaN column
        yield


def known(returns: FloatArray) -> FloatArray:
    """Return the returns with ±inf as NaN: a return from a zero price is missing, like NaN.

    Parameters
    ----------
    returns : ndarray of any shape

    Returns
    -------
    ndarray of the same shape
    """
    finite = np.isfinite(returns)
    if finite.all():  # the common case: no copy
        return returns
    return np.where(finite, returns, np.nan)


def observations(returns: FloatArray) -> FloatArray:
    """Count the known (finite) returns of each series.

    Parameters
    ----------
    returns : ndarray of shape (n_observations,) or (n_observations, n_series)

    Returns
    -------
    ndarray of shape () or (n_series,)
        As floats, to divide by.
    """
    return np.sum(np.isfinite(returns), axis=0).astype(np.float64)


def negligible(size: FloatArray | float, scale: FloatArray | float) -> BoolArray:
    """Tell whether a per-period dispersion is zero up to rounding.

    `size` is negligible when size <= 1e-12 x max(1, |scale|). Returns computed from prices
    carry relative rounding errors of ~1e-16, so the standard deviation of a constant series
    comes out near 1e-18 instead of 0, and a ratio over it near 1e17. The threshold sits four
    orders of magnitude above that noise and far below any real variation (a price's last
    significant digit moves a return by more than 1e-12); the floor of 1 keeps it absolute for
    returns near zero.

    Parameters
    ----------
    size : float or ndarray
        The dispersion (a standard deviation, a mean loss).
    scale : float or ndarray
        The mean of the values whose dispersion `size` measures; broadcast against `size`.

    Returns
    -------
    ndarray of bool of the broadcast shape
        False for a NaN size (it stays undefined for its own reason).
    """
    with undefined_as_nan():
        return np.asarray(size <= ROUNDING * np.maximum(1.0, np.abs(scale)))


def _mean_std(values: FloatArray, axis: int = 0) -> tuple[FloatArray, FloatArray]:
    """Return the mean and sample std (ddof 1) of the known values, NaN below two of them."""
    values = known(values)
    with undefined_as_nan():
        mean = reduce_known("mean", values, axis=axis)
        if values.shape[axis] < MIN_OBSERVATIONS:
            return mean, np.full(np.shape(mean), np.nan)
        std = reduce_known("std", values, axis=axis, ddof=1)
    enough = np.sum(~np.isnan(values), axis=axis) >= MIN_OBSERVATIONS
    return mean, np.where(enough, std, np.nan)


def ratio_to_std(values: FloatArray, axis: int = 0) -> FloatArray:
    """Divide the mean by the sample standard deviation (ddof 1) of the known values.

    Parameters
    ----------
    values : ndarray
        Reduced along `axis`; NaN and ±inf are left out.
    axis : int, default 0

    Returns
    -------
    ndarray
        The shape of `values` without `axis`; NaN below two known values or when the std
        is negligible.
    """
    mean, std = _mean_std(values, axis)
    with undefined_as_nan():
        return np.where(negligible(std, mean), np.nan, mean / std)


def std_or_zero(values: FloatArray, axis: int = 0) -> FloatArray:
    """Return the sample standard deviation (ddof 1) of the known values along `axis`.

    Parameters
    ----------
    values : ndarray
        Reduced along `axis`; NaN and ±inf are left out.
    axis : int, default 0

    Returns
    -------
    ndarray
        The shape of `values` without `axis`; exactly 0 when the std is negligible, NaN
        below two known values.
    """
    mean, std = _mean_std(values, axis)
    return np.where(negligible(std, mean), 0.0, std)


def slope(returns: FloatArray, benchmark: FloatArray, axis: int = 0) -> FloatArray:
    """Regress the returns on the benchmark: Cov(r, b) / Var(b), with population moments.

    Parameters
    ----------
    returns, benchmark : ndarray of the same shape
        Reduced along `axis` over the pairs where both are known.
    axis : int, default 0

    Returns
    -------
    ndarray
        The shape of `returns` without `axis`; NaN below two pairs or when the benchmark
        does not vary on them (its std negligible).
    """
    both = np.isfinite(returns) & np.isfinite(benchmark)
    x, y = np.where(both, benchmark, np.nan), np.where(both, returns, np.nan)
    with undefined_as_nan():
        mean = reduce_known("mean", x, axis=axis, keepdims=True)
        centered = x - mean
        variance = reduce_known("mean", centered**2, axis=axis)
        slope = reduce_known("mean", centered * y, axis=axis) / variance
    flat = negligible(np.sqrt(variance), np.squeeze(mean, axis=axis)) | ~(variance > 0)
    return np.where((np.sum(both, axis=axis) >= MIN_OBSERVATIONS) & ~flat, slope, np.nan)


_NAN_REDUCTIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "mean": (np.mean, np.nanmean),
    "sum": (np.sum, np.nansum),
    "prod": (np.prod, np.nanprod),
    "std": (np.std, np.nanstd),
    "percentile": (np.percentile, np.nanpercentile),
}


def reduce_known(reduction: str, values: FloatArray, axis: int = 0, **options: Any) -> Any:
    """Apply numpy's NaN-skipping reduction, without its copy of values that hold no NaN.

    numpy's `nanmean` and kin copy their input to replace NaN (and `nanpercentile` of a 2-D
    array works column by column); on values without NaN the plain reduction gives the same
    numbers at a fraction of the cost.

    Parameters
    ----------
    reduction : {"mean", "sum", "prod", "std", "percentile"}
        The reduction: ``np.nan<reduction>`` where a value is NaN, else ``np.<reduction>``.
    values : ndarray
        Reduced along `axis`.
    axis : int, default 0
    **options
        Passed on, e.g. ``ddof`` for "std", ``q`` for "percentile", ``keepdims``.

    Returns
    -------
    ndarray
        What ``np.nan<reduction>`` returns.
    """
    plain, skipping = _NAN_REDUCTIONS[reduction]
    function = skipping if np.isnan(values).any() else plain
    return function(values, axis=axis, **options)
