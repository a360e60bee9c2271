"""Expected failures: a user's mistake, not a bug.

The schema layer maps each of these to a GraphQL error type of a mutation's result union, so
clients receive them as data. Anything else that escapes a resolver is a bug and is masked.
"""

from __future__ import annotations

from enum import StrEnum


class UserError(Exception):
    """Base of every expected failure; `message` is shown to the client as is."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(UserError):
    """An argument is malformed or out of range; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class WeakPassword(InvalidInput):
    """The password does not meet the policy."""

    def __init__(self, message: str, *, min_length: int) -> None:
        super().__init__("password", message)
        self.min_length = min_length


class EmailTaken(UserError):
    """An account already uses this email."""


class InvalidCredentials(UserError):
    """Login failed. Said the same way for an unknown email and a wrong password."""


class RateLimited(UserError):
    """Too many attempts; the caller may try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LiveDataOff(UserError):
    """The server runs no live feed, so a live stream would never send anything.

    The feed is off with COINQL_FEED_ENABLED=false or COINQL_SOURCE=none.
    """


class QuotaExceeded(UserError):
    """The caller has as many jobs queued or running as a user may.

    One must end (or be cancelled) before another is accepted. `max_jobs` and `max_running`
    are the limits, `queued` and `running` the caller's counts.
    """

    def __init__(
        self, message: str, *, max_jobs: int, max_running: int, queued: int, running: int
    ) -> None:
        super().__init__(message)
        self.max_jobs = max_jobs
        self.max_running = max_running
        self.queued = queued
        self.running = running


class Unavailable(UserError):
    """The service cannot do this right now; the same request may succeed later.

    E.g. SQLite locked by another process, or the connection to PostgreSQL lost while it
    restarts. `retryable`: a read that failed this way may be run again at once.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class InvalidToken(UserError):
    """A token is malformed, forged, expired, revoked or already used."""


class NotAuthenticated(UserError):
    """The operation needs a signed-in user."""


class Forbidden(UserError):
    """The caller is signed in but may not do this (e.g. only admins change market data)."""


class Conflict(UserError):
    """Something else is changing the same thing right now; the request may be sent again."""


class NotFound(UserError):
    """The thing does not exist, or belongs to someone else (the two look alike on purpose)."""


class AccountFailure(StrEnum):
    """Why an exchange call failed, from ccxt's exception classes (`coinql.exchanges`)."""

    AUTHENTICATION = "AUTHENTICATION"  # AuthenticationError: the key or secret is wrong
    PERMISSION = "PERMISSION"  # PermissionDenied: the key may not do this
    UNAVAILABLE = "UNAVAILABLE"  # ExchangeNotAvailable: down or in maintenance
    RATE_LIMITED = "RATE_LIMITED"  # RateLimitExceeded (DDoSProtection)
    NETWORK = "NETWORK"  # NetworkError: timeouts and the rest of the network
    NO_SANDBOX = "NO_SANDBOX"  # NotSupported from set_sandbox_mode
    EXCHANGE = "EXCHANGE"  # any other ExchangeError


class ExchangeAccountError(UserError):
    """An exchange refused or failed a call; `exchange` and `failure` say which and why."""

    def __init__(self, exchange: str, failure: AccountFailure, message: str) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.failure = failure

    @property
    def retryable(self) -> bool:
        """Tell whether trying again later may succeed (the network, not the credentials)."""
        return self.failure in {
            AccountFailure.UNAVAILABLE,
            AccountFailure.RATE_LIMITED,
            AccountFailure.NETWORK,
        }
