"""The one GraphQL client of the tests, and the contract's operations as written."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from graphql import OperationDefinitionNode, parse


@dataclass
class GraphQLResponse:
    status_code: int
    headers: httpx.Headers
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data")
        assert isinstance(data, dict), f"no data in {self.body}"
        return data

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors") or [])

    def ok(self) -> dict[str, Any]:
        """The data, after checking that there were no errors."""
        assert self.status_code == 200, self.body
        assert not self.errors, self.errors
        return self.data


@cache
def contract_operations(contract_dir: Path, area: str) -> dict[str, str]:
    """Each operation of `<area>.graphql`, by name, as the exact text of the file."""
    source = (contract_dir / f"{area}.graphql").read_text()
    document = parse(source)
    operations: dict[str, str] = {}
    for definition in document.definitions:
        assert isinstance(definition, OperationDefinitionNode) and definition.name
        assert definition.loc is not None
        operations[definition.name.value] = source[definition.loc.start : definition.loc.end]
    return operations


@dataclass
class GraphQLClient:
    http: httpx.AsyncClient
    contract_dir: Path
    token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        operation_name: str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> GraphQLResponse:
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if operation_name is not None:
            payload["operationName"] = operation_name
        all_headers = {**self.headers, **(headers or {})}
        bearer = token or self.token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        response = await self.http.post("/graphql", json=payload, headers=all_headers)
        return GraphQLResponse(response.status_code, response.headers, response.json())

    async def upload(
        self,
        query: str,
        files: dict[str, tuple[str, bytes]],
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A GraphQL multipart request (the files' variables set to null, as the spec has it),
        with the preflight header coinql asks of every multipart request."""
        names = list(files)
        operations = {"query": query, "variables": {**(variables or {}), **dict.fromkeys(names)}}
        all_headers = {"Apollo-Require-Preflight": "true", **self.headers, **(headers or {})}
        bearer = token or self.token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        return await self.http.post(
            "/graphql",
            data={
                "operations": json.dumps(operations),
                "map": json.dumps({str(i): [f"variables.{n}"] for i, n in enumerate(names)}),
            },
            files={
                str(i): (files[name][0], files[name][1], "text/csv") for i, name in enumerate(names)
            },
            headers=all_headers,
        )

    async def contract(
        self, area: str, name: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> GraphQLResponse:
        """Run the contract's operation `name` from `<area>.graphql` exactly as written."""
        query = contract_operations(self.contract_dir, area)[name]
        return await self.execute(query, variables, operation_name=name, **kwargs)

    async def sign_up(self, email: str = "ada@example.com") -> dict[str, Any]:
        """Register through the contract and return the AuthPayload."""
        response = await self.contract(
            "server", "Register", {"email": email, "password": "correct horse battery staple"}
        )
        payload = response.ok()["register"]
        assert payload["__typename"] == "AuthPayload", payload
        return dict(payload)
