"""The syntax of strategy expressions (`coinql.domain.expressions`).

Tokens, the tree's nodes, and a recursive-descent parser whose errors point at the column of
their cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import get_close_matches

from coinql.domain.errors import InvalidInput
from coinql.domain.expression_functions import ALIASES, FUNCTIONS

MAX_LENGTH = 2_000  # characters in one expression
MAX_DEPTH = 40  # nesting of one expression
PRICES = ("open", "high", "low", "close", "volume")


class ExpressionError(InvalidInput):
    """An expression that does not parse or check; `column` (1-based) points at the cause."""

    def __init__(self, field_name: str, column: int, message: str) -> None:
        super().__init__(field_name, f"{field_name}, column {column}: {message}")
        self.column = column


@dataclass(frozen=True, slots=True)
class Node:
    """A node of the tree: `column` (1-based) is where it starts, not part of its identity."""

    column: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class Number(Node):
    """A constant."""

    value: float


@dataclass(frozen=True, slots=True)
class Parameter(Node):
    """`$index`: a numbered parameter, bound before evaluation."""

    index: int


@dataclass(frozen=True, slots=True)
class Price(Node):
    """A column of the candles: open, high, low, close or volume."""

    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function of `FUNCTIONS` applied to its arguments."""

    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Operation(Node):
    """An operator: `not` and unary `-` have one operand, the others two."""

    op: str
    operands: tuple[Node, ...]


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<param>\$\d+)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/<>(),]))"
)
_COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, param, name, op, end
    text: str
    column: int


def _tokens(text: str, field_name: str) -> list[_Token]:
    found, at = [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            found.append(_Token("end", "", at + 1))
            return found
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            raise ExpressionError(field_name, at + 1, f"unexpected {text[at]!r}")
        start = match.start(match.lastgroup)
        found.append(_Token(match.lastgroup, match.group(match.lastgroup), start + 1))
        at = match.end()


class _Parser:
    """Recursive descent over the tokens, one method per rule of the grammar."""

    def __init__(self, text: str, field_name: str) -> None:
        self.field = field_name
        self.tokens = _tokens(text, field_name)
        self.at = 0
        self.depth = 0

    def fail(self, column: int, message: str) -> ExpressionError:
        return ExpressionError(self.field, column, message)

    @property
    def next(self) -> _Token:
        return self.tokens[self.at]

    def take(self, *texts: str) -> _Token | None:
        token = self.next
        if token.kind in ("op", "name") and token.text in texts:
            self.at += 1
            return token
        return None

    def expect(self, text: str) -> None:
        if self.take(text) is None:
            raise self.fail(self.next.column, f"expected {text!r}, found {_found(self.next)}")

    def parse(self) -> Node:
        tree = self.expr()
        if self.next.kind != "end":
            raise self.fail(self.next.column, f"unexpected {self.next.text!r}")
        return tree

    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(self.next.column, f"nested more than {MAX_DEPTH} deep")
        tree = self.binary(self.conjunction, ("or",))
        self.depth -= 1
        return tree

    def conjunction(self) -> Node:
        return self.binary(self.negation, ("and",))

    def negation(self) -> Node:
        return self.prefixed("not", self.comparison)

    def comparison(self) -> Node:
        left = self.sum()
        token = self.take(*_COMPARISONS)
        if token is None:
            return left
        return Operation(left.column, token.text, (left, self.sum()))

    def sum(self) -> Node:
        return self.binary(self.product, ("+", "-"))

    def product(self) -> Node:
        return self.binary(self.unary, ("*", "/"))

    def binary(self, operand: Callable[[], Node], ops: tuple[str, ...]) -> Node:
        left = operand()
        while (token := self.take(*ops)) is not None:
            left = Operation(left.column, token.text, (left, operand()))
        return left

    def unary(self) -> Node:
        return self.prefixed("-", self.primary)

    def prefixed(self, op: str, operand: Callable[[], Node]) -> Node:
        """`op op ... operand`, read in a loop (a long run of them must not recurse)."""
        columns = []
        while (token := self.take(op)) is not None:
            columns.append(token.column)
        tree = operand()
        for column in reversed(columns):
            tree = Operation(column, op, (tree,))
        return tree

    def primary(self) -> Node:
        token = self.next
        self.at += 1
        if token.kind == "number":
            return Number(token.column, float(token.text))
        if token.kind == "param":
            index = int(token.text[1:])
            if index < 1:
                raise self.fail(token.column, "parameters are numbered from $1")
            return Parameter(token.column, index)
        if token.kind == "op" and token.text == "(":
            inner = self.expr()
            self.expect(")")
            return inner
        if token.kind == "name":
            return self.named(token)
        raise self.fail(token.column, f"expected a value, found {_found(token)}")

    def named(self, token: _Token) -> Node:
        if token.text in ("and", "or", "not"):
            raise self.fail(token.column, f"expected a value before {token.text!r}")
        if self.take("(") is None:
            if token.text in PRICES:
                return Price(token.column, token.text)
            hint = " (a function needs its arguments)" if token.text in FUNCTIONS else ""
            raise self.fail(token.column, f"unknown name {token.text!r}{hint}; {_prices()}")
        if token.text not in FUNCTIONS:
            raise self.fail(token.column, _unknown_function(token.text))
        args: list[Node] = []
        if self.take(")") is None:
            args.append(self.expr())
            while self.take(",") is not None:
                args.append(self.expr())
            if self.take(")") is None:
                found = _found(self.next)
                raise self.fail(self.next.column, f"expected ',' or ')', found {found}")
        return Call(token.column, token.text, tuple(args))


def _found(token: _Token) -> str:
    return repr(token.text) if token.kind != "end" else "the end"


def _prices() -> str:
    return "the prices are " + ", ".join(PRICES)


def _unknown_function(name: str) -> str:
    if name in ALIASES:
        return f"{name} is {ALIASES[name]}"
    close = get_close_matches(name, list(FUNCTIONS), n=1)
    listed = ", ".join(FUNCTIONS)
    hint = f"; did you mean {close[0]}?" if close else f"; the functions are {listed}"
    return f"unknown function {name!r}{hint}"


def parse(text: str, field_name: str = "expression") -> Node:
    """Parse an expression into its tree, unchecked and with its parameters unbound.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"crossover(ema(close, 12), ema(close, 26))"``.
    field_name : str, default "expression"
        The input field it came from, named by errors.

    Returns
    -------
    Node
        The root of its tree.

    Raises
    ------
    ExpressionError
        Where the text is not an expression (the column of the cause).
    """
    if not text.strip():
        raise ExpressionError(field_name, 1, "the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(field_name, MAX_LENGTH + 1, f"longer than {MAX_LENGTH} characters")
    tree = _Parser(text, field_name).parse()
    deepest = _deepest(tree)
    if deepest is not None:
        raise ExpressionError(field_name, deepest.column, f"nested more than {MAX_DEPTH} deep")
    return tree


def _deepest(tree: Node) -> Node | None:
    """Return the first node nested more than `MAX_DEPTH` deep, or None.

    The tree is walked without recursion: a deep one must not exhaust the stack before it is
    refused.
    """
    stack: list[tuple[Node, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        children = node.args if isinstance(node, Call) else getattr(node, "operands", ())
        stack.extend((child, depth + 1) for child in children)
    return None


def parameters(tree: Node) -> set[int]:
    """Return the numbers of the parameters (`$k`) a tree uses.

    Parameters
    ----------
    tree : Node

    Returns
    -------
    set of int
    """
    if isinstance(tree, Parameter):
        return {tree.index}
    children = tree.args if isinstance(tree, Call) else getattr(tree, "operands", ())
    return set().union(*(parameters(child) for child in children))
