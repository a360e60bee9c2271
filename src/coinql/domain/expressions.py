"""Strategy expressions: entry and exit signals written over the indicators, never executed.

An expression is parsed by a grammar into a typed tree, checked, and evaluated as whole numpy
arrays; nothing in it reaches `eval`. From loosest to tightest binding::

    expr     := and ("or" and)*
    and      := not ("and" not)*
    not      := "not" not | compare
    compare  := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum      := product (("+" | "-") product)*
    product  := unary (("*" | "/") unary)*
    unary    := "-" unary | primary
    primary  := NUMBER | "$" DIGITS | PRICE | NAME "(" [expr ("," expr)*] ")" | "(" expr ")"

PRICE is one of `open high low close volume`; `$1`, `$2`, ... are numbered parameters, bound
from the strategy's `p1`, `p2`, ... (a sweep's grid). The functions are in `FUNCTIONS`.
Values are of three types: a number, a series (a float per bar, NaN where undefined) and a
condition (a bool per bar). A comparison with an undefined side is false; `a / 0` is undefined.

Every function reads the bar it is evaluated at and earlier bars only, so no expression can
look ahead: changing a later bar never changes an earlier signal (a property test checks).
`crossover(sma(close, 10), sma(close, 30))` is the built-in `smaCross` entry, bar for bar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from coinql.domain.candles import Candles
from coinql.domain.errors import InvalidInput
from coinql.domain.expression_functions import FUNCTIONS, NUMBER, SERIES, WINDOW, Function, Type
from coinql.domain.expression_syntax import (
    Call,
    ExpressionError,
    Node,
    Number,
    Operation,
    Parameter,
    Price,
    parse,
)
from coinql.domain.typing import BoolArray

MAX_WINDOW = 1_000  # bars in one window, as the built-in strategies' (domain.strategies)

_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True, slots=True)
class Checked:
    """A bound and checked expression: its tree and the bars before its first defined value."""

    tree: Node
    lookback: int


def check(
    tree: Node, values: Mapping[int, float], field_name: str = "expression", *, want: Type
) -> Checked:
    """Bind a tree's parameters and check its types, windows and arity.

    Parameters
    ----------
    tree : Node
        From `parse`.
    values : mapping of int to float
        Each parameter's value by its number (`$1` is ``values[1]``).
    field_name : str, default "expression"
        The input field it came from, named by errors.
    want : Type
        What the whole expression must give (a condition, for a signal).

    Returns
    -------
    Checked

    Raises
    ------
    ExpressionError
        At the first node that does not check.
    """
    checker = _Checker(values, field_name)
    bound, kind, lookback = checker.visit(tree)
    if kind is not want:
        raise ExpressionError(field_name, tree.column, f"gives {kind.value}, not {want.value}")
    return Checked(bound, lookback)


class _Checker:
    def __init__(self, values: Mapping[int, float], field_name: str) -> None:
        self.values = values
        self.field = field_name

    def fail(self, node: Node, message: str) -> ExpressionError:
        return ExpressionError(self.field, node.column, message)

    def visit(self, node: Node) -> tuple[Node, Type, int]:
        """Return the node with its parameters bound, its type and its lookback."""
        if isinstance(node, Number):
            return node, Type.NUMBER, 0
        if isinstance(node, Parameter):
            if node.index not in self.values:
                raise self.fail(node, f"${node.index} has no value (set p{node.index})")
            return Number(node.column, float(self.values[node.index])), Type.NUMBER, 0
        if isinstance(node, Price):
            return node, Type.SERIES, 0
        if isinstance(node, Call):
            return self.call(node)
        assert isinstance(node, Operation)
        visited = [self.visit(operand) for operand in node.operands]
        operands = tuple(bound for bound, _, _ in visited)
        kinds = [kind for _, kind, _ in visited]
        lookback = max(before for _, _, before in visited)
        if node.op in ("and", "or", "not"):
            self.require(node, kinds, Type.CONDITION, "a condition")
            return Operation(node.column, node.op, operands), Type.CONDITION, lookback
        self.require(node, kinds, None, "a number or a series")
        if node.op in _COMPARISONS:
            return Operation(node.column, node.op, operands), Type.CONDITION, lookback
        if all(kind is Type.NUMBER for kind in kinds):  # folded: 2 * $1 is a window too
            return Number(node.column, _fold(node.op, operands)), Type.NUMBER, 0
        return Operation(node.column, node.op, operands), Type.SERIES, lookback

    def require(self, node: Operation, kinds: list[Type], wanted: Type | None, what: str) -> None:
        for operand, kind in zip(node.operands, kinds, strict=True):
            if (kind is Type.CONDITION) != (wanted is Type.CONDITION):
                raise self.fail(operand, f"{node.op!r} needs {what}, this is {kind.value}")

    def call(self, node: Call) -> tuple[Node, Type, int]:
        function = FUNCTIONS[node.name]
        needed, total = len(function.params) - len(function.optional), len(function.params)
        if not needed <= len(node.args) <= total:
            count = str(total) if needed == total else f"{needed} to {total}"
            raise self.fail(node, f"{node.name} takes {count} arguments, not {len(node.args)}")
        args, windows, before = [], [], 0
        for param, arg in zip(function.params, node.args, strict=False):
            bound, kind, lookback = self.visit(arg)
            if param == SERIES and kind is Type.CONDITION:
                raise self.fail(arg, f"{node.name} needs a series here, this is a condition")
            if param in (WINDOW, NUMBER):
                if kind is not Type.NUMBER:
                    raise self.fail(arg, f"{node.name}'s {param} is a number, not {kind.value}")
                assert isinstance(bound, Number)
                value = bound.value
                if not np.isfinite(value):
                    raise self.fail(arg, f"{node.name}'s {param} must be a finite number")
                if param == WINDOW and not (value.is_integer() and 1 <= value <= MAX_WINDOW):
                    raise self.fail(
                        arg, f"a window is a whole number of bars up to {MAX_WINDOW}, not {value:g}"
                    )
                windows.append(value)
            args.append(bound)
            before = max(before, lookback)
        missing = len(function.params) - len(args)  # trailing optional ones: their defaults
        defaults = function.optional[len(function.optional) - missing :]
        args.extend(Number(node.column, default) for default in defaults)
        if not windows:
            windows = [1.0]
        lookback = function.lookback(before, windows)
        return Call(node.column, node.name, tuple(args)), function.returns, lookback


def _fold(op: str, operands: tuple[Node, ...]) -> float:
    values = [operand.value for operand in operands if isinstance(operand, Number)]
    if op == "-" and len(values) == 1:
        return -values[0]
    first, second = values
    if op == "/":
        return first / second if second else float("nan")
    return {"+": first + second, "-": first - second, "*": first * second}[op]


def evaluate(
    trees: list[Checked], candles: Candles, memo: dict[Node, Any] | None = None
) -> list[BoolArray]:
    """Evaluate checked conditions on every bar of `candles`, sharing common parts.

    Parameters
    ----------
    trees : list of Checked
        Conditions from `check` (e.g. an entry and an exit).
    candles : Candles
        Of length n_bars.
    memo : dict, optional
        The values of subexpressions already computed on these same candles, shared by
        evaluations that repeat them (a sweep's combinations); filled in as it goes.

    Returns
    -------
    list of ndarray of bool of shape (n_bars,)
        Each condition on each bar, from that bar and earlier ones only. A comparison with an
        undefined side is false (and `not` of it true).
    """
    memo = {} if memo is None else memo

    def value(node: Node) -> Any:
        if node in memo:
            return memo[node]
        if isinstance(node, Number):
            found: Any = np.full(len(candles), node.value)
        elif isinstance(node, Price):
            found = np.asarray(getattr(candles, node.name), dtype=np.float64)
        elif isinstance(node, Call):
            function = FUNCTIONS[node.name]
            # A window's or a number's argument is a Number: bound and folded by `check`.
            args = [
                _constant(arg, param) if param in (WINDOW, NUMBER) else value(arg)
                for param, arg in zip(function.params, node.args, strict=False)
            ]
            found = _past_the_warm_up(function, candles, args)
        else:
            assert isinstance(node, Operation)
            found = _operate(node.op, [value(operand) for operand in node.operands])
        # The indicators repeat across a sweep's combinations; conditions and arithmetic are
        # each combination's own, and kept would only grow the memo.
        if isinstance(node, Call) and FUNCTIONS[node.name].returns is Type.SERIES:
            memo[node] = found
        return found

    return [np.array(value(tree.tree), dtype=np.bool_) for tree in trees]  # copies: memo stays


def _past_the_warm_up(function: Function, candles: Candles, args: list[Any]) -> Any:
    """Compute `function` of its arguments, from where its series argument starts.

    An indicator of an indicator (an average of RSI) is then not undefined for good because
    of its argument's warm-up: the recursive averages carry a NaN forward.
    """
    if function.params[:1] != (SERIES,) or SERIES in function.params[1:]:
        return function.compute(candles, *args)
    series = np.asarray(args[0], dtype=np.float64)
    defined = np.flatnonzero(~np.isnan(series))
    start = int(defined[0]) if defined.size else series.size
    if start == 0:
        return function.compute(candles, *args)
    out = np.full(series.size, np.nan)
    if start < series.size:
        later = candles.select(np.arange(start, series.size))
        out[start:] = function.compute(later, series[start:], *args[1:])
    return out


def _constant(node: Node, param: str) -> float | int:
    assert isinstance(node, Number)
    return int(node.value) if param == WINDOW else node.value


def _operate(op: str, operands: list[Any]) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):
        if op == "not":
            return ~operands[0]
        if op == "-" and len(operands) == 1:
            return -operands[0]
        first, second = operands
        if op == "and":
            return first & second
        if op == "or":
            return first | second
        if op == "/":
            return np.where(second != 0, first / np.where(second != 0, second, 1.0), np.nan)
        if op == "!=":  # as every comparison: false where a side is undefined
            return np.not_equal(first, second) & ~np.isnan(first) & ~np.isnan(second)
        return _BINARY[op](first, second)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
}


@dataclass(frozen=True, slots=True)
class ExpressionSignals:
    """A strategy's entry and exit conditions, checked: the signals of an `expression`."""

    entry: Checked
    exit: Checked

    @property
    def lookback(self) -> int:
        """Bars before either condition can first be true."""
        return max(self.entry.lookback, self.exit.lookback)

    def signals(
        self, candles: Candles, memo: dict[Node, Any] | None = None
    ) -> tuple[BoolArray, BoolArray]:
        """Return the entries and exits on every bar, as `coinql.domain.signals.signals`.

        Neither fires before its own lookback (where `not` of an undefined comparison
        would be true).
        """
        enter, leave = evaluate([self.entry, self.exit], candles, memo)
        enter[: self.entry.lookback] = False
        leave[: self.exit.lookback] = False
        return enter, leave


def compile_signals(
    entry: str, exit_: str, values: Mapping[int, float], field_name: str = "expression"
) -> ExpressionSignals:
    """Parse and check a strategy's entry and exit expressions.

    Parameters
    ----------
    entry, exit_ : str
        The conditions to enter and to exit a long position on.
    values : mapping of int to float
        The parameters' values by number.
    field_name : str, default "expression"
        The input object they came from: errors name ``<field_name>.entry`` or ``.exit``.

    Returns
    -------
    ExpressionSignals

    Raises
    ------
    ExpressionError
        For the first expression that does not parse or check.
    """
    checked = []
    for name, text in (("entry", entry), ("exit", exit_)):
        where = f"{field_name}.{name}"
        checked.append(check(_parsed(text, where), values, where, want=Type.CONDITION))
    return ExpressionSignals(*checked)


@lru_cache(maxsize=256)
def _parsed(text: str, field_name: str) -> Node:
    """`parse`, once per text: a sweep binds the same two expressions to each combination."""
    return parse(text, field_name)


_PARAMETER = re.compile(r"p([1-9][0-9]?)")


def signals_from_params(
    params: Mapping[str, Any], field_name: str = "kind.expression"
) -> ExpressionSignals:
    """Compile an `expression` strategy from its saved parameters.

    Parameters
    ----------
    params : mapping
        ``entry`` and ``exit`` (the expressions' text) and ``p1``, ``p2``, ... (the values
        of ``$1``, ``$2``, ...; up to ``p99``).
    field_name : str, default "kind.expression"
        The input object they came from, named by errors.

    Returns
    -------
    ExpressionSignals

    Raises
    ------
    InvalidInput
        When an expression is missing, or a parameter is not a finite number ("<field>.pK");
    ExpressionError
        When an expression does not parse or check.
    """
    texts = []
    for name in ("entry", "exit"):
        text = params.get(name)
        if not isinstance(text, str):
            raise InvalidInput(f"{field_name}.{name}", f"give the {name} expression as text")
        texts.append(text)
    values: dict[int, float] = {}
    for name, value in params.items():
        found = _PARAMETER.fullmatch(name)
        if name in ("entry", "exit"):
            continue
        if found is None:
            raise InvalidInput(f"{field_name}.{name}", f"{name} is not p1 to p99")
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise InvalidInput(f"{field_name}.{name}", f"{name} must be a finite number")
        values[int(found.group(1))] = float(value)
    return compile_signals(texts[0], texts[1], values, field_name)
