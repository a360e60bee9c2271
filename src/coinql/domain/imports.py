"""Candle files: detect the format, parse exactly, validate every line.

Three formats are read:

- the daily market-cap format `SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap`,
  whose `Date` is the close of a UTC day in `M/DD/YY HH:MM` or `YYYY-MM-DD HH:MM:SS` and whose
  `Volume` is in the quote currency (US dollars);
- Binance kline CSV (12 columns, with or without a header; open time in ms or µs);
- a generic OHLCV CSV with a header naming a time column (ISO 8601, or epoch s or ms) and
  open, high, low, close, optionally volume and quote_volume.

Numbers are converted with Python's correctly rounded float parsing, so an imported close is
bit for bit the float of the file's text. Line numbers count the header as line 1. Cells are
read and converted, and problems collected by line, in `coinql.domain.csv_lines`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from coinql.domain.candles import DAY_MS, Candles, Interval, validate
from coinql.domain.csv_lines import (
    ImportRejected,
    LineProblem,
    LineProblems,
    blank_rows,
    epoch_millis,
    floats,
    read_csv,
    read_numbers,
)
from coinql.domain.errors import InvalidInput
from coinql.domain.typing import AnyArray, FloatArray, IntArray

DAILY_COLUMNS = [
    "SNo",
    "Name",
    "Symbol",
    "Date",
    "High",
    "Low",
    "Open",
    "Close",
    "Volume",
    "Marketcap",
]
BINANCE_COLUMNS = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
]
TIME_COLUMNS = ("time", "timestamp", "date", "datetime", "open_time", "opentime")
PRICE_COLUMNS = ("open", "high", "low", "close")
VOLUME_COLUMNS = ("volume", "quote_volume")
DAILY_DATE_FORMATS = ("%m/%d/%y %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class CsvFormat(StrEnum):
    """The candle file formats `parse_candle_file` recognises."""

    DAILY_MARKET_CAP = "daily-market-cap"
    BINANCE_KLINES = "binance-klines"
    GENERIC_OHLCV = "generic-ohlcv"


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """A valid file's candles; `market_caps` has one value per candle (NaN when unknown)."""

    format: CsvFormat
    symbol: str
    name: str | None
    interval: Interval
    candles: Candles
    market_caps: FloatArray
    rows_read: int


def parse_candle_file(
    data: bytes,
    *,
    symbol: str | None = None,
    interval: Interval | None = None,
    max_rows: int | None = None,
) -> ParsedFile:
    """Parse and validate a whole candle file.

    The format is detected from the first line (see the module's docstring).

    Parameters
    ----------
    data : bytes
        The file's content, UTF-8 (a byte order mark is allowed).
    symbol : str or None, default None
        The asset's symbol; required when the file does not name it, and checked against the
        file's own when it does.
    interval : Interval or None, default None
        The candles' interval; None to take the file's most common spacing.
    max_rows : int or None, default None
        The most data rows accepted; None for no limit.

    Returns
    -------
    ParsedFile
        The n_rows candles in the file's order, validated by `candles.validate` (finite
        positive prices, high and low around open and close, non-negative volumes, strictly
        increasing open times on the interval's boundaries). A volume the format does not
        give is NaN; `market_caps` has shape (n_rows,), NaN where the file gives none.

    Raises
    ------
    ImportRejected
        Listing every bad line (the first 100 of them, with the total): a missing or
        unparsable value, a NaN or infinite price, any defect `candles.validate` finds.
    TooManyRows
        As soon as the file shows more than `max_rows` data rows (the rest is not read).
    InvalidInput
        When the symbol or the interval is missing and cannot be read from the file, or the
        given symbol contradicts the file's.
    """
    first_line = _text(data.split(b"\n", 1)[0]).split("\n", 1)[0].strip()
    if not first_line:
        raise ImportRejected([LineProblem(1, "file is empty or starts with a blank line")])
    header = [cell.strip() for cell in first_line.split(",")]
    if header == DAILY_COLUMNS:
        return _parse_daily(data, symbol=symbol, interval=interval, max_rows=max_rows)
    if _looks_like_binance(header):
        return _parse_binance(
            data,
            header_present=header[0] == "open_time",
            symbol=symbol,
            interval=interval,
            max_rows=max_rows,
        )
    return _parse_generic(data, header, symbol=symbol, interval=interval, max_rows=max_rows)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportRejected([LineProblem(1, f"file is not UTF-8 text: {error.reason}")]) from None


def _validated(
    lines: LineProblems,
    file_format: CsvFormat,
    symbol: str,
    interval: Interval,
    candles: Candles,
    *,
    rows_read: int,
    name: str | None = None,
    market_caps: FloatArray | None = None,
) -> ParsedFile:
    """Return the file once valid (market caps NaN unless given), else raise its problems."""
    # A line that did not parse would come back as a bad candle too.
    if not lines.problems:
        for problem in validate(candles, interval):
            lines.add(problem.row, problem.message)
    lines.raise_if_any()
    if market_caps is None:
        market_caps = np.full(rows_read, np.nan)
    return ParsedFile(
        file_format, symbol, name, interval, candles, market_caps, rows_read=rows_read
    )


def _settle_symbol(given: str | None, from_file: str | None) -> str:
    """Choose the symbol argument, checked against the file's own when it names one."""
    if given and from_file and given.strip().upper() != from_file.upper():
        raise InvalidInput(
            "symbol", f"symbol {given!r} was given but the file is for {from_file!r}"
        )
    chosen = (given or from_file or "").strip().upper()
    if not chosen:
        raise InvalidInput("symbol", "this file does not name its symbol: give symbol")
    return chosen


def _parse_daily(
    data: bytes, *, symbol: str | None, interval: Interval | None, max_rows: int | None
) -> ParsedFile:
    if interval is not None and interval is not Interval.D1:
        raise InvalidInput("interval", f"this file holds D1 candles, not {interval.value}")
    lines = LineProblems(first_data_line=2)
    position = {name: index for index, name in enumerate(DAILY_COLUMNS)}
    fast = read_numbers(
        data,
        fields=len(DAILY_COLUMNS),
        header=True,
        required=[position[name] for name in ("High", "Low", "Open", "Close", "Volume")],
        optional=[position["Marketcap"]],
        texts=[position[name] for name in ("Name", "Symbol", "Date")],
        max_rows=max_rows,
    )
    if fast is None:
        frame = read_csv(_text(data), header=True, max_rows=max_rows)
        blank = blank_rows(frame, lines)
        frame = frame.fillna("")
        row_count = len(frame)

        def column(name: str, *, required: bool = True) -> FloatArray:
            return floats(frame[name], name, lines, required=required)

        def cells(name: str) -> pd.Series:
            return frame[name]
    else:
        row_count = len(fast[position["Close"]])
        blank = np.zeros(row_count, dtype=bool)

        def column(name: str, *, required: bool = True) -> FloatArray:
            return fast[position[name]]

        def cells(name: str) -> pd.Series:
            return pd.Series(fast[position[name]], dtype=object)

    file_symbols = cells("Symbol").str.strip().str.upper()
    first_symbol = next((value for value in file_symbols[~blank] if value), None)
    chosen = _settle_symbol(symbol, first_symbol)
    lines.add_many((~blank & (file_symbols != chosen)).to_numpy(), f"Symbol differs from {chosen}")
    names = [value.strip() for value in cells("Name")[~blank] if value.strip()]
    dates = _daily_open_times(cells("Date"), lines)
    close = column("Close")
    candles = Candles(
        timestamps=dates,
        open=column("Open"),
        high=column("High"),
        low=column("Low"),
        close=close,
        volume=np.full(close.shape[0], np.nan),  # the file's volume is in dollars, not coins
        quote_volume=column("Volume"),
    )
    return _validated(
        lines,
        CsvFormat.DAILY_MARKET_CAP,
        chosen,
        Interval.D1,
        candles,
        rows_read=row_count,
        name=names[0] if names else None,
        market_caps=column("Marketcap", required=False),
    )


def _daily_open_times(column: pd.Series, lines: LineProblems) -> IntArray:
    """Open times of the days whose close `Date` names (23:59 of a UTC day -> 00:00)."""
    text = column.str.strip()
    parsed = pd.Series(pd.NaT, index=column.index, dtype="datetime64[ns]")
    for date_format in DAILY_DATE_FORMATS:
        missing = parsed.isna()
        if not missing.any():
            break
        parsed[missing] = pd.to_datetime(text[missing], format=date_format, errors="coerce")
    bad = parsed.isna().to_numpy()
    for row in np.flatnonzero(bad):
        lines.add(int(row), f"Date {text.iloc[row][:40]!r} is not a date (M/DD/YY HH:MM or ISO)")
    millis = np.zeros(len(column), dtype=np.int64)
    millis[~bad] = parsed[~bad].to_numpy().astype("datetime64[ms]").astype(np.int64)
    return (millis // DAY_MS) * DAY_MS


def _looks_like_binance(header: list[str]) -> bool:
    if header == BINANCE_COLUMNS:
        return True
    if len(header) != len(BINANCE_COLUMNS):
        return False
    return all(cell.replace(".", "", 1).isdigit() for cell in header[:6])


def _settle_interval(given: Interval | None, timestamps: IntArray) -> Interval:
    """Choose the interval argument, or the file's most common spacing if it is one."""
    if given is not None:
        return given
    steps = np.diff(np.unique(timestamps))
    if steps.size:
        values, counts = np.unique(steps, return_counts=True)
        common = int(values[np.argmax(counts)])
        for interval in Interval:
            if interval.milliseconds == common:
                return interval
    raise InvalidInput("interval", "cannot tell the interval from the file: give interval")


def _parse_binance(
    data: bytes,
    *,
    header_present: bool,
    symbol: str | None,
    interval: Interval | None,
    max_rows: int | None,
) -> ParsedFile:
    chosen = _settle_symbol(symbol, None)
    lines = LineProblems(first_data_line=2 if header_present else 1)
    wanted = ("open_time", "open", "high", "low", "close", "volume", "quote_volume")
    position = {name: BINANCE_COLUMNS.index(name) for name in wanted}
    fast = read_numbers(
        data,
        fields=len(BINANCE_COLUMNS),
        header=header_present,
        required=list(position.values()),
        max_rows=max_rows,
    )
    if fast is None:
        frame = read_csv(
            _text(data),
            header=header_present,
            max_rows=max_rows,
            names=None if header_present else BINANCE_COLUMNS,
        )
        blank = blank_rows(frame, lines)
        frame = frame.fillna("")
        values = {name: floats(frame[name], name, lines) for name in wanted}
    else:
        values = {name: fast[index] for name, index in position.items()}
        blank = np.zeros(len(values["close"]), dtype=bool)
    timestamps = epoch_millis(values.pop("open_time"))
    candles = Candles(timestamps=timestamps, **values)
    resolved = _settle_interval(interval, timestamps[~blank])
    return _validated(
        lines, CsvFormat.BINANCE_KLINES, chosen, resolved, candles, rows_read=len(candles)
    )


def _parse_generic(
    data: bytes,
    header: list[str],
    *,
    symbol: str | None,
    interval: Interval | None,
    max_rows: int | None,
) -> ParsedFile:
    lowered = [cell.lower() for cell in header]
    lines = LineProblems(first_data_line=2)
    time_column = next((header[i] for i, cell in enumerate(lowered) if cell in TIME_COLUMNS), None)
    missing = [name for name in ("open", "high", "low", "close") if name not in lowered]
    if time_column is None or missing:
        needed = ([] if time_column else ["a time column (time, timestamp or date)"]) + missing
        raise ImportRejected(
            [LineProblem(1, f"unknown format: the header lacks {', '.join(needed)}")]
        )
    chosen = _settle_symbol(symbol, None)
    time_name = time_column.lower()
    fast = _generic_fast(data, lowered, time_name, max_rows=max_rows)
    if fast is None:
        frame = read_csv(_text(data), header=True, max_rows=max_rows)
        frame.columns = [str(column).strip().lower() for column in frame.columns]
        blank = blank_rows(frame, lines)
        frame = frame.fillna("")
        timestamps = _generic_times(frame[time_name], lines)
        row_count = len(frame)
        values = {
            name: floats(frame[name], name, lines, required=name in PRICE_COLUMNS)
            if name in frame.columns
            else np.full(row_count, np.nan)
            for name in (*PRICE_COLUMNS, *VOLUME_COLUMNS)
        }
    else:
        times, values = fast
        row_count = len(values["close"])
        blank = np.zeros(row_count, dtype=bool)
        timestamps = (
            epoch_millis(times)
            if times.dtype == np.float64
            else _generic_times(pd.Series(times, dtype=object), lines)
        )
    candles = Candles(timestamps=timestamps, **values)
    resolved = _settle_interval(interval, timestamps[~blank])
    return _validated(
        lines, CsvFormat.GENERIC_OHLCV, chosen, resolved, candles, rows_read=row_count
    )


def _generic_fast(
    data: bytes, lowered: list[str], time_name: str, *, max_rows: int | None
) -> tuple[AnyArray, dict[str, FloatArray]] | None:
    """Read a regular generic file's times (epoch floats, else text cells) and numbers.

    None for `read_numbers`' reasons, and for a header naming a column twice (the careful
    reading decides which one counts).
    """
    position = {name: index for index, name in enumerate(lowered)}
    prices = [position[name] for name in PRICE_COLUMNS]
    volumes = [position[name] for name in VOLUME_COLUMNS if name in position]
    time_index = position[time_name]
    if len(set(lowered)) != len(lowered) or time_index in {*prices, *volumes}:
        return None
    second_line = data.split(b"\n", 2)[1:2]
    first_time = second_line[0].split(b",")[time_index : time_index + 1] if second_line else []
    epoch = bool(first_time) and re.fullmatch(rb"\s*\d+(\.\d+)?\s*", first_time[0]) is not None
    columns = read_numbers(
        data,
        fields=len(lowered),
        header=True,
        required=[*prices, time_index] if epoch else prices,
        optional=volumes,
        texts=[] if epoch else [time_index],
        plain_decimal=time_index if epoch else None,
        max_rows=max_rows,
    )
    if columns is None:
        return None
    row_count = len(columns[prices[0]])
    values = {name: columns[position[name]] for name in PRICE_COLUMNS}
    for name in VOLUME_COLUMNS:
        values[name] = columns[position[name]] if name in position else np.full(row_count, np.nan)
    return columns[time_index], values


def _generic_times(column: pd.Series, lines: LineProblems) -> IntArray:
    """ISO 8601 (naive means UTC) or epoch seconds / milliseconds."""
    text = column.str.strip()
    numeric = text.str.fullmatch(r"\d+(\.\d+)?")
    if numeric.all():
        return epoch_millis(text.astype(np.float64).to_numpy())
    parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = parsed.isna().to_numpy()
    for row in np.flatnonzero(bad):
        lines.add(int(row), f"time {text.iloc[row][:40]!r} is not ISO 8601 or epoch s/ms")
    millis = np.zeros(len(column), dtype=np.int64)
    millis[~bad] = (
        parsed[~bad].dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    )
    return millis
