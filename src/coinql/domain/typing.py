"""Array aliases shared by the domain modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
"""Float64 values; NaN marks a missing or undefined value."""

IntArray: TypeAlias = npt.NDArray[np.int64]
"""Int64 values, e.g. epoch milliseconds (UTC)."""

BoolArray: TypeAlias = npt.NDArray[np.bool_]
"""Masks, e.g. signals or which rows to select."""

AnyArray: TypeAlias = npt.NDArray[Any]
"""Arrays whose dtype varies, e.g. the row numbers or masks of a parsed file."""

Progress: TypeAlias = Callable[[float], None]
"""Called by a long computation between its chunks with the fraction done (0..1). The caller
may raise from it to stop the computation there (a cancelled job): the exception propagates
and nothing partial is returned."""
