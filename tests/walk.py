"""Operations generated from the schema: every place a root field takes an id, a valid operation
around each, and selections that tell a refusal from a success or read a result in full."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    Undefined,
    get_named_type,
    get_nullable_type,
    is_enum_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
)

Slot = tuple[str, ...]  # where an id goes: the argument, then input fields


@dataclass(frozen=True)
class Case:
    """`field` of the root `operation` type with an id of `id_type` at `slot`."""

    operation: str
    field: str
    slot: Slot
    id_type: str
    many: bool  # the slot takes a list of ids

    def __str__(self) -> str:
        return f"{self.operation} {self.field}({'.'.join(self.slot)}: {self.id_type})"

    def ids(self, global_id: str) -> str | list[str]:
        return [global_id] if self.many else global_id


@dataclass(frozen=True)
class Operation:
    document: str
    variables: dict[str, Any]
    files: dict[str, tuple[str, bytes]]  # Upload variables: file name and content


@dataclass
class SchemaWalk:
    """The cases of a schema. An id's type is read from its name (`portfolioId` names a
    Portfolio; `id` and `ids` the field's own thing: `deletePortfolio`, `job`, or what the
    field returns), else from `aliases` ("argument" or "field.argument"); `node(id:)` is a case
    per Node type but the `public` ones. Sample values come from `scalars` by scalar name,
    with `overrides` by "InputType.field" or "field.argument" (for an Upload: a file name and
    its content or path)."""

    schema: GraphQLSchema
    public: frozenset[str]
    aliases: dict[str, str]
    scalars: dict[str, Any]
    overrides: dict[str, Any]
    nested: frozenset[str]  # "Type.field(argument)": ids below the root a test covers by hand
    cases: list[Case] = field(init=False)
    problems: list[str] = field(init=False)  # ids the walk cannot type or reach
    _own: dict[str, str] = field(init=False, default_factory=dict)  # see `build`

    def __post_init__(self) -> None:
        node = self.schema.get_type("Node")
        assert isinstance(node, GraphQLInterfaceType)
        self.node = node
        self.node_types = {t.name for t in self.schema.get_possible_types(node)}
        self.owned = frozenset(self.node_types - self.public)
        error = self.schema.get_type("Error")
        assert isinstance(error, GraphQLInterfaceType)
        self.error_types = {t.name for t in self.schema.get_possible_types(error)}
        self.cases, self.problems = [], []
        for operation, root in self.roots.items():
            for name, root_field in root.fields.items():
                self._discover(operation, name, root_field)
        self._refuse_ids_below_the_root()

    @property
    def roots(self) -> dict[str, GraphQLObjectType]:
        found = {
            "query": self.schema.query_type,
            "mutation": self.schema.mutation_type,
            "subscription": self.schema.subscription_type,
        }
        return {name: root for name, root in found.items() if root is not None}

    def field(self, case: Case) -> GraphQLField:
        return self.roots[case.operation].fields[case.field]

    def _discover(self, operation: str, name: str, root_field: GraphQLField) -> None:
        for argument_name, argument in root_field.args.items():
            for slot, many in id_slots(argument.type, (argument_name,)):
                if get_named_type(root_field.type) is self.node:  # node(id:)
                    self.cases += [Case(operation, name, slot, t, many) for t in self.owned]
                    continue
                found = self._id_type(name, root_field, slot)
                if not found:
                    self.problems.append(
                        f"{operation} {name}({'.'.join(slot)}): which type does this id name?"
                        " Add it to ID_ALIASES"
                    )
                elif found not in self.public:
                    self.cases.append(Case(operation, name, slot, found, many))

    def _id_type(self, name: str, root_field: GraphQLField, slot: Slot) -> str:
        leaf = slot[-1]
        if leaf in ("id", "ids"):
            alias = self.aliases.get(f"{name}.{leaf}")
            candidates = [
                name[:1].upper() + name[1:],  # job -> Job
                re.sub(r"^[a-z]+", "", name),  # cancelJob -> Job
                get_named_type(root_field.type).name,  # compareBacktests -> [BacktestRun!]!
            ]
        else:
            alias = self.aliases.get(leaf)
            base = re.sub(r"Ids?$", "", leaf)
            candidates = [base[:1].upper() + base[1:]]  # backtestRunId -> BacktestRun
        return alias or next((c for c in candidates if c in self.node_types), "")

    def _refuse_ids_below_the_root(self) -> None:
        for type_ in self.schema.type_map.values():
            if not isinstance(type_, GraphQLObjectType) or type_ in self.roots.values():
                continue
            for name, below in type_.fields.items():
                for argument_name, argument in below.args.items():
                    for slot, _ in id_slots(argument.type, (argument_name,)):
                        if f"{type_.name}.{name}({'.'.join(slot)})" in self.nested:
                            continue
                        self.problems.append(
                            f"{type_.name}.{name}({'.'.join(slot)}) takes an id below the root,"
                            " where the walk does not go: extend it"
                        )

    def listings(self) -> dict[str, str]:
        """Root query fields without required arguments that list an owned type (itself, a
        list of it, or a connection's nodes) -> that type."""
        query = self.schema.query_type
        assert query is not None
        found = {}
        for name, root_field in query.fields.items():
            if not any(map(required, root_field.args.values())):
                listed = listed_type(root_field.type)
                if listed in self.owned:
                    found[name] = listed
        return found

    def build(
        self,
        case: Case,
        id_value: str | list[str],
        selection: str,
        own: dict[str, str] | None = None,
    ) -> Operation:
        """The case's operation: the id's argument and every required one, as variables; a
        required id besides the case's (a bot's strategy, for its connection) is the caller's
        own of its type, from `own`."""
        self._own = own or {}
        definitions, arguments = [], []
        variables: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for name, argument in self.field(case).args.items():
            key, on_slot = f"{case.field}.{name}", case.slot[0] == name
            if not (on_slot or required(argument) or key in self.overrides):
                continue
            definitions.append(f"${name}: {argument.type}")
            arguments.append(f"{name}: ${name}")
            if get_named_type(argument.type).name == "Upload":
                assert key in self.overrides, f"{key}: add a file for it to OVERRIDES"
                filename, content = self.overrides[key]
                files[name] = (
                    filename,
                    content.read_bytes() if isinstance(content, Path) else content,
                )
            else:
                slot = case.slot[1:] if on_slot else None
                variables[name] = self.sample(argument.type, key, slot, id_value)
        document = (
            f"{case.operation} Walk({', '.join(definitions)}) {{"
            f" {case.field}({', '.join(arguments)}) {selection} }}"
        )
        return Operation(document, variables, files)

    def sample(self, type_: GraphQLInputType, key: str, slot: Slot | None, id_value: Any) -> Any:
        """A valid value of `type_`, with `id_value` at `slot` (None: no id below here)."""
        if slot == ():
            return id_value
        if key in self.overrides:
            return self.overrides[key]
        nullable = get_nullable_type(type_)
        if is_list_type(nullable):
            return [self.sample(nullable.of_type, key, slot, id_value)]
        if is_enum_type(nullable):
            return next(iter(nullable.values))
        if isinstance(nullable, GraphQLInputObjectType):
            return self._sample_input(nullable, slot, id_value)
        assert isinstance(nullable, GraphQLScalarType)
        name = nullable.name
        if name == "ID":
            base = re.sub(r"Ids?$", "", key.rsplit(".", 1)[-1])
            type_name = self.aliases.get(base + "Id") or base[:1].upper() + base[1:]
            assert type_name in self._own, (
                f"{key} is a second id: pass the caller's own {type_name}"
            )
            return self._own[type_name]
        assert name != "Upload", f"{key}: the walk sends files only as root arguments"
        assert name in self.scalars, f"{key}: add a sample value of {name} to SCALAR_SAMPLES"
        return self.scalars[name]

    def _sample_input(
        self, type_: GraphQLInputObjectType, slot: Slot | None, id_value: Any
    ) -> dict[str, Any]:
        """The slot's field and the required ones; of a oneOf input, the slot's variant (or,
        without an id in it, its first)."""
        one_of = is_one_of(type_)
        value = {}
        for name, input_field in type_.fields.items():
            key = f"{type_.name}.{name}"
            if slot is not None and slot[0] == name:
                value[name] = self.sample(input_field.type, key, slot[1:], id_value)
            elif not one_of and (required(input_field) or key in self.overrides):
                value[name] = self.sample(input_field.type, key, None, id_value)
        if one_of and not value:
            name, input_field = next(iter(type_.fields.items()))
            value[name] = self.sample(input_field.type, f"{type_.name}.{name}", None, id_value)
        return value

    def answer_selection(self, type_: GraphQLOutputType) -> str:
        """Enough to tell a refusal from a success: the type, ids, an error's message and the
        field an InvalidInput names."""
        named = get_named_type(type_)
        if is_leaf_type(named):
            return ""
        parts = ["__typename"]
        if isinstance(named, GraphQLObjectType):
            parts += ["id"] if "id" in named.fields else []
        elif isinstance(named, GraphQLUnionType | GraphQLInterfaceType):
            members = self.schema.get_possible_types(named)
            parts += [f"... on {m.name} {{ id }}" for m in members if "id" in m.fields]
            if any(m.name in self.error_types for m in members):
                parts.append("... on Error { message }")
            if any(m.name == "InvalidInput" for m in members):
                parts.append("... on InvalidInput { field }")
        return "{ " + " ".join(parts) + " }"

    def full_selection(
        self,
        type_: GraphQLOutputType,
        depth: int,
        *,
        only: str | None = None,
        arguments: bool = True,
    ) -> str:
        """Every field without required arguments (without any, unless `arguments`), objects
        `depth` levels down: all a user reads of a result. `only` narrows an abstract type to
        one of its members."""
        named = get_named_type(type_)
        if is_leaf_type(named):
            return ""
        if depth == 0:
            return "{ __typename }"
        if isinstance(named, GraphQLUnionType | GraphQLInterfaceType):
            members = [m for m in self.schema.get_possible_types(named) if only in (None, m.name)]
            spreads = [f"... on {m.name} {self._fields(m, depth, arguments)}" for m in members]
            return "{ __typename " + " ".join(spreads) + " }"
        assert isinstance(named, GraphQLObjectType)
        return self._fields(named, depth, arguments)

    def _fields(self, type_: GraphQLObjectType, depth: int, arguments: bool) -> str:
        parts = ["__typename"]
        for name, below in type_.fields.items():
            if (below.args and not arguments) or any(map(required, below.args.values())):
                continue
            selection = self.full_selection(below.type, depth - 1, arguments=arguments)
            given = [  # an optional argument the field needs all the same ("field.argument")
                f"{argument}: {json.dumps(self.overrides[f'{name}.{argument}'])}"
                for argument in below.args
                if arguments and f"{name}.{argument}" in self.overrides
            ]
            called = f"{name}({', '.join(given)})" if given else name
            parts.append(f"{called} {selection}".strip())
        return "{ " + " ".join(parts) + " }"


def id_slots(
    type_: GraphQLInputType, path: Slot, seen: frozenset[str] = frozenset()
) -> Iterator[tuple[Slot, bool]]:
    """Where an ID goes in an argument of this type, and whether a list of them goes there."""
    named = get_named_type(type_)
    if named.name == "ID":
        yield path, is_list_type(get_nullable_type(type_))
    elif isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        for name, input_field in named.fields.items():
            yield from id_slots(input_field.type, (*path, name), seen | {named.name})


def listed_type(type_: GraphQLOutputType) -> str:
    """The type a field lists: itself, a list of it, or a connection's edges' nodes."""
    named = get_named_type(type_)
    if isinstance(named, GraphQLObjectType) and "edges" in named.fields:
        edge = get_named_type(named.fields["edges"].type)
        if isinstance(edge, GraphQLObjectType) and "node" in edge.fields:
            return get_named_type(edge.fields["node"].type).name
    return named.name


def required(argument: GraphQLArgument | GraphQLInputField) -> bool:
    return is_non_null_type(argument.type) and argument.default_value is Undefined


def is_one_of(type_: GraphQLInputObjectType) -> bool:
    """graphql-core's flag, or strawberry's (which leaves graphql-core's unset)."""
    definition = (type_.extensions or {}).get("strawberry-definition")
    return bool(getattr(type_, "is_one_of", False) or getattr(definition, "is_one_of", False))
