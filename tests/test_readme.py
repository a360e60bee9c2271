"""Every GraphQL example in README.md runs as written on `make run`'s default (SQLite, the demo
market loaded into an empty store, the demo feed) and answers data.

Which fences count:

- each ```graphql fence: one or more operations, each sent on its own (with the fence's
  fragments), in the order written. Operations after a comment
  `# with "Authorization: Bearer <accessToken>"` are sent with a token of a user the test
  signs up; the others anonymously.
- each `curl` in a ```sh fence that sends GraphQL: `-d '<JSON body>'` is posted as that body;
  `-F operations='<JSON>'` is a multipart upload of the `-F 0=@FILE` it names, taken from
  ../shared/data/coins-daily (where the README says to find it) and sent by an admin, as the
  README says `$TOKEN` is. `-H "Authorization: Bearer $TOKEN"` signs a request in.
- a ```json fence is an answer, never run, unless `<!-- variables -->` comes right before it:
  then it holds the variables of the graphql fence just above, and each operation gets those it
  declares. A value `"<field.path>"` stands for what an earlier operation of that fence
  answered there (`"<createPortfolio.id>"`).
- other fences (shell commands, layout) are not GraphQL.

Subscriptions are validated against the schema and not run: they need a socket.

An answer passes with a 200 and no `errors`, and when nothing in it is empty: no `null` at the
top level, no empty list or object (a union member the example does not select), no
`count: 0` or `observations: 0`, no member of an error type (an implementation of `Error`), no
job that FAILED. A query that finds a job QUEUED or RUNNING is sent again until it ends, as a
client polls.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shlex
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    validate,
)
from starlette.applications import Starlette

from coinql.app import create_app
from coinql.schema import build_schema
from tests.client import GraphQLClient
from tests.conftest import (
    COINS_DIR,
    CONTRACT_DIR,
    ROOT,
    Backend,
    make_settings,
    make_user,
    worker_for,
)

README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<language>[\w-]*)\n(?P<text>.*?)^```[ \t]*$", re.M | re.S)
SIGNED_IN = re.compile(r'#\s*with\s+"Authorization: Bearer <accessToken>"')
PLACEHOLDER = re.compile(r"<(?P<path>[A-Za-z_]\w*(?:\.\w+)*)>")
UNFINISHED_JOB = {"QUEUED", "RUNNING"}
FAILED_JOB = {"FAILED", "CANCELLED", "INTERRUPTED"}
JOB_DEADLINE_SECONDS = 120.0


@dataclass(frozen=True)
class Fence:
    language: str
    text: str
    line: int  # of the opening ```
    marker: str | None  # the HTML comment right before it


@dataclass(frozen=True)
class Operation:
    document: str
    kind: OperationType
    declared: frozenset[str]  # its variables
    signed_in: bool
    body: dict[str, Any] | None = None  # a curl's JSON body, sent as is
    upload: str | None = None  # a multipart curl's file name


@dataclass
class Example:
    fence: Fence
    operations: list[Operation]
    unreadable: str | None = None  # why the fence is not GraphQL that can be sent
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"README.md:{self.fence.line}"

    @property
    def runs(self) -> bool:
        """Whether it has an operation to send over HTTP (subscriptions are validated only)."""
        return any(op.kind is not OperationType.SUBSCRIPTION for op in self.operations)


def fences(markdown: str) -> Iterator[Fence]:
    for match in FENCE.finditer(markdown):
        before = markdown[: match.start()].rstrip()
        opening = before.rfind("<!--")
        yield Fence(
            language=match["language"],
            text=match["text"],
            line=markdown.count("\n", 0, match.start()) + 1,
            marker=before[opening + 4 : -3].strip() if before.endswith("-->") else None,
        )


def graphql_operations(text: str, *, signed_in_from: int | None = None) -> list[Operation]:
    """Each operation of a GraphQL document, on its own with the document's fragments."""
    document = parse(text)
    assert document.loc is not None
    fragments = "\n".join(
        text[d.loc.start : d.loc.end]
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode) and d.loc is not None
    )
    operations = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        assert definition.loc is not None
        start, end = definition.loc.start, definition.loc.end
        variables = definition.variable_definitions or ()
        operations.append(
            Operation(
                document="\n".join(filter(None, [text[start:end], fragments])),
                kind=definition.operation,
                declared=frozenset(v.variable.name.value for v in variables),
                signed_in=signed_in_from is not None and signed_in_from < start,
            )
        )
    return operations


def curl_operations(text: str) -> list[Operation]:
    """The GraphQL requests of the `curl` commands of a shell fence."""
    operations = []
    for command in text.replace("\\\n", " ").splitlines():
        if not command.startswith("curl "):
            continue
        words = shlex.split(command, comments=True)
        headers = [value for flag, value in itertools.pairwise(words) if flag == "-H"]
        signed_in = any(h.lower().startswith("authorization: bearer") for h in headers)
        files = [
            value.split("=@", 1)[1]
            for flag, value in itertools.pairwise(words)
            if flag == "-F" and "=@" in value
        ]
        for flag, value in itertools.pairwise(words):
            upload: str | None = None
            if flag in ("-d", "--data", "--data-raw"):
                body = json.loads(value)
            elif flag == "-F" and value.startswith("operations="):
                body = json.loads(value.removeprefix("operations="))
                (upload,) = files
            else:
                continue
            (operation,) = graphql_operations(body["query"])
            operations.append(
                Operation(
                    document=body["query"],
                    kind=operation.kind,
                    declared=operation.declared,
                    signed_in=signed_in,
                    body=None if upload is not None else body,
                    upload=upload,
                )
            )
    return operations


@cache
def readme_examples() -> tuple[Example, ...]:
    examples: list[Example] = []
    previous: Fence | None = None
    for fence in fences(README.read_text()):
        if fence.language == "graphql":
            auth = SIGNED_IN.search(fence.text)
            try:
                operations = graphql_operations(
                    fence.text, signed_in_from=auth.start() if auth else None
                )
            except GraphQLError as error:
                examples.append(Example(fence, [], unreadable=error.message))
                continue
            examples.append(
                Example(fence, operations, unreadable=None if operations else "no operation")
            )
        elif fence.language == "sh" and "curl " in fence.text:
            try:
                operations = curl_operations(fence.text)
            except (GraphQLError, ValueError, KeyError) as error:
                examples.append(Example(fence, [], unreadable=f"a curl's body: {error!r}"))
                continue
            if operations:
                examples.append(Example(fence, operations))
        elif fence.language == "json" and fence.marker == "variables":
            assert previous is not None and previous.language == "graphql", (
                f"README.md:{fence.line}: variables belong right after a graphql fence"
            )
            examples[-1].variables = json.loads(fence.text)
        previous = fence
    return tuple(examples)


@cache
def graphql_schema() -> GraphQLSchema:
    return build_schema()._schema


def error_types(schema: GraphQLSchema) -> frozenset[str]:
    error = schema.get_type("Error")
    assert isinstance(error, GraphQLInterfaceType)
    return frozenset(t.name for t in schema.get_implementations(error).objects)


def fill(value: Any, answers: dict[str, Any]) -> Any:
    """The variables, with each "<field.path>" replaced by that earlier answer."""
    if isinstance(value, dict):
        return {key: fill(item, answers) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, answers) for item in value]
    if isinstance(value, str) and (placeholder := PLACEHOLDER.fullmatch(value)):
        found: Any = answers
        for key in placeholder["path"].split("."):
            assert isinstance(found, dict) and key in found, (
                f"{value}: no earlier operation of the example answered it ({answers})"
            )
            found = found[key]
        return found
    return value


def emptiness(data: Any, errors: frozenset[str], path: str = "") -> Iterator[str]:
    """What makes an answer empty or failed, each as one line."""
    if isinstance(data, dict):
        if not data:
            yield f"{path or 'data'} is {{}} (a union member the example does not select)"
        if data.get("__typename") in errors:
            yield f"{path} is {data['__typename']}: {data.get('message', '')}"
        for key in ("count", "observations"):
            if data.get(key) == 0:
                yield f"{path}.{key} is 0"
        if data.get("status") in FAILED_JOB:
            yield f"{path}.status is {data['status']}: {data.get('error')}"
        for key, value in data.items():
            if value is None and not path:
                yield f"{key} is null"
            yield from emptiness(value, errors, f"{path}.{key}" if path else key)
    elif isinstance(data, list):
        if not data:
            yield f"{path} is []"
        for index, item in enumerate(data):
            yield from emptiness(item, errors, f"{path}[{index}]")


def unfinished_job(data: Any) -> bool:
    if isinstance(data, dict):
        return data.get("status") in UNFINISHED_JOB or any(map(unfinished_job, data.values()))
    return isinstance(data, list) and any(map(unfinished_job, data))


@dataclass
class Demo:
    app: Starlette
    client: GraphQLClient


@pytest.fixture
async def demo(backend: Backend, tmp_path: Path) -> AsyncIterator[Demo]:
    """The app as `make run` serves it by default: the demo source, its market loaded into the
    empty store as the app starts, and its feed; with Redis, a `coinql worker` runs the jobs."""
    settings = make_settings(backend, tmp_path, source="demo")
    app = create_app(settings)
    with worker_for(settings):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://coinql.test") as h:
                yield Demo(app, GraphQLClient(h, CONTRACT_DIR))


async def answer(
    client: GraphQLClient, operation: Operation, variables: dict[str, Any], token: str | None
) -> dict[str, Any]:
    if operation.body is not None:  # a curl's body, as it is
        body = operation.body
        response = await client.execute(
            body["query"],
            body.get("variables"),
            operation_name=body.get("operationName"),
            token=token,
        )
    else:
        response = await client.execute(operation.document, variables, token=token)
    assert response.status_code == 200 and not response.errors, (
        f"{operation.document}\n{response.status_code} {response.body}"
    )
    return response.data


def test_the_readme_has_examples() -> None:
    kinds = {op.kind for example in readme_examples() for op in example.operations}
    assert kinds == set(OperationType), kinds


@pytest.mark.parametrize("example", readme_examples(), ids=lambda example: example.id)
def test_example_validates(example: Example) -> None:
    """Subscriptions included."""
    if example.unreadable:
        pytest.fail(f"{example.id} cannot be run ({example.unreadable}): fix it")
    schema = graphql_schema()
    for operation in example.operations:
        problems = validate(schema, parse(operation.document))
        assert not problems, f"{example.id}: {operation.document}\n{problems}"


@pytest.mark.parametrize(
    "example",
    [example for example in readme_examples() if example.runs],
    ids=lambda example: example.id,
)
async def test_example_answers_data(example: Example, demo: Demo) -> None:
    errors = error_types(graphql_schema())
    token: str | None = None
    answers: dict[str, Any] = {}
    for operation in example.operations:
        if operation.kind is OperationType.SUBSCRIPTION:
            continue  # validated above
        if operation.upload is not None:
            admin = await make_user(demo.app, demo.client, "readme-admin@example.com", admin=True)
            content = (COINS_DIR / operation.upload).read_bytes()
            response = await demo.client.upload(
                operation.document, {"f": (operation.upload, content)}, token=admin
            )
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            problems = list(emptiness(data, errors))
            assert not problems, f"{example.id}: {operation.document}\n" + "\n".join(problems)
            continue
        variables = fill(
            {k: v for k, v in example.variables.items() if k in operation.declared}, answers
        )
        if operation.signed_in and token is None:
            token = str((await demo.client.sign_up("reader@example.com"))["accessToken"])
        bearer = token if operation.signed_in else None
        data = await answer(demo.client, operation, variables, bearer)
        deadline = time.monotonic() + JOB_DEADLINE_SECONDS
        while operation.kind is OperationType.QUERY and unfinished_job(data):
            assert time.monotonic() < deadline, f"{example.id}: the job did not end: {data}"
            await asyncio.sleep(0.2)
            data = await answer(demo.client, operation, variables, bearer)
        problems = list(emptiness(data, errors))
        assert not problems, f"{example.id}: {operation.document}\n" + "\n".join(problems)
        answers.update(data)
