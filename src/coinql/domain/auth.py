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
    """Trim and lower-case an email, or raise `InvalidInput` naming the `email` field."""
    normalized = email.strip().lower()
    if len(normalized) > EMAIL_MAX_LENGTH or not _EMAIL.match(normalized):
        raise InvalidInput("email", "email is not a valid address")
    return normalized


def check_password_policy(password: str) -> None:
    """Raise `WeakPassword` unless the password has 10 to 1024 characters, not all blank."""
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
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


# A fixed hash to verify against when the email is unknown, so that a failed login takes the
# same time whether or not the account exists.
DUMMY_PASSWORD_HASH = _hasher.hash("not a real password, only spends the same time")


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid access token says: who, for which session (refresh family), until when."""

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
    """Verify signature, type and expiry; raise `InvalidToken` on any defect."""
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
    """An opaque, URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def refresh_token_digest(token: str) -> str:
    """The stored form of a refresh token: its SHA-256, hex encoded.

    A plain digest is enough (no salt or slow hash) because the token is random and long.
    """
    return hashlib.sha256(token.encode()).hexdigest()
