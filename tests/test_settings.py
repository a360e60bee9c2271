from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from coinql.settings import LogFormat, Settings
from coinql.store.secrets import SecretBox, generate_key


def test_development_secret_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(secret_key_file=tmp_path / "secret")
    key = settings.resolved_secret_key()
    assert len(key) >= 32
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert Settings(secret_key_file=tmp_path / "secret").resolved_secret_key() == key


def test_development_encryption_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "encryption-key"
    [key] = Settings(encryption_key_file=path).resolved_encryption_keys()
    SecretBox([key])  # a Fernet key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(encryption_key_file=path).resolved_encryption_keys() == [key]


def test_production_requires_an_encryption_key() -> None:
    with pytest.raises(ValidationError, match="COINQL_ENCRYPTION_KEY is required"):
        Settings(env="production", secret_key=secrets.token_urlsafe(32), encryption_key=None)


def test_production_requires_a_secret_key() -> None:
    with pytest.raises(ValidationError, match="COINQL_SECRET_KEY is required"):
        Settings(env="production", secret_key=None)


@pytest.mark.parametrize("env", ["development", "production"])
@pytest.mark.parametrize(
    ("key", "problem"),
    [("short", "at least 32 characters, not 5"), ("k" * 40, "1 distinct"), ("ab" * 20, "2 dis")],
)
def test_a_weak_secret_key_is_refused_in_every_mode(env: str, key: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=f"COINQL_SECRET_KEY is weak: .*{problem}"):
        Settings(env=env, secret_key=key)
    Settings(env=env, secret_key=secrets.token_urlsafe(32), encryption_key=generate_key())


def test_environment_is_read_when_settings_are_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINQL_DATABASE_URL", "postgresql+asyncpg://db/x")
    monkeypatch.setenv("COINQL_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("COINQL_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("COINQL_ENV", "production")
    monkeypatch.setenv("COINQL_SECRET_KEY", secrets.token_urlsafe(32))
    monkeypatch.setenv("COINQL_ENCRYPTION_KEY", f" {generate_key()}, {generate_key()} ")
    settings = Settings()
    assert len(settings.resolved_encryption_keys()) == 2
    assert settings.database_kind == "postgresql"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.effective_log_format is LogFormat.JSON
    assert settings.graphiql_enabled is False


def test_defaults_are_the_embedded_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "ENV", "SOURCE"):
        monkeypatch.delenv(f"COINQL_{name}", raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./coinql.db"
    assert settings.redis_url is None
    assert settings.source == "demo"
    assert settings.effective_log_format is LogFormat.CONSOLE
    assert settings.graphiql_enabled is True
