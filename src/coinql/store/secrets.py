"""Secrets at rest: exchange API secrets and passphrases, encrypted with Fernet.

`SecretBox` holds the encryption keys, newest first (`COINQL_ENCRYPTION_KEY`, comma-separated):
it encrypts with the newest and decrypts with any, so a new key can be put in front and the
stored secrets re-encrypted under it (`coinql rotate-encryption-key`) before the old one is
dropped. Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) authenticates what it
decrypts: a token altered or encrypted under an unknown key raises `UndecryptableSecret`
rather than returning garbage. Nothing here logs, and no error message carries a secret.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UndecryptableSecret(Exception):
    """A stored secret is not a token of any configured key (or was altered)."""


class BadEncryptionKey(ValueError):
    """A configured key is not a Fernet key (32 url-safe base64-encoded bytes)."""


def generate_key() -> str:
    """Return a new random Fernet key."""
    return Fernet.generate_key().decode("ascii")


def mask(secret: str) -> str:
    """Return the last 4 characters of a key, all a client is ever shown of it."""
    return secret[-4:] if len(secret) > 4 else ""


class SecretBox:
    """Encrypts with the first key, decrypts with any of them.

    Parameters
    ----------
    keys : sequence of str
        Fernet keys, newest first; at least one.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise BadEncryptionKey("at least one encryption key is required")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                raise BadEncryptionKey(
                    f"encryption key {position} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes, as Fernet.generate_key() makes)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]

    def encrypt(self, plaintext: str) -> str:
        """Return `plaintext` encrypted under the newest key."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Return the plaintext of a token made under any configured key."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None

    def rotate(self, token: str) -> str:
        """Return the token re-encrypted under the newest key (unchanged secret)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise UndecryptableSecret(
                "a stored secret cannot be decrypted with the configured keys"
            ) from None

    def is_current(self, token: str) -> bool:
        """Tell whether a token is already under the newest key."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True
