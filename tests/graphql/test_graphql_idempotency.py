"""idempotencyKey: a mutation retried with one key takes effect once, as REST's Idempotency-Key."""

import asyncio

import pytest

from crm_api.graphql.schema import schema
from support import eventually_events

CREATE = """mutation($input: CustomerInput!, $key: String) {
    createCustomer(input: $input, idempotencyKey: $key) { id email version }
}"""
CUSTOMERS = "{ customers { edges { node { id } } } }"


async def _post(api, query: str, variables: dict, headers: dict | None = None) -> dict:  # type: ignore[no-untyped-def]
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


MUTATIONS = schema.get_type_by_name("Mutation").fields


@pytest.mark.parametrize("field", MUTATIONS, ids=[f.python_name for f in MUTATIONS])
def test_every_mutation_takes_an_idempotency_key(field) -> None:
    keys = [a for a in field.arguments if a.python_name == "idempotency_key"]
    assert keys, f"Mutation.{field.python_name} takes no idempotencyKey: see graphql/idempotency.py"
    assert "Idempotency-Key" in keys[0].description


async def test_a_retry_answers_the_first_result_and_changes_nothing(api, gql):
    variables = {"input": {"email": "ada@example.com"}, "key": "create-ada"}

    first = await gql(CREATE, variables)
    retry = await gql(CREATE, variables)

    assert retry == first
    assert len((await gql(CUSTOMERS))["customers"]["edges"]) == 1
    assert len(await eventually_events(api, 1, type="customer.created")) == 1


async def test_a_replay_selects_its_own_fields_and_literals_equal_variables(gql):
    first = await gql(CREATE, {"input": {"email": "ada@example.com"}, "key": "k-1"})

    inline = """mutation {
        createCustomer(idempotencyKey: "k-1", input: {email: "ada@example.com"}) {
            id lastName createdAt
        }
    }"""
    replayed = (await gql(inline))["createCustomer"]

    assert replayed["id"] == first["createCustomer"]["id"]
    assert set(replayed) == {"id", "lastName", "createdAt"}


async def test_the_key_with_other_arguments_is_refused(gql, gql_error):
    await gql(CREATE, {"input": {"email": "a@example.com"}, "key": "k-1"})

    error, _ = await gql_error(
        CREATE, {"input": {"email": "b@example.com"}, "key": "k-1"}, code="idempotency-key-reused"
    )

    assert error["extensions"]["status"] == 422
    assert [e["field"] for e in error["extensions"]["errors"]] == ["idempotencyKey"]
    assert len((await gql(CUSTOMERS))["customers"]["edges"]) == 1


async def test_the_key_with_another_mutation_is_refused(gql, gql_error):
    created = await gql(CREATE, {"input": {"email": "a@example.com"}, "key": "k-1"})
    rename = """mutation($id: ID!) {
        updateCustomer(id: $id, input: {firstName: "Ada"}, idempotencyKey: "k-1") { id }
    }"""

    await gql_error(rename, {"id": created["createCustomer"]["id"]}, code="idempotency-key-reused")


async def test_keys_are_shared_with_rest(api, gql_error):
    rest = await api.post(
        "/v1/customers", json={"email": "a@example.com"}, headers={"Idempotency-Key": "k-1"}
    )
    assert rest.status_code == 201

    await gql_error(
        CREATE, {"input": {"email": "a@example.com"}, "key": "k-1"}, code="idempotency-key-reused"
    )


async def test_keys_belong_to_one_api_key(gql, key_for):
    writer = await key_for("customers:write")
    variables = {"input": {"email": "a@example.com"}, "key": "shared-name"}

    mine = await gql(CREATE, variables)
    theirs = await gql(CREATE, {**variables, "input": {"email": "b@example.com"}}, headers=writer)

    assert mine["createCustomer"]["id"] != theirs["createCustomer"]["id"]


async def test_a_failed_mutation_frees_its_key(gql, gql_error, new_customer):
    await new_customer(email="taken@example.com")
    taken = {"input": {"email": "taken@example.com"}, "key": "after-fix"}

    await gql_error(CREATE, taken, code="conflict")
    await gql_error(CREATE, taken, code="conflict")  # run again, not a stored answer
    fixed = await gql(CREATE, {"input": {"email": "free@example.com"}, "key": "after-fix"})

    assert fixed["createCustomer"]["email"] == "free@example.com"


async def test_concurrent_duplicates_have_exactly_one_effect(api, gql):
    variables = {"input": {"email": "burst@example.com"}, "key": "burst"}

    bodies = await asyncio.gather(*(_post(api, CREATE, variables) for _ in range(10)))

    answered = {b["data"]["createCustomer"]["id"] for b in bodies if b.get("data")}
    refused = [b["errors"][0]["extensions"] for b in bodies if b.get("errors")]
    assert len(answered) == 1
    assert len(refused) < 10
    assert {(e["code"], e["status"]) for e in refused} <= {("idempotency-key-in-use", 409)}
    assert len((await gql(CUSTOMERS))["customers"]["edges"]) == 1
    assert len(await eventually_events(api, 1, type="customer.created")) == 1


async def test_a_malformed_key_is_a_validation_error(gql, gql_error):
    error, _ = await gql_error(
        CREATE, {"input": {"email": "a@example.com"}, "key": "x" * 256}, code="validation-error"
    )

    assert [e["field"] for e in error["extensions"]["errors"]] == ["idempotencyKey"]
    assert (await gql(CUSTOMERS))["customers"]["edges"] == []


async def test_a_replayed_update_is_not_applied_again(api, gql, new_customer):
    customer = await new_customer()
    rename = """mutation($id: ID!, $name: String!) {
        updateCustomer(id: $id, input: {firstName: $name}, idempotencyKey: "rename-1") {
            firstName version
        }
    }"""
    variables = {"id": customer["id"], "name": "Once"}

    first = await gql(rename, variables)
    await api.patch(f"/v1/customers/{customer['id']}", json={"first_name": "Meanwhile"})
    retry = await gql(rename, variables)

    assert retry == first == {"updateCustomer": {"firstName": "Once", "version": 2}}
    assert (await api.get(f"/v1/customers/{customer['id']}")).json()["first_name"] == "Meanwhile"


async def test_answers_of_every_shape_replay(api, gql, new_customer):
    """Tuples (upsert, transition), nothing (delete) and counts (replay) are stored too."""
    customer = await new_customer()
    calls = [
        """mutation { upsertCustomer(externalId: "crm-1", input: {firstName: "Ada"},
                      idempotencyKey: "a") { created customer { id version } } }""",
        f"""mutation {{ transitionCustomer(customerId: "{customer["id"]}", to: "active",
                        idempotencyKey: "b") {{ id toStage }} }}""",
        """mutation { createSegment(input: {name: "Static", kind: STATIC},
                      idempotencyKey: "c") { id } }""",
    ]
    for call in calls:
        assert await gql(call) == await gql(call)
    segment_id = (await gql(calls[2]))["createSegment"]["id"]
    delete = f'mutation {{ deleteSegment(id: "{segment_id}", idempotencyKey: "d") }}'
    assert await gql(delete) == await gql(delete) == {"deleteSegment": segment_id}

    rest = await api.get(f"/v1/customers/{customer['id']}/lifecycle/transitions")
    assert len(rest.json()["data"]) == 1
    assert (await api.get(f"/v1/segments/{segment_id}")).status_code == 404


EARN = """mutation($accountId: ID!, $points: Points!) {
    earnLoyaltyPoints(accountId: $accountId, input: {points: $points}, idempotencyKey: "earn-1") {
        id balanceAfter
    }
}"""


async def test_ledger_writes_refuse_a_reused_key_as_rest_does(api, gql, gql_error, new_customer):
    program = await api.post(
        "/v1/loyalty/programs", json={"name": "Club", "currency": "EUR", "points_per_unit": 1}
    )
    customer = await new_customer()
    account = await api.post(
        "/v1/loyalty/accounts",
        json={"customer_id": customer["id"], "program_id": program.json()["id"]},
    )
    variables = {"accountId": account.json()["id"], "points": 10}

    first = await gql(EARN, variables)
    assert await gql(EARN, variables) == first
    await gql_error(EARN, {**variables, "points": 20}, code="idempotency-key-reused")

    shown = await api.get(f"/v1/loyalty/accounts/{variables['accountId']}")
    assert shown.json()["balance"] == 10
