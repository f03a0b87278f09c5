"""node(id): every object with an id is found by its REST id alone, under its type's scope."""

import uuid

import pytest
from graphql import GraphQLNonNull, GraphQLObjectType, build_schema

from crm_api.graphql import node
from crm_api.graphql.schema import schema
from graphql_shapes import selection

SDL = build_schema(schema.as_str())
# Types with an id that are no Node, and why.
NOT_NODES = {
    "WebhookAttempt": "a line of its delivery's attempt log, read with the delivery",
    "Event": "a message of the events subscription; REST has no single-event resource",
}
# What node answers for a type, when more than the type: a delivery with its attempt log.
FOUND_AS = {"WebhookDelivery": "WebhookDeliveryDetail"}


def _with_ids() -> dict[str, GraphQLObjectType]:
    return {
        name: type_
        for name, type_ in SDL.type_map.items()
        if isinstance(type_, GraphQLObjectType)
        and not name.startswith("__")
        and "id" in type_.fields
        and type_.fields["id"].type == GraphQLNonNull(SDL.type_map["ID"])
    }


def test_every_type_with_an_id_is_a_node_that_node_finds() -> None:
    found = node.findable_types() | {FOUND_AS.get(n, n) for n in node.findable_types()}
    for name, type_ in _with_ids().items():
        if name in NOT_NODES:
            continue
        assert "Node" in [i.name for i in type_.interfaces], f"{name} should implement Node"
        assert name in found, f"node(id) cannot find a {name}: register it with findable()"


@pytest.fixture
async def objects(api, new_customer) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    """One object of every findable type, made over REST: type -> (id, its own query)."""

    async def made(url: str, /, **body: object) -> dict:
        response = await api.post(url, json=body)
        assert response.status_code in (201, 202), response.text
        return response.json()

    customer = await new_customer(first_name="Ada")
    c = customer["id"]
    interaction = await made("/v1/interactions", customer_id=c, type="email")
    segment = await made("/v1/segments", name="Static", kind="static")
    run = await made("/v1/scoring/runs", scorer="rfm")
    endpoint = await made("/v1/webhook-endpoints", url="https://hooks.example.com/crm")
    delivery = await made(f"/v1/webhook-endpoints/{endpoint['id']}/test")
    program = await made("/v1/loyalty/programs", name="Club", currency="EUR", points_per_unit=1)
    p = program["id"]
    reward = await made(f"/v1/loyalty/programs/{p}/rewards", name="Mug", cost=5)
    account = await made("/v1/loyalty/accounts", customer_id=c, program_id=p)
    entry = await made(f"/v1/loyalty/accounts/{account['id']}/earn", points=7)
    moved = await made(f"/v1/customers/{c}/lifecycle/transitions", to="active")
    campaign = await made(
        "/v1/campaigns",
        code="SPRING",
        name="Spring",
        channel="email",
        currency="EUR",
        starts_at="2025-03-01T00:00:00Z",
    )
    return {
        "Customer": (c, f'customer(id: "{c}")'),
        "Interaction": (interaction["id"], f'interaction(id: "{interaction["id"]}")'),
        "Segment": (segment["id"], f'segment(id: "{segment["id"]}")'),
        "ScoringRun": (run["id"], f'scoringRun(id: "{run["id"]}")'),
        "WebhookEndpoint": (endpoint["id"], f'webhookEndpoint(id: "{endpoint["id"]}")'),
        "WebhookDeliveryDetail": (delivery["id"], f'webhookDelivery(id: "{delivery["id"]}")'),
        "LoyaltyProgram": (p, f'loyaltyProgram(id: "{p}")'),
        "LoyaltyReward": (reward["id"], f'loyaltyReward(programId: "{p}", id: "{reward["id"]}")'),
        "LoyaltyAccount": (account["id"], f'loyaltyAccount(id: "{account["id"]}")'),
        "LoyaltyEntry": (entry["id"], f'loyaltyEntry(id: "{entry["id"]}")'),
        "LifecycleTransition": (
            moved["id"],
            f'lifecycleTransition(customerId: "{c}", id: "{moved["id"]}")',
        ),
        "Campaign": (campaign["id"], f'campaign(id: "{campaign["id"]}")'),
    }


async def test_node_finds_every_type_by_its_rest_id_as_its_own_query_does(gql, objects):
    findable = {FOUND_AS.get(n, n) for n in node.findable_types()}
    assert set(objects) == findable, "make an object of every findable type in `objects`"
    for type_name, (object_id, own_query) in objects.items():
        fields = selection(type_name)
        found = await gql(
            f'{{ node(id: "{object_id}") {{ __typename id ... on {type_name} {{ {fields} }} }}'
            f" own: {own_query} {{ {fields} }} }}"
        )
        assert found["node"].pop("__typename") == type_name
        assert found["node"] == found["own"], type_name


NODE = "query($id: ID!) { node(id: $id) { __typename ... on Customer { email } } }"


async def test_a_type_the_key_may_not_read_is_forbidden(gql, gql_error, key_for, objects):
    reader = await key_for("customers:read")
    customer_id, _ = objects["Customer"]
    segment_id, _ = objects["Segment"]

    found = await gql(NODE, {"id": customer_id}, headers=reader)
    error, data = await gql_error(NODE, {"id": segment_id}, code="forbidden", headers=reader)

    # Found under the caller's own key: personal fields redacted without pii:read.
    assert found["node"] == {"__typename": "Customer", "email": None}
    assert "segments:read" in error["message"]
    assert data == {"node": None}


async def test_an_unknown_or_deleted_id_is_null(api, gql, objects):
    customer_id, _ = objects["Customer"]
    assert (await api.delete(f"/v1/customers/{customer_id}")).status_code == 204

    for gone in (str(uuid.uuid4()), customer_id):
        assert await gql(NODE, {"id": gone}) == {"node": None}


async def test_a_malformed_id_is_a_validation_error(gql_error):
    error, _ = await gql_error(NODE, {"id": "not-a-uuid"}, code="validation-error")
    assert error["extensions"]["errors"][0]["field"] == "id"
