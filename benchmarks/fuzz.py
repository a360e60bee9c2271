"""[7/7] schemathesis against the GraphQL endpoint of `coinql serve` in another process.

Two passes, each with schemathesis's `not_a_server_error` check and response validation: one
anonymous over the operations anyone may call, one signed in over every query and mutation.
Exits non-zero on any failure or if fewer than `--min-requests` requests were generated.

    python -m benchmarks.fuzz --examples 60 --min-requests 2000   # `make fuzz`
    python -m benchmarks.fuzz --examples 5 --min-requests 200     # the CI budget
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.common import start_server
from coinql.migrations import upgrade
from coinql.schema import build_schema
from coinql.schema.permissions import IsAdmin, IsAuthenticated

CHECKS = "not_a_server_error,response_schema_conformance"
SIGN_UP = (
    "mutation($email: String!, $password: String!) { register(email: $email, password:"
    " $password) { __typename ... on AuthPayload { accessToken } } }"
)


@dataclass(frozen=True)
class Pass:
    name: str
    generated: int
    failures: int
    errors: int
    exit_code: int


def public_operations() -> list[str]:
    """`Query.x` and `Mutation.y` labels of the root fields callable without signing in."""
    schema = build_schema()
    labels = []
    for root in ("Query", "Mutation"):
        definition = schema.get_type_by_name(root)
        assert definition is not None
        for field in definition.fields:  # type: ignore[union-attr]
            if not set(field.permission_classes or ()) & {IsAuthenticated, IsAdmin}:
                labels.append(f"{root}.{schema.config.name_converter.get_graphql_name(field)}")
    return labels


def run_pass(name: str, url: str, examples: int, report_dir: Path, extra: list[str]) -> Pass:
    report = report_dir / f"{name}.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/graphql",
        "--checks",
        CHECKS,
        "--max-examples",
        str(examples),
        "--seed",
        os.environ.get("COINQL_FUZZ_SEED", "20261121"),
        "--report",
        "json",
        "--report-json-path",
        str(report),
        "--no-color",
        *extra,
    ]
    environment = {**os.environ, "SCHEMATHESIS_HOOKS": "benchmarks.fuzz_hooks"}
    completed = subprocess.run(command, env=environment, check=False)
    found = json.loads(report.read_text())
    return Pass(
        name=name,
        generated=found["test_cases"]["generated"],
        failures=found["test_cases"]["with_failures"],
        errors=found["operations"]["errored"] + found["test_cases"]["errored"],
        exit_code=completed.returncode,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60, help="test cases per operation")
    parser.add_argument("--min-requests", type=int, default=2000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite+aiosqlite:///{Path(directory) / 'fuzz.db'}"
        upgrade(database_url)
        process, url = start_server(database_url)
        try:
            credentials = {"email": "fuzz@example.com", "password": "fuzzing-password-1"}
            signed_up = httpx.post(
                f"{url}/graphql", json={"query": SIGN_UP, "variables": credentials}, timeout=30
            ).json()
            token = signed_up["data"]["register"]["accessToken"]
            anonymous = [
                argument for label in public_operations() for argument in ("--include-name", label)
            ]
            passes = [
                run_pass("anonymous", url, arguments.examples, Path(directory), anonymous),
                run_pass(
                    "signed-in",
                    url,
                    arguments.examples,
                    Path(directory),
                    ["--header", f"Authorization: Bearer {token}"],
                ),
            ]
        finally:
            process.terminate()
            process.wait(timeout=20)
    total = sum(found.generated for found in passes)
    for found in passes:
        print(
            f"{found.name}: {found.generated} requests, {found.failures} failures,"
            f" {found.errors} errors"
        )
    print(f"total: {total} requests (at least {arguments.min_requests} required)")
    clean = all(found.exit_code == 0 and not found.failures + found.errors for found in passes)
    return 0 if clean and total >= arguments.min_requests else 1


if __name__ == "__main__":
    sys.exit(main())
