"""Idempotency-Key: one key, one effect, whatever the retries."""

import asyncio

from support import assert_problem, eventually_events


async def test_a_retry_replays_the_stored_response_and_creates_nothing_new(api):
    headers = {"Idempotency-Key": "create-ada-1"}
    body = {"email": "ada@example.com", "first_name": "Ada"}

    first = await api.post("/v1/customers", json=body, headers=headers)
    retry = await api.post("/v1/customers", json=body, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["etag"] == first.headers["etag"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(await eventually_events(api, 1, type="customer.created")) == 1


async def test_the_same_key_with_another_body_is_refused(api):
    headers = {"Idempotency-Key": "k-1"}
    await api.post("/v1/customers", json={"email": "a@example.com"}, headers=headers)

    response = await api.post("/v1/customers", json={"email": "b@example.com"}, headers=headers)

    body = assert_problem(response, 422, "idempotency-key-reused")
    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert body["errors"][0]["location"] == "header"
    assert len((await api.get("/v1/customers")).json()["data"]) == 1


async def test_concurrent_duplicates_have_exactly_one_effect(api):
    headers = {"Idempotency-Key": "burst"}
    body = {"email": "burst@example.com"}

    responses = await asyncio.gather(
        *(api.post("/v1/customers", json=body, headers=headers) for _ in range(10))
    )

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for conflict in (r for r in responses if r.status_code == 409):
        assert_problem(conflict, 409, "idempotency-key-in-use")
        assert conflict.headers["retry-after"] == "1"
    assert len(await eventually_events(api, 1, type="customer.created")) == 1


async def test_a_failed_request_frees_its_key(api, new_customer):
    await new_customer(email="taken@example.com")
    headers = {"Idempotency-Key": "retry-after-fix"}

    failed = await api.post("/v1/customers", json={"email": "taken@example.com"}, headers=headers)
    assert failed.status_code == 409
    again = await api.post("/v1/customers", json={"email": "taken@example.com"}, headers=headers)
    assert again.status_code == 409  # re-executed, not a replay of a stored answer
    assert "idempotent-replayed" not in again.headers
    fixed = await api.post("/v1/customers", json={"email": "free@example.com"}, headers=headers)
    assert fixed.status_code == 201


async def test_keys_belong_to_one_api_key(api, key_for):
    writer = await key_for("customers:write")
    headers = {"Idempotency-Key": "shared-name"}

    mine = await api.post("/v1/customers", json={"email": "m@example.com"}, headers=headers)
    theirs = await api.post(
        "/v1/customers", json={"email": "t@example.com"}, headers={**headers, **writer}
    )

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


async def test_malformed_keys_are_refused(api):
    response = await api.post(
        "/v1/customers", json={"email": "x@example.com"}, headers={"Idempotency-Key": "x" * 256}
    )
    assert assert_problem(response, 422, "validation-error")["errors"][0]["location"] == "header"


async def test_patch_put_and_delete_honour_the_key_too(api, new_customer):
    customer = await new_customer()
    url = f"/v1/customers/{customer['id']}"
    headers = {"Idempotency-Key": "rename-1"}

    first = await api.patch(url, json={"first_name": "Once"}, headers=headers)
    await api.patch(url, json={"first_name": "Meanwhile"})
    retry = await api.patch(url, json={"first_name": "Once"}, headers=headers)

    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == first.json()
    assert (await api.get(url)).json()["first_name"] == "Meanwhile"  # not applied twice
