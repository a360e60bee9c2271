"""CSV files read as text cells, converted exactly, with every problem named by its line.

The candle files (`coinql.domain.imports`) and the transaction files of the portfolios are
read this way: nothing is written unless every line is good, and a rejection lists the bad
lines. Line numbers count the header, if any, as line 1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from coinql.domain.errors import UserError
from coinql.domain.typing import AnyArray, FloatArray, IntArray

MAX_LISTED_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class LineProblem:
    """What is wrong with one line of a file; `line` counts the header as line 1."""

    line: int
    message: str


class TooManyRows(UserError):
    """The file has more data rows than `limit`; parsing stopped after `limit + 1`."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file has more than {limit:,} rows")
        self.limit = limit


class ImportRejected(UserError):
    """The file has problems; nothing was written. `problems` lists them by line."""

    def __init__(self, problems: list[LineProblem], total: int | None = None) -> None:
        total = len(problems) if total is None else total
        listed = problems[:MAX_LISTED_PROBLEMS]
        suffix = f"; the first {len(listed)} are listed" if total > len(listed) else ""
        noun = "problem" if total == 1 else "problems"
        super().__init__(f"file rejected: {total} {noun}{suffix}; nothing was written")
        self.problems = listed
        self.total = total


def read_csv(
    text: str, *, header: bool, max_rows: int | None, names: list[str] | None = None
) -> pd.DataFrame:
    """Read a CSV text into a frame of text cells, untouched but for leading spaces.

    Parameters
    ----------
    text : str
        The file's content.
    header : bool
        Whether the first line names the columns.
    max_rows : int or None
        The most data rows accepted; None for no limit.
    names : list of str or None, default None
        The column names, for a file without a header.

    Returns
    -------
    DataFrame
        One str column per field and one row per data line, blank lines kept (their cells
        are empty or missing); nothing is converted, so no value is rounded or guessed.

    Raises
    ------
    ImportRejected
        On line 1 when the text is not CSV, or naming the line whose number of fields
        differs from the header's.
    TooManyRows
        When the file has more than `max_rows` data rows (only `max_rows + 1` are read).
    """
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            header=0 if header else None,
            names=names,
            skipinitialspace=True,
            engine="c",
            nrows=None if max_rows is None else max_rows + 1,
        )
    except pd.errors.ParserError as error:
        # "Error tokenizing data. C error: Expected 10 fields in line 5, saw 11"
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
        if match is None:
            raise ImportRejected([LineProblem(1, f"not a CSV file: {error}")]) from None
        expected, line, seen = (int(group) for group in match.groups())
        raise ImportRejected(
            [LineProblem(line, f"expected {expected} fields, found {seen}")]
        ) from None
    if max_rows is not None and len(frame) > max_rows:
        raise TooManyRows(max_rows)
    return frame


class LineProblems:
    """Collect problems with file line numbers for data row indexes.

    Parameters
    ----------
    first_data_line : int
        The line number of data row 0 (2 below a header, 1 without one).
    """

    def __init__(self, first_data_line: int) -> None:
        self.first = first_data_line
        self.problems: list[LineProblem] = []
        self.blank: set[int] = set()  # blank lines get one problem, not one per column

    def add(self, row: int, message: str) -> None:
        """Record a problem with data row `row`, unless the row is a blank line."""
        if row not in self.blank:
            self.problems.append(LineProblem(self.first + row, message))

    def add_many(self, rows: AnyArray, message: str) -> None:
        """Record the same problem for each data row where the bool mask `rows` is True."""
        for row in np.flatnonzero(rows):
            self.add(int(row), message)

    def raise_if_any(self) -> None:
        """Raise the problems recorded, sorted by line.

        Raises
        ------
        ImportRejected
            When any problem was recorded.
        """
        if self.problems:
            self.problems.sort(key=lambda problem: problem.line)
            raise ImportRejected(self.problems)


def floats(
    column: pd.Series, name: str, lines: LineProblems, *, required: bool = True
) -> FloatArray:
    """Convert a column of text cells to floats exactly, reporting bad cells by line.

    Parameters
    ----------
    column : Series of str
        The n_rows cells, as `read_csv` gives them.
    name : str
        The column's name, for the messages.
    lines : LineProblems
        Where the problems go.
    required : bool, default True
        Whether an empty cell is a problem.

    Returns
    -------
    ndarray of shape (n_rows,)
        Each cell's correctly rounded float (Python's parsing); NaN where a cell is empty or
        not a number. A cell that is not a number or holds a NaN or infinite value is
        reported (an infinite one stays infinite here); an empty one too when `required`.
    """
    values = column.to_numpy(dtype=object)
    blank = np.array([not str(value).strip() for value in values], dtype=bool)
    result = np.full(values.shape[0], np.nan)
    unparsed = np.zeros(values.shape[0], dtype=bool)
    try:
        result[~blank] = np.asarray(values[~blank], dtype=str).astype(np.float64)
    except ValueError:
        for row in np.flatnonzero(~blank):
            try:
                result[row] = float(values[row])
            except ValueError:
                unparsed[row] = True
                lines.add(int(row), f"{name} {str(values[row])[:40]!r} is not a number")
    if required:
        lines.add_many(blank, f"{name} is empty")
    lines.add_many(~blank & ~unparsed & ~np.isfinite(result), f"{name} must be a finite number")
    return result


def blank_rows(frame: pd.DataFrame, lines: LineProblems) -> AnyArray:
    """Find the blank lines of a frame, reporting each once and muting its other problems.

    Parameters
    ----------
    frame : DataFrame
        The n_rows data rows, as `read_csv` gives them.
    lines : LineProblems
        Where the problems go; its blank rows get no further problem.

    Returns
    -------
    ndarray of bool of shape (n_rows,)
        True where every cell of the row is empty or missing.
    """
    blank = (frame.apply(lambda column: column.str.strip() == "") | frame.isna()).all(axis=1)
    mask: AnyArray = blank.to_numpy()
    lines.add_many(mask, "blank line")
    lines.blank.update(int(row) for row in np.flatnonzero(mask))
    return mask


def epoch_millis(values: FloatArray) -> IntArray:
    """Convert epoch seconds, milliseconds or microseconds to milliseconds, judged by magnitude.

    Parameters
    ----------
    values : ndarray of shape (n_rows,)
        Epoch times all in one unit: seconds when the largest finite one is under 1e11,
        milliseconds under 1e14, else microseconds.

    Returns
    -------
    ndarray of int64 of shape (n_rows,)
        Rounded milliseconds; 0 where a value is NaN or infinite.
    """
    finite = values[np.isfinite(values)]
    largest = float(np.max(np.abs(finite))) if finite.size else 0.0
    scale = 1000.0 if largest < 1e11 else (1.0 if largest < 1e14 else 1e-3)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(values), np.round(values * scale), 0).astype(np.int64)


BYTE_ORDER_MARK = b"\xef\xbb\xbf"
_COMMA, _NEWLINE, _RETURN, _QUOTE, _DOT = (ord(char) for char in ',\n\r".')
_WIDEST_PLAIN_DECIMAL = 40
_PLAIN_DECIMAL_CHUNK = 1 << 17


def read_numbers(
    data: bytes,
    *,
    fields: int,
    header: bool,
    required: Sequence[int],
    optional: Sequence[int] = (),
    texts: Sequence[int] = (),
    plain_decimal: int | None = None,
    max_rows: int | None,
) -> dict[int, AnyArray] | None:
    r"""Read the columns of a plainly regular CSV file straight from its bytes, vectorized.

    The fast path of a file that needs no line-by-line reading: the structure is checked
    with numpy on the bytes and the numbers are converted by pandas' C parser, whose float
    conversion (fast_float, pandas >= 3.1) is correctly rounded, so a value is bit for bit
    Python's float of the cell's text, as `floats` gives it. Whenever anything would make
    the careful reading (`read_csv`, `floats`, `blank_rows`) report a problem or read the
    file differently, None is returned and the caller reads it that way, which names the
    lines.

    Parameters
    ----------
    data : bytes
        The file's content (a UTF-8 byte order mark is allowed).
    fields : int
        The number of fields of every line.
    header : bool
        Whether the first line names the columns (it is not read here).
    required : sequence of int
        Positions of the columns whose every cell must be a finite number.
    optional : sequence of int, default ()
        Positions of the columns whose cells are finite numbers or empty (NaN).
    texts : sequence of int, default ()
        Positions of the columns read as text cells (leading spaces dropped).
    plain_decimal : int or None, default None
        The position of a column of `required` whose cells must also be plain decimals,
        digits with at most one decimal point between digits (`\d+(\.\d+)?`).
    max_rows : int or None
        The most data rows accepted; None for no limit.

    Returns
    -------
    dict of int to ndarray of shape (n_rows,), or None
        float64 arrays for the numeric columns and object arrays of str for `texts`, by
        position; None when the file is not ASCII, quotes a field, has a blank line, a
        stray carriage return or a line with another number of fields, a cell that does
        not convert or is not finite, or a `plain_decimal` cell of another shape.

    Raises
    ------
    TooManyRows
        When the file's first `max_rows + 1` data lines are regular (the careful reading
        would stop there too).
    """
    if data.startswith(BYTE_ORDER_MARK):
        data = data[len(BYTE_ORDER_MARK) :]
    body = np.frombuffer(data, dtype=np.uint8)
    if body.size == 0 or body.max() >= 0x80 or (body == _QUOTE).any():
        return None
    returns = np.flatnonzero(body == _RETURN)
    if returns.size and (returns[-1] + 1 >= body.size or (body[returns + 1] != _NEWLINE).any()):
        return None
    newlines = np.flatnonzero(body == _NEWLINE)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [body.size]])
    if starts[-1] == body.size:  # the file ends with a newline: no line follows it
        starts, ends = starts[:-1], ends[:-1]
    if header:
        starts, ends = starts[1:], ends[1:]
    rows = starts.size
    if rows == 0:
        return None
    checked = rows if max_rows is None else min(rows, max_rows + 1)
    starts, ends = starts[:checked], ends[:checked]
    ends = ends - (body[np.maximum(ends - 1, 0)] == _RETURN)  # a CRLF line ends before its CR
    if (ends <= starts).any():
        return None
    commas = np.flatnonzero(body == _COMMA)
    first_comma = np.searchsorted(commas, starts)
    if (np.searchsorted(commas, ends) - first_comma != fields - 1).any():
        return None
    if max_rows is not None and rows > max_rows:
        raise TooManyRows(max_rows)
    if plain_decimal is not None and not _plain_decimals(
        body, commas, first_comma, starts, ends, plain_decimal, fields
    ):
        return None
    numeric = [*required, *optional]
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            header=None,
            skiprows=1 if header else 0,
            names=list(range(fields)),
            usecols=sorted({*numeric, *texts}),
            dtype={**dict.fromkeys(numeric, np.float64), **dict.fromkeys(texts, str)},
            keep_default_na=False,
            na_values={position: [""] for position in optional},
            skipinitialspace=True,
            engine="c",
        )
    except (ValueError, OverflowError):
        return None
    if len(frame) != rows:
        return None
    columns: dict[int, AnyArray] = {}
    for position in numeric:
        values = frame[position].to_numpy(dtype=np.float64)
        finite = np.isfinite(values)
        if not (finite.all() if position in required else (finite | np.isnan(values)).all()):
            return None
        columns[position] = values
    for position in texts:
        columns[position] = frame[position].to_numpy(dtype=object)
    return columns


def _plain_decimals(
    body: AnyArray,
    commas: AnyArray,
    first_comma: AnyArray,
    starts: AnyArray,
    ends: AnyArray,
    position: int,
    fields: int,
) -> bool:
    r"""Whether every line's cell at `position` matches `\d+(\.\d+)?` (ASCII digits)."""
    begin = starts if position == 0 else commas[first_comma + position - 1] + 1
    end = ends if position == fields - 1 else commas[first_comma + position]
    widths = end - begin
    if widths.min() < 1 or widths.max() > _WIDEST_PLAIN_DECIMAL:
        return False
    offsets = np.arange(int(widths.max()))
    for chunk in range(0, widths.size, _PLAIN_DECIMAL_CHUNK):  # bounds the (rows, width) block
        width = widths[chunk : chunk + _PLAIN_DECIMAL_CHUNK]
        inside = offsets < width[:, None]
        cells = body[np.minimum(begin[chunk : chunk + width.size, None] + offsets, body.size - 1)]
        digits = (cells >= ord("0")) & (cells <= ord("9"))
        dots = cells == _DOT
        if (inside & ~digits & ~dots).any() or ((inside & dots).sum(axis=1) > 1).any():
            return False
        if not (digits[:, 0].all() and digits[np.arange(width.size), width - 1].all()):
            return False
    return True
