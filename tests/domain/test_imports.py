from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from coinql.domain import imports
from coinql.domain.candles import DAY_MS, Interval
from coinql.domain.csv_lines import BYTE_ORDER_MARK, ImportRejected, TooManyRows
from coinql.domain.errors import InvalidInput
from coinql.domain.imports import BINANCE_COLUMNS, CsvFormat, ParsedFile, parse_candle_file
from tests.conftest import COINS_DIR

DAILY_HEADER = "SNo,Name,Symbol,Date,High,Low,Open,Close,Volume,Marketcap\n"
REAL_FILES = sorted(COINS_DIR.glob("coin_*.csv"))


def test_the_six_real_files_are_there() -> None:
    assert len(REAL_FILES) == 6


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: path.stem)
def test_real_daily_files_parse_exactly(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    parsed = parse_candle_file(path.read_bytes())
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert parsed.format is CsvFormat.DAILY_MARKET_CAP
    assert parsed.interval is Interval.D1
    assert parsed.symbol == rows[0]["Symbol"]
    assert parsed.name == rows[0]["Name"]
    assert parsed.rows_read == len(rows)
    # Bit for bit the floats of the file's text.
    assert parsed.candles.close.tolist() == [float(row["Close"]) for row in rows]
    assert parsed.candles.quote_volume.tolist() == [float(row["Volume"]) for row in rows]
    assert np.isnan(parsed.candles.volume).all()  # the file's volume is dollars, not coins
    assert parsed.market_caps.tolist() == [float(row["Marketcap"]) for row in rows]
    # "7/05/21 23:59" and "2021-07-05 23:59:59" both close the day that opens at midnight.
    last = datetime.fromtimestamp(parsed.candles.timestamps[-1] / 1000, UTC)
    assert (last.year, last.month, last.day, last.hour) == (2021, 7, 6, 0)
    assert np.all(np.diff(parsed.candles.timestamps) == DAY_MS)


def daily(rows: list[str]) -> bytes:
    return (DAILY_HEADER + "".join(row + "\n" for row in rows)).encode()


GOOD = [
    "1,Bitcoin,BTC,1/01/17 23:59,1003.08,958.69,963.65,998.32,147775008,16050407461",
    "2,Bitcoin,BTC,1/02/17 23:59,1031.39,996.70,998.61,1021.75,222184992,16429024775",
    "3,Bitcoin,BTC,1/03/17 23:59,1044.07,1021.59,1021.59,1043.83,185168000,16786368910",
]


def rejected(data: bytes, **kwargs: object) -> ImportRejected:
    with pytest.raises(ImportRejected) as raised:
        parse_candle_file(data, **kwargs)  # type: ignore[arg-type]
    return raised.value


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        (
            "4,Bitcoin,BTC,1/04/17 23:59,1159.42,1044.40,1044.40,1300.0,1,1",
            "high is below open or close",
        ),
        (
            "4,Bitcoin,BTC,1/04/17 23:59,1159.42,1044.40,1044.40,abc,1,1",
            "Close 'abc' is not a number",
        ),
        (
            "4,Bitcoin,BTC,1/03/17 23:59,1159.42,1044.40,1044.40,1100,1,1",
            "duplicate timestamp (same as the previous row)",
        ),
        (
            "4,Bitcoin,BTC,1/02/17 23:59,1159.42,1044.40,1044.40,1100,1,1",
            "timestamp is earlier than the previous row's",
        ),
        (
            "4,Bitcoin,BTC,13/45/17 23:59,1159.42,1044.40,1044.40,1100,1,1",
            "Date '13/45/17 23:59' is not a date (M/DD/YY HH:MM or ISO)",
        ),
        ("4,Bitcoin,BTC,1/04/17 23:59,1159.42,-1,1044.40,1100,1,1", "low must be positive"),
        ("4,Bitcoin,BTC,1/04/17 23:59,1159.42,1044.40,1044.40,,1,1", "Close is empty"),
        ("4,Bitcoin,ETH,1/04/17 23:59,1159.42,1044.40,1044.40,1100,1,1", "Symbol differs from BTC"),
        (
            "4,Bitcoin,BTC,1/04/17 23:59,1159.42,1044.40,1044.40,inf,1,1",
            "Close must be a finite number",
        ),
    ],
)
def test_a_bad_row_is_named_by_its_line(bad_row: str, message: str) -> None:
    error = rejected(daily([*GOOD, bad_row]))
    assert [(p.line, p.message) for p in error.problems] == [(5, message)]
    assert error.message == "file rejected: 1 problem; nothing was written"


def test_a_row_with_extra_fields_is_named_by_its_line() -> None:
    error = rejected(daily([*GOOD, "4,Bitcoin,BTC,1/04/17 23:59,1,1,1,1,1,1,EXTRA"]))
    assert [(p.line, p.message) for p in error.problems] == [(5, "expected 10 fields, found 11")]


def test_blank_line_in_the_middle_is_a_problem() -> None:
    error = rejected(daily([GOOD[0], "", GOOD[1]]))
    assert [(p.line, p.message) for p in error.problems] == [(3, "blank line")]


def test_many_problems_are_capped_but_counted() -> None:
    rows = [f"{i},Bitcoin,BTC,1/01/17 23:59,x,1,1,1,1,1" for i in range(150)]
    error = rejected(daily(rows))
    assert error.total >= 150
    assert len(error.problems) == 100
    assert "the first 100 are listed" in error.message


def test_symbol_argument_must_match_the_file() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_candle_file(daily(GOOD), symbol="ETH")
    assert raised.value.field == "symbol"
    assert parse_candle_file(daily(GOOD), symbol="btc").symbol == "BTC"


def test_daily_file_refuses_another_interval() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_candle_file(daily(GOOD), interval=Interval.H1)
    assert raised.value.field == "interval"


BINANCE_ROWS = [
    "1609459200000,28923.63,29031.34,28690.17,28995.13,2311.81,1609462799999,66768830.34,58389,1215.08,35085979.05,0",
    "1609462800000,28995.13,29470.00,28960.35,29409.99,3416.11,1609466399999,99725932.71,79945,1858.22,54255818.33,0",
    "1609466400000,29410.00,29465.26,29120.03,29194.65,2355.91,1609469999999,68887911.07,59312,1065.12,31149418.19,0",
]


def test_binance_klines_without_header() -> None:
    parsed = parse_candle_file(("\n".join(BINANCE_ROWS) + "\n").encode(), symbol="BTC")
    assert parsed.format is CsvFormat.BINANCE_KLINES
    assert parsed.interval is Interval.H1  # inferred from the spacing
    assert parsed.candles.timestamps[0] == 1609459200000
    assert parsed.candles.volume.tolist() == [2311.81, 3416.11, 2355.91]
    assert parsed.candles.quote_volume[0] == 66768830.34


def test_binance_klines_in_microseconds_with_header() -> None:
    header = ",".join(BINANCE_COLUMNS) + "\n"
    rows = [row.replace("000,", "000000,", 1) for row in BINANCE_ROWS]
    parsed = parse_candle_file((header + "\n".join(rows)).encode(), symbol="BTC")
    assert parsed.candles.timestamps[0] == 1609459200000


def test_binance_needs_a_symbol() -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_candle_file("\n".join(BINANCE_ROWS).encode())
    assert raised.value.field == "symbol"


@pytest.mark.parametrize(
    "times",
    [
        ["2021-01-01T00:00:00Z", "2021-01-02T00:00:00Z", "2021-01-03T00:00:00+00:00"],
        ["2021-01-01", "2021-01-02", "2021-01-03"],
        ["1609459200", "1609545600", "1609632000"],
        ["1609459200000", "1609545600000", "1609632000000"],
    ],
)
def test_generic_ohlcv_time_formats(times: list[str]) -> None:
    text = "timestamp,open,high,low,close,volume\n" + "".join(
        f"{time},10,12,9,11,100\n" for time in times
    )
    parsed = parse_candle_file(text.encode(), symbol="eth")
    assert parsed.format is CsvFormat.GENERIC_OHLCV
    assert parsed.symbol == "ETH"
    assert parsed.interval is Interval.D1
    assert parsed.candles.timestamps.tolist() == [1609459200000 + i * DAY_MS for i in range(3)]
    assert np.isnan(parsed.candles.quote_volume).all()


def test_generic_unknown_header_is_rejected_on_line_one() -> None:
    error = rejected(b"when,price\n1,2\n", symbol="X")
    assert error.problems[0].line == 1
    assert "time column" in error.problems[0].message


def test_an_interval_that_cannot_be_inferred_must_be_given() -> None:
    text = b"time,open,high,low,close\n0,1,1,1,1\n7000,1,1,1,1\n"
    with pytest.raises(InvalidInput):
        parse_candle_file(text, symbol="X")


def test_non_utf8_is_rejected() -> None:
    assert rejected(b"\xff\xfe\x00garbage").problems[0].line == 1


JAN_2020 = 1_577_836_800_000


def generic(rows: int, *, tail: str = "") -> bytes:
    """A generic OHLCV file of `rows` daily candles, then `tail` verbatim."""
    lines = ["time,open,high,low,close,volume"]
    lines += [f"{JAN_2020 + day * DAY_MS},100,101,99,100.5,1" for day in range(rows)]
    return ("\n".join(lines) + "\n" + tail).encode()


@pytest.mark.parametrize("header", ["generic", "binance", "daily"])
def test_max_rows_takes_a_file_of_that_many_rows(header: str) -> None:
    if header == "generic":
        data = generic(40)
    elif header == "binance":
        opens = [JAN_2020 + day * DAY_MS for day in range(40)]
        data = "".join(f"{t},1,2,0.5,1.5,10,{t + DAY_MS - 1},15,3,5,7,0\n" for t in opens).encode()
    else:
        data = daily(
            [
                f"{day},Bitcoin,BTC,1/{day:02d}/17 23:59,1003.08,958.69,963.65,998.32,1,1"
                for day in range(1, 31)
            ]
        )
        assert parse_candle_file(data, max_rows=30).rows_read == 30
        with pytest.raises(TooManyRows):
            parse_candle_file(data, max_rows=29)
        return
    assert parse_candle_file(data, symbol="BTC", max_rows=40).rows_read == 40
    with pytest.raises(TooManyRows) as raised:
        parse_candle_file(data, symbol="BTC", max_rows=39)
    assert raised.value.limit == 39


def test_max_rows_stops_reading_at_the_limit() -> None:
    """What follows the limit is not read: a malformed line there goes unseen."""
    data = generic(20, tail="this,line,has,far,too,many,fields,to,parse\n" * 3)
    assert rejected(data, symbol="BTC").problems[0].message.startswith("expected 6 fields")
    with pytest.raises(TooManyRows):
        parse_candle_file(data, symbol="BTC", max_rows=10)


@pytest.mark.parametrize("data", [b"", b"\n", b"   \nSNo,Name\n"])
def test_an_empty_file_is_rejected_on_line_one(data: bytes) -> None:
    error = rejected(data, symbol="X")
    assert [(p.line, p.message) for p in error.problems] == [
        (1, "file is empty or starts with a blank line")
    ]


def test_a_generic_time_that_does_not_parse_is_named_by_its_line() -> None:
    text = "time,open,high,low,close\n2021-01-01,10,12,9,11\nyesterday,10,12,9,11\n"
    error = rejected(text.encode(), symbol="X", interval=Interval.D1)
    assert (3, "time 'yesterday' is not ISO 8601 or epoch s/ms") in [
        (p.line, p.message) for p in error.problems
    ]


# The vectorized reading (`read_numbers`) against the careful one, which names the lines.


def careful(data: bytes, monkeypatch: pytest.MonkeyPatch, **kwargs: object) -> object:
    """What the line-by-line reading gives: the parsed file, or the exception raised."""
    with monkeypatch.context() as patch:
        patch.setattr(imports, "read_numbers", lambda *args, **kw: None)
        return outcome(data, **kwargs)


def outcome(data: bytes, **kwargs: object) -> object:
    try:
        return parse_candle_file(data, **kwargs)  # type: ignore[arg-type]
    except (ImportRejected, InvalidInput, TooManyRows) as error:
        return error


def assert_same(fast: object, slow: object) -> None:
    if isinstance(slow, Exception):
        assert type(fast) is type(slow), fast
        assert str(fast) == str(slow)
        assert getattr(fast, "problems", None) == getattr(slow, "problems", None)
        return
    assert isinstance(fast, ParsedFile) and isinstance(slow, ParsedFile), fast
    assert (fast.format, fast.symbol, fast.name, fast.interval, fast.rows_read) == (
        slow.format,
        slow.symbol,
        slow.name,
        slow.interval,
        slow.rows_read,
    )
    for name in ("timestamps", "open", "high", "low", "close", "volume", "quote_volume"):
        a, b = getattr(fast.candles, name), getattr(slow.candles, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, strict=True)  # NaN where NaN, else bit for bit
    np.testing.assert_array_equal(fast.market_caps, slow.market_caps, strict=True)


@pytest.fixture
def fast_reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records whether each `read_numbers` call took the fast path."""
    taken: list[bool] = []
    original = imports.read_numbers

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(imports, "read_numbers", spy)
    return taken


@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: path.stem)
def test_vectorized_reading_equals_the_careful_one_on_the_real_files(
    path: Path, monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    data = path.read_bytes()
    fast = outcome(data)
    assert fast_reads == [True]
    assert_same(fast, careful(data, monkeypatch))


LOSSLESS = [
    repr,
    lambda v: f"{v:.17g}",
    lambda v: f"{v:.17e}",
    lambda v: f"{v:.16E}",
    lambda v: f"{v:.30f}" if v > 1 else repr(v),
    lambda v: f"+{v!r}",
    lambda v: f"  {v!r}",
    lambda v: repr(v) if "e" in repr(v) else f"{v!r}000",
]
LOSSY = [
    lambda v: f"{v:.10g}",
    lambda v: f"{v:.6e}",
    lambda v: f"{v:.3E}",
    lambda v: f"{round(v)}",
    lambda v: f"{v:.2f}",
]


def random_cells(rng: np.random.Generator, values: np.ndarray, styles: list[Any]) -> list[str]:
    """The values written the ways files write numbers: shortest repr, 17 digits, exponents,
    integers, trailing zeros, a plus sign, leading spaces."""
    picks = rng.integers(0, len(styles), values.size)
    return [styles[pick](float(value)) for pick, value in zip(picks, values, strict=True)]


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_reading_equals_the_careful_one_on_random_files(
    seed: int, monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    rng = np.random.default_rng(seed)
    rows = 3_000
    low = np.exp(rng.normal(0, 6, rows))
    high = low * (1 + rng.random(rows))
    mid = low + (high - low) * rng.random((2, rows))
    volume = rng.random(rows) * 10.0 ** rng.integers(-9, 9, rows)
    volume[rng.random(rows) < 0.1] = np.nan
    times = JAN_2020 + np.arange(rows) * 3_600_000
    low[0], high[0], mid[:, 0] = 1.0, 2.0, 1.5  # Binance is told by a plain first line
    columns = [mid[0], high, low, mid[1]]
    cells = [random_cells(rng, values, LOSSLESS) for values in columns]
    for column in cells:
        column[0] = "1.5"
    volumes = random_cells(rng, np.nan_to_num(volume), LOSSY)
    volumes = ["" if np.isnan(v) else cell for v, cell in zip(volume, volumes, strict=True)]
    lines = ["timestamp,open,high,low,close,volume"] + [
        ",".join([str(t), *(column[i] for column in cells), volumes[i]])
        for i, t in enumerate(times)
    ]
    data = ("\r\n" if seed % 2 else "\n").join(lines).encode() + (b"\n" if seed < 2 else b"")
    fast = outcome(data, symbol="BTC")
    assert fast_reads == [True]
    assert isinstance(fast, ParsedFile) and fast.interval is Interval.H1
    assert fast.candles.close.tolist() == [float(cell) for cell in cells[3]]
    assert_same(fast, careful(data, monkeypatch, symbol="BTC"))
    binance = "".join(
        f"{t},{o},{h},{lo},{c},{v},{t + 3_599_999},1,2,3,4,0\n"
        for t, o, h, lo, c, v in zip(
            times, *cells, ["7", *(f"{v:.12g}" for v in np.nan_to_num(volume[1:]))], strict=True
        )
    ).encode()
    assert_same(outcome(binance, symbol="BTC"), careful(binance, monkeypatch, symbol="BTC"))
    assert fast_reads == [True, True]


def generic_lines(rows: int) -> list[str]:
    lines = ["time,open,high,low,close,volume"]
    lines += [f"{JAN_2020 + day * DAY_MS},100,101,99,100.5,1" for day in range(rows)]
    return lines


@pytest.mark.parametrize(
    ("bad_line", "fast_path"),
    [
        ("{t},100,101,99,abc,1", False),  # not a number
        ("{t},100,101,99,,1", False),  # empty price
        ("{t},100,101,99,inf,1", False),  # not finite
        ("{t},100,101,99,nan,1", False),
        ("{t},100,101,99,100.5,-1", True),  # negative volume: a validation problem
        ("{t},100,101,99,100.5,inf", False),
        ("{t},100,99,101,100.5,1", True),  # low above high
        ("{t},100,101,99,100.5,1,7", False),  # an extra field
        ("{t},100,101,99,100.5", False),  # a missing optional field: NaN volume
        ("{t},100,101,99", False),  # missing fields
        ("", False),  # a blank line
        ("   ", False),
        (",,,,,", False),
        ("+{t},100,101,99,100.5,1", False),  # times the careful reading does not take
        ("{t}.,100,101,99,100.5,1", False),
        ("{t}e0,100,101,99,100.5,1", False),
        ("{t}.5,100,101,99,100.5,1", True),  # off the D1 boundary
        (" {t},100,101,99,100.5,1", False),
        ('{t},"100",101,99,100.5,1', False),  # quoted
        ("{t},100,101,99,100.5,1\rX", False),  # a stray carriage return
        ("{t},100,101,99,100.5,1é", False),  # not ASCII
        ("{t},100,101,99,1_00.5,1", False),  # Python's float takes underscores
        ("{t},100,101,99,\uff11\uff10\uff10,1", False),  # and other digits
        ("{t},100,101,99,0x10,1", False),
        ("{p},100,101,99,100.5,1", True),  # the previous line's time: a duplicate
    ],
)
def test_a_bad_line_in_a_large_file_is_named_as_the_careful_reading_names_it(
    bad_line: str, fast_path: bool, monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    lines = generic_lines(1_000)
    number = 700  # the file's line number, the header being line 1
    times = (JAN_2020 + (number - 2) * DAY_MS, JAN_2020 + (number - 3) * DAY_MS)
    lines[number - 1] = bad_line.format(t=times[0], p=times[1])
    data = ("\n".join(lines) + "\n").encode()
    fast = outcome(data, symbol="BTC", interval=Interval.D1)
    assert fast_reads == [fast_path]
    slow = careful(data, monkeypatch, symbol="BTC", interval=Interval.D1)
    assert_same(fast, slow)
    if fast_path and isinstance(fast, ImportRejected):
        assert {problem.line for problem in fast.problems} == {number}


def test_iso_times_take_the_vectorized_reading_too(
    monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    days = pd.date_range("2021-01-01", periods=400, freq="D", tz="UTC")
    lines = ["date,open,high,low,close"] + [f"{day.isoformat()},1,2,0.5,1.5" for day in days]
    lines[300] = "not a date,1,2,0.5,1.5"
    data = "\n".join(lines).encode()
    fast = outcome(data, symbol="X")
    assert fast_reads == [True]
    assert isinstance(fast, ImportRejected)
    assert (301, "time 'not a date' is not ISO 8601 or epoch s/ms") in [
        (p.line, p.message) for p in fast.problems
    ]
    assert_same(fast, careful(data, monkeypatch, symbol="X"))


@pytest.mark.parametrize("limit", [999, 1_000])
def test_max_rows_on_the_vectorized_reading(
    limit: int, monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    data = ("\n".join(generic_lines(1_000)) + "\n").encode()
    fast = outcome(data, symbol="BTC", max_rows=limit)
    assert_same(fast, careful(data, monkeypatch, symbol="BTC", max_rows=limit))
    assert isinstance(fast, TooManyRows if limit < 1_000 else ParsedFile)


def test_a_daily_file_with_a_byte_order_mark_reads_the_same(
    monkeypatch: pytest.MonkeyPatch, fast_reads: list[bool]
) -> None:
    data = BYTE_ORDER_MARK + daily(GOOD)
    assert_same(outcome(data), careful(data, monkeypatch))
    assert fast_reads == [True]
