"""Custom scalars: UTC datetimes, decimals as strings, and packed series.

Series travel as numpy arrays all the way to the response encoder (orjson with
`OPT_SERIALIZE_NUMPY`), so returning 10,000 candles costs one array per column rather than one
object per bar. orjson writes NaN and infinities as `null`, which is the contract's "undefined".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NewType

import numpy as np
import strawberry
from strawberry.types.scalar import ScalarDefinition

from coinql.domain.errors import InvalidInput

DATETIME_HINT = "ISO 8601 with a UTC offset, e.g. 2020-01-01T00:00:00Z"
# Longer than any number within the declared bounds could be written.
MAX_DECIMAL_CHARACTERS = 100


def serialize_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime reached the schema; store values are UTC-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"DateTime must be a string, {DATETIME_HINT}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"DateTime {value!r} is not valid: use {DATETIME_HINT}") from error
    if parsed.tzinfo is None:
        raise ValueError(f"DateTime {value!r} has no UTC offset: use {DATETIME_HINT}")
    return parsed.astimezone(UTC)


def serialize_decimal(value: Decimal) -> str:
    return format(value, "f")


def parse_decimal(value: object) -> Decimal:
    """The exact number written, whatever its magnitude, or NaN or an infinity: each field's
    declared bounds (coinql.schema.bounds) refuse what does not belong, as an `InvalidInput`
    naming the field. Only what is not a number at all is refused here."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValueError('Decimal must be a string such as "0.5" (or an integer)')
    text = str(value).strip()
    if len(text) > MAX_DECIMAL_CHARACTERS:
        raise ValueError(f"Decimal has more than {MAX_DECIMAL_CHARACTERS} characters")
    try:
        return Decimal(text)
    except InvalidOperation as error:
        raise ValueError(f"Decimal {text[:40]!r} is not a number") from error


def serialize_timestamps(value: np.ndarray[Any, Any] | Sequence[int]) -> Any:
    return np.ascontiguousarray(value, dtype=np.int64)


def serialize_floats(value: np.ndarray[Any, Any] | Sequence[float | None]) -> Any:
    return np.ascontiguousarray(value, dtype=np.float64)


def _array_parser(
    kind: str, convert: Callable[[object], Any], dtype: Any
) -> Callable[[object], Any]:
    """The parse_value of a packed series: a JSON array, each item `convert`ed, packed as
    `dtype`."""

    def parse(value: object) -> Any:
        if not isinstance(value, list):
            raise ValueError(f"{kind} must be a JSON array")
        return np.asarray([convert(item) for item in value], dtype=dtype)

    return parse


def _parse_timestamp(item: object) -> int:
    if not isinstance(item, int) or isinstance(item, bool):
        raise ValueError("TimestampArray items must be integers (epoch milliseconds)")
    return item


def _parse_float(item: object) -> float:
    if item is None:
        return math.nan
    if not isinstance(item, int | float) or isinstance(item, bool):
        raise ValueError("FloatArray items must be numbers or null")
    return float(item)


if TYPE_CHECKING:  # any array-like is accepted; the scalar map converts it
    TimestampArray = Any
    FloatArray = Any
else:
    TimestampArray = NewType("TimestampArray", object)
    FloatArray = NewType("FloatArray", object)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    datetime: strawberry.scalar(
        name="DateTime",
        description=f"A point in time in UTC, {DATETIME_HINT}.",
        serialize=serialize_datetime,
        parse_value=parse_datetime,
    ),
    Decimal: strawberry.scalar(
        name="Decimal",
        description='An exact decimal number, sent as a JSON string ("0.1").',
        serialize=serialize_decimal,
        parse_value=parse_decimal,
    ),
    TimestampArray: strawberry.scalar(
        name="TimestampArray",
        description="A packed series of epoch milliseconds (UTC): a JSON array of integers.",
        serialize=serialize_timestamps,
        parse_value=_array_parser("TimestampArray", _parse_timestamp, np.int64),
    ),
    FloatArray: strawberry.scalar(
        name="FloatArray",
        description="A packed series of numbers: a JSON array, null where a value is undefined.",
        serialize=serialize_floats,
        parse_value=_array_parser("FloatArray", _parse_float, np.float64),
    ),
}


def to_millis(moment: datetime | None) -> int | None:
    """A DateTime argument as epoch milliseconds, the store's and domain's time."""
    return None if moment is None else int(moment.timestamp() * 1000)


def from_millis(millis: int | None) -> datetime | None:
    """Epoch milliseconds as a UTC DateTime field's value (None stays None)."""
    return None if millis is None else moment(millis)


def moment(millis: int) -> datetime:
    """Epoch milliseconds as a UTC DateTime."""
    return datetime.fromtimestamp(millis / 1000, UTC)


def finite(value: Any) -> float | None:
    """A Float field's value: None for NaN, infinities and None, else the float (numpy
    scalars and 0-d arrays included)."""
    if value is None:
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) else None


async def read_upload(file: object, limit: int) -> bytes:
    """The uploaded file's bytes, up to one past `limit` so that an oversized file is refused
    rather than truncated. A value that is not a file (a string in the JSON body, say) is
    refused naming `file`."""
    read = getattr(file, "read", None)
    if read is None:
        raise InvalidInput(
            "file", "send the file as a multipart upload (GraphQL multipart request spec)"
        )
    data: bytes = await read(limit + 1)
    return data
