"""Secrets at rest: encrypted, authenticated, rotatable, never echoed."""

from __future__ import annotations

import pytest

from coinql.store.secrets import (
    BadEncryptionKey,
    SecretBox,
    UndecryptableSecret,
    generate_key,
    mask,
)

SECRET = "sk-0123456789abcdefghijklmnopqrstuv"


def test_a_secret_round_trips_and_its_token_does_not_contain_it() -> None:
    box = SecretBox([generate_key()])
    token = box.encrypt(SECRET)
    assert SECRET not in token and "0123456789" not in token
    assert box.decrypt(token) == SECRET
    assert box.encrypt(SECRET) != token  # a fresh IV each time


def test_rotation_moves_tokens_to_the_newest_key() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt(SECRET)
    both = SecretBox([new, old])
    assert both.decrypt(token) == SECRET and not both.is_current(token)
    rotated = both.rotate(token)
    assert both.is_current(rotated)
    assert SecretBox([new]).decrypt(rotated) == SECRET
    with pytest.raises(UndecryptableSecret):
        SecretBox([old]).decrypt(rotated)


def test_an_altered_or_foreign_token_is_refused_without_echoing_it() -> None:
    box = SecretBox([generate_key()])
    token = box.encrypt(SECRET)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for bad in (altered, SecretBox([generate_key()]).encrypt(SECRET), "not a token"):
        with pytest.raises(UndecryptableSecret) as raised:
            box.decrypt(bad)
        assert SECRET not in str(raised.value) and bad not in str(raised.value)
    with pytest.raises(UndecryptableSecret):
        box.rotate(altered)


@pytest.mark.parametrize("keys", [[], ["short"], ["é" * 44]])
def test_bad_keys_are_refused_with_their_position(keys: list[str]) -> None:
    with pytest.raises(BadEncryptionKey) as raised:
        SecretBox(keys)
    for key in keys:
        assert key not in str(raised.value)


def test_mask_shows_the_last_four_characters_only() -> None:
    assert mask("pk-live-0123456789abcdef") == "cdef"
    assert mask("abcd") == ""
