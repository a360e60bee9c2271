"""CSV files read as text cells, converted exactly, with every problem named by its line.

The candle files (`coinql.domain.imports`) and the transaction files of the portfolios are
read this way: nothing is written unless every line is good, and a rejection lists the bad
lines. Line numbers count the header, if any, as line 1.
"""

from __future__ import annotations

import io
import re
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
