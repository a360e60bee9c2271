from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from coinql.domain import auth
from coinql.domain.errors import InvalidInput, InvalidToken, WeakPassword

KEY = "a-test-signing-key-that-is-long-enough-for-hs256"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_password_hash_is_argon2id_and_verifies() -> None:
    hashed = auth.hash_password("correct horse battery staple")
    assert hashed.startswith("$argon2id$")
    assert auth.verify_password(hashed, "correct horse battery staple")
    assert not auth.verify_password(hashed, "Correct horse battery staple")
    assert not auth.verify_password("not a hash", "anything")


@pytest.mark.parametrize("password", ["", "123456789", "          ", "\t" * 12])
def test_password_policy_rejects_short_or_blank(password: str) -> None:
    with pytest.raises(WeakPassword) as raised:
        auth.check_password_policy(password)
    assert raised.value.field == "password"
    assert raised.value.min_length == 10


def test_password_policy_accepts_ten_characters() -> None:
    auth.check_password_policy("0123456789")


@pytest.mark.parametrize("email", ["", "a", "a@b", "a b@c.d", "@c.d", "x" * 250 + "@c.de"])
def test_invalid_emails(email: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        auth.normalize_email(email)
    assert raised.value.field == "email"


def test_email_is_trimmed_and_lowercased() -> None:
    assert auth.normalize_email("  Ada@Example.COM ") == "ada@example.com"


def test_access_token_round_trip() -> None:
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    token = auth.issue_access_token(
        KEY, user_id=user_id, session_id=session_id, now=NOW, ttl=timedelta(minutes=15)
    )
    claims = auth.read_access_token(KEY, token, now=NOW + timedelta(minutes=14))
    assert claims.user_id == user_id
    assert claims.session_id == session_id
    assert claims.expires_at == NOW + timedelta(minutes=15)


def test_access_token_expires() -> None:
    token = auth.issue_access_token(
        KEY, user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=NOW, ttl=timedelta(minutes=15)
    )
    with pytest.raises(InvalidToken):
        auth.read_access_token(KEY, token, now=NOW + timedelta(minutes=16))


def test_access_token_signed_with_another_key_is_rejected() -> None:
    token = auth.issue_access_token(
        KEY + "x", user_id=uuid.uuid4(), session_id=uuid.uuid4(), now=NOW, ttl=timedelta(hours=1)
    )
    with pytest.raises(InvalidToken):
        auth.read_access_token(KEY, token, now=NOW)


def test_unsigned_token_is_rejected() -> None:
    import base64
    import json

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"sub": str(uuid.uuid4()), "sid": str(uuid.uuid4()), "typ": "access", "exp": 2**40}
    unsigned = f"{part({'alg': 'none'})}.{part(claims)}."
    with pytest.raises(InvalidToken):
        auth.read_access_token(KEY, unsigned, now=NOW)


def test_refresh_tokens_are_random_and_stored_as_digests() -> None:
    first, second = auth.new_refresh_token(), auth.new_refresh_token()
    assert first != second and len(first) >= 43
    digest = auth.refresh_token_digest(first)
    assert len(digest) == 64 and first not in digest
    assert digest == auth.refresh_token_digest(first)
