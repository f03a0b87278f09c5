"""Who may do what over GraphQL: the same API keys and scopes as REST."""

import uuid

import pytest
from strawberry.permission import PermissionExtension

from crm_api.graphql.permissions import HasScope
from crm_api.graphql.schema import schema
from support import assert_problem

CUSTOMERS = "{ customers { edges { node { id } } } }"
CREATE = 'mutation { createCustomer(input: {lastName: "Byron"}) { id lastName } }'


async def test_a_request_without_a_valid_key_is_refused_like_rest(client):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}, {"X-API-Key": "not-a-key"}):
        response = await client.post("/graphql", json={"query": CUSTOMERS}, headers=headers)

        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_key_may_come_as_x_api_key(client, admin_key, new_customer):
    customer = await new_customer()

    response = await client.post(
        "/graphql", json={"query": CUSTOMERS}, headers={"X-API-Key": admin_key}
    )

    assert response.json() == {"data": {"customers": {"edges": [{"node": {"id": customer["id"]}}]}}}


async def test_a_missing_scope_is_forbidden_and_writes_nothing(api, gql_error, key_for):
    reader = await key_for("customers:read")

    error, data = await gql_error(CREATE, code="forbidden", headers=reader)

    assert data is None
    assert error["extensions"]["status"] == 403
    assert "customers:write" in error["message"]
    assert (await api.get("/v1/customers")).json()["data"] == []


async def test_reading_interactions_needs_their_own_scope(gql_error, key_for, new_customer):
    await new_customer()
    reader = await key_for("customers:read")
    query = "{ customers { edges { node { id interactions { edges { cursor } } } } } }"

    error, data = await gql_error(query, code="forbidden", headers=reader)
    lone, lone_data = await gql_error(
        f'{{ interaction(id: "{uuid.uuid4()}") {{ id }} }}', code="forbidden", headers=reader
    )

    # The customer is still served; only the field it may not see is null.
    [edge] = data["customers"]["edges"]
    assert edge["node"]["interactions"] is None and edge["node"]["id"]
    assert error["path"] == ["customers", "edges", 0, "node", "interactions"]
    assert lone_data == {"interaction": None}
    assert lone["path"] == ["interaction"]


async def test_customers_need_customers_read(gql_error, key_for):
    error, _ = await gql_error(
        CUSTOMERS, code="forbidden", headers=await key_for("interactions:read")
    )
    assert "customers:read" in error["message"]


async def test_a_write_scope_implies_its_read(gql, key_for):
    writer = await key_for("customers:write")

    created = (await gql(CREATE, headers=writer))["createCustomer"]
    listed = await gql(CUSTOMERS, headers=writer)

    assert created["lastName"] is None  # written, but personal data needs pii:read to be seen
    assert listed == {"customers": {"edges": [{"node": {"id": created["id"]}}]}}


async def test_graphiql_is_off_until_it_can_be_served_offline(api):
    # Its page would pull scripts from a CDN, which these machines cannot reach.
    response = await api.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 404
    assert "<html" not in response.text.lower()


# node(id) checks the scope of the type the id turns out to be (test_graphql_node.py).
SCOPED_BY_TYPE = {"node"}
ROOT_FIELDS = [
    (root, field)
    for root in ("Query", "Mutation")
    for field in schema.get_type_by_name(root).fields
    if field.python_name not in SCOPED_BY_TYPE
]


@pytest.mark.parametrize(
    ("root", "field"), ROOT_FIELDS, ids=[f"{r}.{f.python_name}" for r, f in ROOT_FIELDS]
)
def test_every_query_and_mutation_checks_a_scope(root, field) -> None:
    """As the REST matrix does for routes: an operation added without a scope check fails."""
    checks = [
        p for e in field.extensions if isinstance(e, PermissionExtension) for p in e.permissions
    ]
    assert [p for p in checks if isinstance(p, HasScope)], f"{root}.{field.python_name}"
