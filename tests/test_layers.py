"""Dependencies point one way: schema -> resolvers -> domain / store / realtime."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "coinql"
LAYERS = ("schema", "resolvers", "domain", "store", "realtime", "migrations", "exchanges")
# What each layer may import from coinql, besides itself.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "store": {"domain"},
    "realtime": {"domain", "store", "settings", "observability", "exchanges"},
    "resolvers": {"domain", "store", "realtime", "settings", "observability", "exchanges"},
    "schema": {"resolvers", "domain", "store", "observability", "settings"},
    "migrations": {"store", "settings"},
    "exchanges": {"domain", "settings", "observability"},
}
# domain/ does no I/O: none of these may appear there.
IO_MODULES = {"sqlalchemy", "sqlmodel", "httpx", "ccxt", "redis", "starlette", "strawberry", "arq"}


def coinql_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_point_one_way(layer: str) -> None:
    violations = []
    for path in (PACKAGE / layer).rglob("*.py"):
        for module in coinql_imports(path):
            parts = module.split(".")
            if parts[0] == "coinql" and len(parts) > 1:
                target = parts[1]
                if target != layer and target not in ALLOWED[layer] and target != "__init__":
                    violations.append(f"{path.relative_to(PACKAGE)} imports {module}")
            elif layer == "domain" and parts[0] in IO_MODULES:
                violations.append(f"{path.relative_to(PACKAGE)} imports {module} (I/O)")
    assert not violations, "\n".join(violations)


def test_schema_maps_and_leaves_numbers_to_domain() -> None:
    """schema/ maps results to types; only scalars.py touches numpy (to serialize arrays)."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in (PACKAGE / "schema").rglob("*.py")
        if path.name != "scalars.py"
        and any(
            module.split(".")[0] in {"numpy", "pandas", "scipy"} for module in coinql_imports(path)
        )
    ]
    assert not offenders, offenders
