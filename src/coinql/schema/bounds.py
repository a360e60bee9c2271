"""Every number a client sends has declared bounds, checked before anything runs.

An input field declares its bounds with `bounded(...)`, an argument with
`Annotated[int, bounded_argument(...)]`; the bounds are kept in the field's metadata and
written into its description, so the schema shows them. `CheckedSchema` gives every field that
takes arguments a `CheckBounds` extension, which walks the converted arguments (lists, nested
and @oneOf inputs) before the resolver, after the permission check, and refuses the first
number outside its bounds with an `InvalidInput` naming its path: `transactions[1].quantity`,
`specs[0].window`. As elsewhere, the `input` argument is not part of the path and a @oneOf
input's chosen member is not either (`kind.fast`). A mutation whose result lists
`InvalidInput` answers it as data; elsewhere it reaches `errors`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.arguments import StrawberryArgument, StrawberryArgumentAnnotation
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    get_object_definition,
)
from strawberry.types.field import StrawberryField

from coinql.domain.bounds import Bounds
from coinql.domain.errors import InvalidInput

BOUNDS = "coinql.bounds"
NUMBER_TYPES = (int, float, Decimal)
TRANSPARENT_ARGUMENTS = {"input"}


def bounded(
    bounds: Bounds, *, default: Any = dataclasses.MISSING, description: str | None = None
) -> Any:
    """An input field of a number (or a list of them) that must lie within `bounds`."""
    return strawberry.field(
        default=default, description=described(description, bounds), metadata={BOUNDS: bounds}
    )


def bounded_argument(
    bounds: Bounds, *, description: str | None = None
) -> StrawberryArgumentAnnotation:
    """The `Annotated` marker of an argument that must lie within `bounds`."""
    return strawberry.argument(
        description=described(description, bounds), metadata={BOUNDS: bounds}
    )


def described(description: str | None, bounds: Bounds) -> str:
    clause = bounds.describe()
    sentence = clause[0].upper() + clause[1:] + "."
    return f"{description} {sentence}" if description else sentence


def declared_bounds(item: StrawberryField | StrawberryArgument) -> Bounds | None:
    found = item.metadata.get(BOUNDS)
    return found if isinstance(found, Bounds) else None


class CheckBounds(FieldExtension):
    """Refuse a field's arguments outside their declared bounds before it resolves."""

    def __init__(self) -> None:
        self.arguments: list[StrawberryArgument] = []

    def apply(self, field: StrawberryField) -> None:
        self.arguments = list(field.arguments)

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        self.check(info, kwargs)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        self.check(info, kwargs)
        return await next_(source, info, **kwargs)

    def check(self, info: Info[Any, Any], kwargs: dict[str, Any]) -> None:
        name_of = info.schema.config.name_converter.get_graphql_name
        for argument in self.arguments:
            name = name_of(argument)
            _check(
                kwargs.get(argument.python_name),
                argument.type,
                declared_bounds(argument),
                "" if name in TRANSPARENT_ARGUMENTS else name,
                name_of,
            )


def _check(
    value: Any, type_: Any, bounds: Bounds | None, path: str, name_of: Callable[[Any], str]
) -> None:
    if value is None or value is strawberry.UNSET:
        return
    if isinstance(type_, StrawberryOptional):
        _check(value, type_.of_type, bounds, path, name_of)
    elif isinstance(type_, StrawberryList):
        for index, item in enumerate(value):
            _check(item, type_.of_type, bounds, f"{path}[{index}]", name_of)
    elif (definition := get_object_definition(type_)) is not None and definition.is_input:
        _check_input(value, definition, path, name_of)
    elif isinstance(value, NUMBER_TYPES) and not isinstance(value, bool):
        problem = _problem(value, bounds)
        if problem is not None:
            raise InvalidInput(path, f"{path} {problem}, not {_shown(value)}")


def _check_input(
    value: Any, definition: StrawberryObjectDefinition, path: str, name_of: Callable[[Any], str]
) -> None:
    for field in definition.fields:
        inner = path if definition.is_one_of else _join(path, name_of(field))
        item = getattr(value, field.python_name, None)
        _check(item, field.type, declared_bounds(field), inner, name_of)


def _problem(value: int | float | Decimal, bounds: Bounds | None) -> str | None:
    if bounds is not None:
        return bounds.problem(value)
    # Undeclared bounds are a schema bug (tests/schema/test_bounds.py finds them); even then
    # no NaN or infinity gets through.
    finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
    return None if finite else "must be a finite number"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _shown(value: int | float | Decimal) -> str:
    text = str(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


class CheckedSchema(strawberry.Schema):
    """A schema whose fields check their arguments' declared bounds (see `CheckBounds`)."""

    def get_fields(self, type_definition: StrawberryObjectDefinition) -> list[StrawberryField]:
        fields = super().get_fields(type_definition)
        if type_definition.is_input:
            return fields
        for field in fields:
            if field.is_subscription or not field.arguments:
                continue
            if not any(isinstance(extension, CheckBounds) for extension in field.extensions):
                # First in the list runs last: after the permission check, before the resolver.
                field.extensions.insert(0, CheckBounds())
        return fields


# Bounds that several areas' inputs share.
PAGE_SIZE = Bounds(1, 500)
WEIGHT = Bounds(0, 1)
SIGNED_WEIGHT = Bounds(-1, 1)
ANNUAL_RATE = Bounds(-1, 10, low_open=True, high_open=True)  # a fraction: 0.04 is 4 %
PERIODS_PER_YEAR = Bounds(0, 525_600, low_open=True)  # up to one period a minute
EWMA_DECAY = Bounds(0, 1, low_open=True, high_open=True)
CONFIDENCE = Bounds(0.5, 1, high_open=True)

# The arguments that several fields take, with their bounds.
PageSizeArgument = Annotated[int, bounded_argument(PAGE_SIZE)]
RiskFreeRateArgument = Annotated[float, bounded_argument(ANNUAL_RATE, description="Annual.")]
PeriodsPerYearArgument = Annotated[
    float | None,
    bounded_argument(PERIODS_PER_YEAR, description="Defaults to the interval's periods."),
]
