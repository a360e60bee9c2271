"""schemathesis strategies for coinql's custom scalars (loaded through SCHEMATHESIS_HOOKS by
`benchmarks.fuzz`): well-formed values most of the time, and junk strings the server must
refuse cleanly."""

from __future__ import annotations

from datetime import UTC

import graphql
import schemathesis
from hypothesis import strategies as st
from hypothesis_graphql import nodes

junk = st.text(max_size=40)


def _json_value() -> st.SearchStrategy[graphql.ValueNode]:
    leaves = st.one_of(
        st.integers(-(2**31), 2**31 - 1).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.booleans().map(nodes.Boolean),
        junk.map(nodes.String),
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(nodes.List),
            st.dictionaries(
                st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), children, max_size=4
            ).map(
                lambda fields: nodes.Object(
                    [
                        graphql.ObjectFieldNode(name=graphql.NameNode(value=key), value=value)
                        for key, value in fields.items()
                    ]
                )
            ),
        ),
        max_leaves=8,
    )


schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()), junk
    ).map(nodes.String),
)
schemathesis.graphql.scalar(
    "Decimal",
    st.one_of(st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str), junk).map(
        nodes.String
    ),
)
schemathesis.graphql.scalar("JSON", _json_value())
schemathesis.graphql.scalar(
    "FloatArray",
    st.lists(st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float), max_size=8).map(
        nodes.List
    ),
)
schemathesis.graphql.scalar(
    "TimestampArray",
    st.lists(st.integers(0, 2**42).map(nodes.Int), max_size=8).map(nodes.List),
)
schemathesis.graphql.scalar("Upload", junk.map(nodes.String))
