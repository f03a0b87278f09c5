"""Interactions over GraphQL: recording, reading, timelines, and batched loading."""

import asyncio
import uuid

import asyncpg
import pytest

from support import ago

INTERACTION_FIELDS = """
    id customerId type externalId channel direction occurredAt recordedAt subject body campaign
    metadata amount currency serviceCost items { sku name category quantity unitPrice unitCost }
    nps csat refundOf sentiment
"""
RECORD = f"""mutation($input: InteractionInput!) {{
    recordInteraction(input: $input) {{ {INTERACTION_FIELDS} }}
}}"""
GET = f"query($id: ID!) {{ interaction(id: $id) {{ {INTERACTION_FIELDS} }} }}"
TIMELINE = """query($id: ID!, $first: Int!, $after: String) {
    customer(id: $id) {
        interactions(first: $first, after: $after) {
            edges { cursor node { id occurredAt items { sku } } }
            pageInfo { hasNextPage endCursor }
        }
    }
}"""


def purchase(customer_id: str, **fields: object) -> dict:
    return {
        "customerId": customer_id,
        "type": "PURCHASE",
        "channel": "WEB",
        "amount": 3_000_000_000,
        "currency": "EUR",
        "metadata": {"cart": {"coupon": "SPRING"}},
        "items": [
            {"sku": "TEA-1", "name": "Green tea", "quantity": 2, "unitPrice": 999},
            {
                "sku": "MUG-1",
                "category": "kitchen",
                "quantity": 1,
                "unitPrice": 2_999_998_002,
                "unitCost": 1_999_998_002,
            },
        ],
        **fields,
    }


async def record(api, body: dict) -> dict:
    response = await api.post("/v1/interactions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_recorded_interaction_reads_the_same_over_rest_and_is_announced(
    api, gql, new_customer, assert_same_as_rest, announced
):
    customer = await new_customer()

    recorded = (await gql(RECORD, {"input": purchase(customer["id"], externalId="order-1")}))[
        "recordInteraction"
    ]

    assert recorded["amount"] == 3_000_000_000
    assert [i["sku"] for i in recorded["items"]] == ["TEA-1", "MUG-1"]
    rest = (await api.get(f"/v1/interactions/{recorded['id']}")).json()
    assert_same_as_rest(recorded, rest)
    assert_same_as_rest((await gql(GET, {"id": recorded["id"]}))["interaction"], rest)
    [event] = await announced("interaction.created")
    assert event["data"]["id"] == recorded["id"]


async def test_an_unknown_interaction_is_null(gql):
    assert await gql(GET, {"id": str(uuid.uuid4())}) == {"interaction": None}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": None}, "input"),
        ({"items": [{"sku": "TEA-1", "quantity": 0, "unitPrice": 1}]}, "items.0.quantity"),
        ({"amount": -1}, "amount"),
        ({"occurredAt": "2999-01-01T00:00:00+00:00"}, "occurredAt"),
        ({"customerId": "not-a-uuid"}, "customerId"),
    ],
)
async def test_invalid_interactions_name_the_graphql_field(
    api, gql_error, new_customer, change, field
):
    customer = await new_customer()

    error, _ = await gql_error(
        RECORD, {"input": purchase(customer["id"], **change)}, code="validation-error"
    )

    assert [e["field"] for e in error["extensions"]["errors"]] == [field]
    assert (await api.get("/v1/interactions")).json()["data"] == []


async def test_an_unknown_customer_or_a_repeated_external_id_is_refused(
    gql, gql_error, new_customer
):
    customer = await new_customer()
    await gql(RECORD, {"input": purchase(customer["id"], externalId="order-1")})

    unknown, _ = await gql_error(
        RECORD, {"input": purchase(str(uuid.uuid4()))}, code="validation-error"
    )
    repeated, _ = await gql_error(
        RECORD, {"input": purchase(customer["id"], externalId="order-1")}, code="conflict"
    )

    assert unknown["extensions"]["errors"][0]["field"] == "customerId"
    assert repeated["extensions"]["errors"][0]["field"] == "externalId"


async def test_concurrent_recordings_each_answer_and_share_commits(gql, new_customer, database_url):
    customer = await new_customer()

    answers = await asyncio.gather(
        *(gql(RECORD, {"input": purchase(customer["id"], externalId=f"o-{n}")}) for n in range(12))
    )

    recorded = {a["recordInteraction"]["externalId"]: a["recordInteraction"] for a in answers}
    assert sorted(recorded) == sorted(f"o-{n}" for n in range(12))
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("SELECT id, external_id, tx_id FROM interactions")
    finally:
        await conn.close()
    assert {r["external_id"]: str(r["id"]) for r in stored} == {
        key: answer["id"] for key, answer in recorded.items()
    }
    assert len({r["tx_id"] for r in stored}) < len(stored)


async def test_money_must_be_a_whole_number(api, new_customer):
    customer = await new_customer()

    response = await api.post(
        "/graphql",
        json={"query": RECORD, "variables": {"input": purchase(customer["id"], amount=12.5)}},
    )

    [error] = response.json()["errors"]
    assert "whole number" in error["message"]
    assert (await api.get("/v1/interactions")).json()["data"] == []


async def test_a_customers_timeline_is_newest_first_and_pages_like_rest(api, gql, new_customer):
    customer = await new_customer()
    cid = customer["id"]
    oldest = await record(api, {"customer_id": cid, "type": "email", "occurred_at": ago(days=3)})
    newest = await record(
        api,
        {
            "customer_id": cid,
            "type": "purchase",
            "amount": 100,
            "currency": "EUR",
            "items": [{"sku": "TEA-1", "quantity": 1, "unit_price": 100}],
            "occurred_at": ago(days=1),
        },
    )
    middle = await record(api, {"customer_id": cid, "type": "call", "occurred_at": ago(days=2)})

    first = (await gql(TIMELINE, {"id": cid, "first": 2}))["customer"]["interactions"]
    after = first["pageInfo"]["endCursor"]
    rest = (await gql(TIMELINE, {"id": cid, "first": 2, "after": after}))["customer"][
        "interactions"
    ]
    over_rest = (
        await api.get(f"/v1/customers/{cid}/interactions", params={"limit": 2, "cursor": after})
    ).json()

    assert [e["node"]["id"] for e in first["edges"]] == [newest["id"], middle["id"]]
    assert first["edges"][0]["node"]["items"] == [{"sku": "TEA-1"}]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in rest["edges"]] == [oldest["id"]]
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [i["id"] for i in over_rest["data"]] == [oldest["id"]]


async def test_timelines_in_a_customer_list_are_each_customers_own(api, gql, new_customer):
    quiet = await new_customer()
    busy = await new_customer()
    ids = [
        (
            await record(
                api, {"customer_id": busy["id"], "type": "note", "occurred_at": ago(hours=h)}
            )
        )["id"]
        for h in (3, 2, 1)
    ]
    query = """{ customers(sort: CREATED_AT) { edges { node { id
        interactions(first: 2) { edges { node { id } } pageInfo { hasNextPage } }
    } } } }"""

    edges = (await gql(query))["customers"]["edges"]

    assert [e["node"]["id"] for e in edges] == [quiet["id"], busy["id"]]
    assert edges[0]["node"]["interactions"] == {"edges": [], "pageInfo": {"hasNextPage": False}}
    busy_timeline = edges[1]["node"]["interactions"]
    assert [e["node"]["id"] for e in busy_timeline["edges"]] == [ids[2], ids[1]]
    assert busy_timeline["pageInfo"]["hasNextPage"] is True


@pytest.fixture
async def statements(app) -> list[str]:
    """The SQL the app sends from now on, logged by every connection of its pool."""
    sent: list[str] = []
    pool: asyncpg.Pool = app.state.db.pool
    # Holding every connection the pool may open makes it open them all, so none is missed.
    held = [await pool.acquire() for _ in range(pool.get_max_size())]
    for conn in held:
        conn.add_query_logger(lambda query: sent.append(query.query))
    for conn in held:
        await pool.release(conn)
    return sent


async def test_timelines_of_a_customer_page_cost_the_same_for_5_or_50_customers(
    api, gql, new_customer, statements
):
    query = """{ customers(first: 50) { edges { node {
        interactions(first: 5) { edges { node { id items { sku } } } }
    } } } }"""

    async def add_customers(count: int) -> None:
        for _ in range(count):
            customer = await new_customer()
            await record(api, {"customer_id": customer["id"], "type": "note"})
            await record(
                api,
                {
                    "customer_id": customer["id"],
                    "type": "purchase",
                    "amount": 100,
                    "currency": "EUR",
                    "items": [{"sku": "TEA-1", "quantity": 1, "unit_price": 100}],
                },
            )

    async def statements_for_query() -> tuple[int, list[dict]]:
        await gql(query)  # so the API key is verified (and cached) before counting
        await asyncio.sleep(0)  # loggers are called soon after each statement, not within it
        statements.clear()
        edges = (await gql(query))["customers"]["edges"]
        await asyncio.sleep(0)
        return len(statements), edges

    await add_customers(5)
    few, edges = await statements_for_query()
    await add_customers(45)
    many, more_edges = await statements_for_query()

    assert len(edges) == 5 and len(more_edges) == 50
    for edge in more_edges:
        timeline = [e["node"] for e in edge["node"]["interactions"]["edges"]]
        assert [i["items"] for i in timeline] == [[{"sku": "TEA-1"}], []]
    assert 0 < few == many, statements
