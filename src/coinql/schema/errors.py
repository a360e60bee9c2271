"""Error types of mutation result unions, and the handlers that turn domain errors into them.

A resolver raises a `coinql.domain.errors.UserError`; where the field's result union lists the
matching GraphQL type, strawberry's exception handlers return it as data. Elsewhere (a query,
or a union that does not list it) the error reaches `errors` with its message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import strawberry
from strawberry.types import Info
from strawberry.types.field import StrawberryField

from coinql.domain import csv_lines, errors


@contextmanager
def naming(argument: str) -> Iterator[None]:
    """In a query, a thing that an argument names but that does not exist (or is not yours) is
    a bad argument: `NotFound` becomes `InvalidInput` naming `argument`, so that clients, and
    tools reading `extensions.classification`, see the caller's mistake and where it is."""
    try:
        yield
    except errors.NotFound as error:
        raise errors.InvalidInput(argument, error.message) from None


@strawberry.interface(description="Every expected failure implements Error.")
class Error:
    message: str

    @classmethod
    def from_exception(cls, error: Any) -> Self:
        """The GraphQL error of a domain error (a `UserError`); the types that say more than
        its message say how."""
        return cls(message=error.message)


@strawberry.type(description="An argument is malformed or out of range.")
class InvalidInput(Error):
    field: str = strawberry.field(description="The argument at fault, e.g. `email`.")

    @classmethod
    def from_exception(cls, error: errors.InvalidInput) -> Self:
        return cls(message=error.message, field=error.field)


@strawberry.type(description="The password does not meet the policy.")
class WeakPassword(Error):
    field: str
    min_length: int

    @classmethod
    def from_exception(cls, error: errors.WeakPassword) -> Self:
        return cls(message=error.message, field=error.field, min_length=error.min_length)


@strawberry.type(description="An account already uses this email.")
class EmailTaken(Error):
    pass


@strawberry.type(description="Email or password is incorrect (deliberately not saying which).")
class InvalidCredentials(Error):
    pass


@strawberry.type(description="Too many attempts; try again after `retryAfterSeconds`.")
class RateLimited(Error):
    retry_after_seconds: int

    @classmethod
    def from_exception(cls, error: errors.RateLimited) -> Self:
        return cls(message=error.message, retry_after_seconds=error.retry_after)


@strawberry.type(description="A token is malformed, forged, expired, revoked or already used.")
class InvalidToken(Error):
    pass


@strawberry.type(description="The operation needs a signed-in user.")
class NotAuthenticated(Error):
    pass


@strawberry.type(description="Signed in, but not allowed to do this.")
class Forbidden(Error):
    pass


@strawberry.type(description="Something else is changing the same thing; send it again later.")
class Conflict(Error):
    pass


@strawberry.type(description="Not found, or not yours: the two are indistinguishable on purpose.")
class NotFound(Error):
    pass


@strawberry.type
class LineProblem:
    line: int = strawberry.field(description="Line in the file; the header is line 1.")
    message: str


@strawberry.type(description="The file has problems; nothing was written.")
class ImportRejected(Error):
    problems: list[LineProblem]
    total_problems: int

    @classmethod
    def from_exception(cls, error: csv_lines.ImportRejected) -> Self:
        return cls(
            message=error.message,
            problems=[LineProblem(line=p.line, message=p.message) for p in error.problems],
            total_problems=error.total,
        )


# In a context's cache: the error types the operation's fields answered with.
REFUSED = "refused"


class UserErrorHandler(strawberry.ExceptionHandler):  # type: ignore[type-arg]
    """Convert one domain error class into its GraphQL error type."""

    def __init__(self, exception_type: type[errors.UserError], error_type: Any) -> None:
        self.exception_type = exception_type
        self.error_type = error_type

    def handle(self, exception: Any, *, field: StrawberryField, info: Info) -> Any:
        # An answer, not a success: the operation is logged and counted as "refused".
        info.context.cache.setdefault(REFUSED, []).append(self.error_type.__name__)
        return self.error_type.from_exception(exception)


# Most specific first: the first handler whose exception type matches wins.
ERROR_TYPES: list[tuple[type[errors.UserError], Any]] = [
    (csv_lines.ImportRejected, ImportRejected),
    (errors.WeakPassword, WeakPassword),
    (errors.InvalidInput, InvalidInput),
    (errors.EmailTaken, EmailTaken),
    (errors.InvalidCredentials, InvalidCredentials),
    (errors.RateLimited, RateLimited),
    (errors.InvalidToken, InvalidToken),
    (errors.NotAuthenticated, NotAuthenticated),
    (errors.Forbidden, Forbidden),
    (errors.NotFound, NotFound),
    (errors.Conflict, Conflict),
]


def exception_handlers(
    *areas: Sequence[tuple[type[errors.UserError], Any]],
) -> list[UserErrorHandler]:
    """Handlers for the common error types and each area's own, area types first."""
    pairs = [pair for area in areas for pair in area] + ERROR_TYPES
    return [UserErrorHandler(exception, error_type) for exception, error_type in pairs]
