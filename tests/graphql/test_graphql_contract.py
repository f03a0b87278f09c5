"""The GraphQL contract, fuzzed: schemathesis generates queries and mutations (valid and
invalid) for every root field of the schema and posts them, with an admin key, to /graphql
of the app served by uvicorn on its own database with a few seeded rows. Nothing may fail
on our side: no 5xx, no ``internal-error``, no null where the schema promises a value.
"""

import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from graphql import (
    ArgumentNode,
    DocumentNode,
    NameNode,
    NullValueNode,
    ObjectFieldNode,
    StringValueNode,
    ValueNode,
    Visitor,
    visit,
)
from schemathesis.graphql import nodes
from schemathesis.specs.openapi.checks import response_schema_conformance

from crm_api.app import create_app
from crm_api.core.scopes import Scope
from crm_api.graphql.schema import schema as graphql_schema
from live import create_database, drop_database, issue_key, serve, settings_for

# Per root field: the module stays well under a minute. Hunt deeper locally with e.g.
# CRM_GRAPHQL_CONTRACT_EXAMPLES=500.
MAX_EXAMPLES = int(os.environ.get("CRM_GRAPHQL_CONTRACT_EXAMPLES", "10"))

schema = schemathesis.graphql.from_file(
    graphql_schema.as_str(),
    config=schemathesis.Config.from_dict(
        {
            # Slow generation on a busy CI machine is not a finding.
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "database": "none",  # no example database in the work tree; every run is fresh
            },
        }
    ),
)


def _literal(value: Any) -> ValueNode:
    """A JSON value as a GraphQL literal."""
    if isinstance(value, dict):
        fields = [
            ObjectFieldNode(name=NameNode(value=k), value=_literal(v)) for k, v in value.items()
        ]
        return nodes.Object(fields)
    if isinstance(value, list):
        return nodes.List([_literal(v) for v in value])
    if value is None:
        return NullValueNode()
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    return nodes.String(value)


# Segment conditions of several kinds, beside arbitrary JSON.
CONDITIONS = [
    {"field": "tags", "op": "contains", "value": "vip"},
    {
        "all": [
            {"interactions": {"type": "purchase", "days": 30}},
            {"field": "email", "op": "exists"},
        ]
    },
    {"not": {"field": "email", "op": "exists"}},
    {"score": {"scorer": "rfm", "field": "label", "op": "eq", "value": "At Risk"}},
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), inner, max_size=3)
    ),
    max_leaves=8,
)
WHOLE_NUMBERS = st.integers(min_value=-(2**63), max_value=2**63).map(nodes.Int)
schemathesis.graphql.scalar("JSON", (st.sampled_from(CONDITIONS) | JSON_VALUES).map(_literal))
schemathesis.graphql.scalar("MinorUnits", WHOLE_NUMBERS)
schemathesis.graphql.scalar("Points", WHOLE_NUMBERS)
schemathesis.graphql.scalar("Decimal", st.decimals().map(nodes.String))


@pytest.fixture(scope="module")
async def live(server_url: str, template_db: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The GraphQL endpoint under uvicorn (own thread, own event loop) on a database of its
    own with rows seeded, and an admin key's headers."""
    database = await create_database(server_url, template=template_db)
    try:
        key = await issue_key(database, Scope.ADMIN, name="graphql contract admin")
        with serve(create_app(settings_for(database))) as base_url:
            _seed(base_url, key)
            yield f"{base_url}/graphql", {"Authorization": f"Bearer {key}"}
    finally:
        await drop_database(database)


# Ids of the seeded rows (filled by `live`), to stand in for generated ones now and then.
SEEDED: list[str] = []


def _seed(base_url: str, key: str) -> None:
    """Customers with a timeline and a loyalty account with an entry, and a segment, so
    that lists and nested fields have rows to render and operations by id find some."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:

        def created(path: str, body: dict) -> str:
            response = http.post(path, json=body)
            assert response.status_code == 201, response.text
            SEEDED.append(response.json()["id"])
            return SEEDED[-1]

        program = created(
            "/v1/loyalty/programs", {"name": "seed", "currency": "EUR", "points_per_unit": 1}
        )
        for n in range(3):
            customer = created("/v1/customers", {"email": f"seed{n}@example.com", "tags": ["vip"]})
            interaction = {"type": "purchase", "channel": "web", "amount": 1299, "currency": "EUR"}
            created("/v1/interactions", {"customer_id": customer, **interaction})
            account = created(
                "/v1/loyalty/accounts", {"customer_id": customer, "program_id": program}
            )
            created(f"/v1/loyalty/accounts/{account}/earn", {"points": 50})
        created("/v1/segments", {"name": "seed", "condition": CONDITIONS[0]})


ID_ARGUMENT = re.compile(r"(^id|Id)$")


class _SeededIds(Visitor):
    """Gives every string argument or input field named like an id a seeded row's id."""

    def __init__(self, pick: Callable[[], str]) -> None:
        super().__init__()
        self._pick = pick

    def enter_argument(self, node: ArgumentNode, *_: Any) -> ArgumentNode | None:
        return self._swapped(node)

    def enter_object_field(self, node: ObjectFieldNode, *_: Any) -> ObjectFieldNode | None:
        return self._swapped(node)

    def _swapped(self, node: Any) -> Any:
        if ID_ARGUMENT.search(node.name.value) and isinstance(node.value, StringValueNode):
            return type(node)(name=node.name, value=StringValueNode(value=self._pick()))
        return None


@schema.hook
def flatmap_body(context: Any, document: DocumentNode) -> Any:
    """The generated operation, or the same with seeded ids in it."""
    seeded = st.randoms().map(lambda r: visit(document, _SeededIds(lambda: r.choice(SEEDED))))
    return st.one_of(st.just(document), seeded)


def no_failure_of_ours(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx, and no error the API renders for a failure of its own."""
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    errors = response.json().get("errors") or []
    ours = [e for e in errors if (e.get("extensions") or {}).get("code") == "internal-error"]
    assert not ours, ours
    return True


CHECKS = [no_failure_of_ours, response_schema_conformance]


@schema.parametrize()
def test_every_root_field_keeps_its_contract(
    case: schemathesis.Case, live: tuple[str, dict[str, str]]
) -> None:
    endpoint, auth = live
    case.call_and_validate(base_url=endpoint, headers=auth, checks=CHECKS)
