"""Passwords, access tokens and refresh tokens: pure functions, no storage.

Passwords are hashed with argon2id. Access tokens are short-lived HS256 JWTs signed with
joserfc; refresh tokens are opaque random strings of which only a SHA-256 digest is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from coinql.domain.errors import InvalidInput, InvalidToken, WeakPassword

PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024
EMAIL_MAX_LENGTH = 254
ACCESS_TOKEN_TYPE = "access"
_ALGORITHM = "HS256"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_hasher = PasswordHasher()  # argon2id with the library's current recommended cost


def normalize_email(email: str) -> str:
    """Trim and lower-case an email address.

    Parameters
    ----------
    email : str
        The address as typed.

    Returns
    -------
    str
        The address trimmed and lower-cased, as accounts are keyed.

    Raises
    ------
    InvalidInput
        Naming the `email` field, when the address is longer than 254 characters or is not
        of the form `local@domain.tld`.
    """
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX_LENGTH or not _EMAIL.match(normalized):
        raise InvalidInput("email", "email is not a valid address")
    return normalized


def check_password_policy(password: str) -> None:
    """Check a new password against the policy.

    Parameters
    ----------
    password : str
        The password chosen.

    Raises
    ------
    WeakPassword
        When it has fewer than 10 characters or only blanks.
    InvalidInput
        Naming the `password` field, when it has more than 1024 characters.
    """
    if len(password) < PASSWORD_MIN_LENGTH or not password.strip():
        raise WeakPassword(
            f"password must be at least {PASSWORD_MIN_LENGTH} characters long",
            min_length=PASSWORD_MIN_LENGTH,
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            "password", f"password must be at most {PASSWORD_MAX_LENGTH} characters long"
        )


def hash_password(password: str) -> str:
    """Hash a password with argon2id at the library's recommended cost.

    Parameters
    ----------
    password : str
        The password in clear.

    Returns
    -------
    str
        The encoded hash (PHC string format: algorithm, cost, salt and digest).
    """
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Check a password against its stored hash.

    Parameters
    ----------
    password_hash : str
        A hash from `hash_password` (or `DUMMY_PASSWORD_HASH`).
    password : str
        The password offered.

    Returns
    -------
    bool
        Whether it matches; False too for a malformed hash, never an exception.
    """
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Tell whether a stored hash was made with other parameters than today's.

    Parameters
    ----------
    password_hash : str
        A hash from `hash_password`.

    Returns
    -------
    bool
        True when the hash should be replaced at the next successful login.
    """
    return _hasher.check_needs_rehash(password_hash)


# A fixed hash to verify against when the email is unknown, so that a failed login takes the
# same time whether or not the account exists.
DUMMY_PASSWORD_HASH = _hasher.hash("not a real password, only spends the same time")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says: who, for which session, until when.

    Parameters
    ----------
    user_id : UUID
        The signed-in user.
    session_id : UUID
        The login session (the refresh token family) the token was issued for.
    expires_at : datetime
        When the token stops being valid, timezone-aware (UTC).
    """

    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime


def issue_access_token(
    secret_key: str,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    now: datetime,
    ttl: timedelta,
) -> str:
    """Sign a short-lived access token (an HS256 JWT).

    Parameters
    ----------
    secret_key : str
        The server's signing key.
    user_id : UUID
        The user the token acts for (`sub`).
    session_id : UUID
        The login session it belongs to (`sid`), so revoking the session revokes it.
    now : datetime
        The issue time (`iat`), timezone-aware.
    ttl : timedelta
        How long it is valid: `exp` is `now + ttl`, in whole seconds.

    Returns
    -------
    str
        The compact JWT, with a random `jti` so two tokens issued in the same second differ.
    """
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "typ": ACCESS_TOKEN_TYPE,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode({"alg": _ALGORITHM}, claims, OctKey.import_key(secret_key))


def read_access_token(secret_key: str, token: str, *, now: datetime) -> AccessClaims:
    """Verify an access token and read its claims.

    Parameters
    ----------
    secret_key : str
        The server's signing key.
    token : str
        The compact JWT the client sent.
    now : datetime
        The time its expiry is checked against, timezone-aware.

    Returns
    -------
    AccessClaims
        The user, session and expiry the token carries.

    Raises
    ------
    InvalidToken
        On any defect: a bad signature or algorithm, another token type, a missing claim,
        an expired token, or bytes that are not a JWT.
    """
    try:
        decoded = jwt.decode(token, OctKey.import_key(secret_key), algorithms=[_ALGORITHM])
        jwt.JWTClaimsRegistry(
            now=int(now.timestamp()),
            exp={"essential": True},
            sub={"essential": True},
            typ={"essential": True, "value": ACCESS_TOKEN_TYPE},
        ).validate(decoded.claims)
        return AccessClaims(
            user_id=uuid.UUID(str(decoded.claims["sub"])),
            session_id=uuid.UUID(str(decoded.claims["sid"])),
            expires_at=datetime.fromtimestamp(int(decoded.claims["exp"]), UTC),
        )
    except (JoseError, KeyError, ValueError, TypeError) as error:
        raise InvalidToken("access token is invalid or expired") from error


def new_refresh_token() -> str:
    """Draw a new refresh token.

    Returns
    -------
    str
        An opaque, URL-safe token with 256 bits of entropy.
    """
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> str:
    """Compute the stored form of a refresh token.

    A plain digest is enough (no salt or slow hash) because the token is random and long.

    Parameters
    ----------
    token : str
        A token from `new_refresh_token`.

    Returns
    -------
    str
        Its SHA-256, hex encoded (64 characters).
    """
    return hashlib.sha256(token.encode()).hexdigest()


API_KEY_PREFIX = "cq"
API_KEY_NEVER_EXPIRES = datetime(9999, 1, 1, tzinfo=UTC)  # a key lives until revoked


class ApiScope(StrEnum):
    """What an API key may do: READ everything and run research, or TRADE (all a session may)."""

    READ = "READ"
    TRADE = "TRADE"


def new_api_key() -> tuple[str, str]:
    """Return a new API key and its public prefix: "cq_<prefix>_<secret>".

    The prefix (8 hex digits) finds the stored key; the 256 random bits after it are what
    authenticates, and only their SHA-256 is stored.
    """
    prefix = secrets.token_hex(4)
    return f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_prefix(key: str) -> str:
    """Return the prefix of a key made by `new_api_key`.

    Raises
    ------
    InvalidToken
        When `key` does not have the shape of one.
    """
    scheme, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != API_KEY_PREFIX or len(prefix) != 8 or len(secret) < 32:
        raise InvalidToken("API key is invalid or revoked")
    return prefix
