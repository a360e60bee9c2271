"""The image's build context: `docker build .` sends only what the image is built from."""

from __future__ import annotations

from fnmatch import fnmatch

import pytest

from tests.conftest import ROOT


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out, for the plain patterns .dockerignore uses (a name,
    a folder with a trailing slash, `*` and `**/` wildcards; no `!` exceptions)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        for prefix in prefixes:
            if fnmatch(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch(prefix.rsplit("/", 1)[-1], pattern[3:])
            ):
                return True
    return False


PATTERNS = [
    line.strip()
    for line in (ROOT / ".dockerignore").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


@pytest.mark.parametrize(
    "path",
    [
        ".venv/lib/python3.11/site-packages/numpy/__init__.py",
        "coinql.db",
        "coinql.db-wal",
        ".coinql-secret",
        ".git/HEAD",
        "src/coinql/__pycache__/app.cpython-311.pyc",
        "web/node_modules/react/index.js",
    ],
)
def test_local_state_and_secrets_stay_out_of_the_build_context(path: str) -> None:
    assert _ignored(path, PATTERNS)


@pytest.mark.parametrize("path", ["pyproject.toml", "README.md", "src/coinql/app.py"])
def test_what_the_image_is_built_from_is_sent(path: str) -> None:
    assert not any(line.startswith("!") for line in PATTERNS)
    assert not _ignored(path, PATTERNS)
