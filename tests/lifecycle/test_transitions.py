"""Manual transitions: along the graph's edges only, one at a time per customer, each
changing the customer's ETag, kept in a history and announced."""

import asyncio

import httpx

from crm_api.app import create_app
from live import serve, settings_for
from support import assert_problem, eventually_events


async def test_an_allowed_move_changes_the_customer_and_is_kept(
    api, new_customer, move, history, admin_key
):
    customer = await new_customer()
    etag = (await api.get(f"/v1/customers/{customer['id']}")).headers["etag"]

    response = await move(customer["id"], "onboarding", "signed the contract")
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["from_stage"], made["to_stage"]) == ("prospect", "onboarding")
    assert made["reason"] == "signed the contract"
    assert made["automatic"] is False and made["rule"] is None
    assert made["actor_key_id"]
    location = await api.get(response.headers["location"])
    assert location.status_code == 200 and location.json() == made

    after = await api.get(f"/v1/customers/{customer['id']}")
    assert after.json()["lifecycle_stage"] == "onboarding"
    assert after.json()["version"] == customer["version"] + 1
    assert after.headers["etag"] != etag
    assert response.headers["etag"] == after.headers["etag"]
    assert await history(customer["id"]) == [made]

    keys = (await api.get("/v1/api-keys")).json()["data"]
    assert made["actor_key_id"] in {k["id"] for k in keys}

    [event] = await eventually_events(api, 1, type="lifecycle.transitioned")
    assert event["customer_id"] == customer["id"]
    assert event["data"] == made

    lifecycle = (await api.get(f"/v1/customers/{customer['id']}/lifecycle")).json()
    assert lifecycle["stage"] == "onboarding"
    assert lifecycle["since"] == made["occurred_at"]
    assert lifecycle["allowed"] == ["active", "at_risk"]


async def test_history_is_newest_first_in_pages(api, new_customer, moved_to):
    customer = await new_customer()
    await moved_to(customer["id"], "active", "at_risk", "active", "loyal")
    path = f"/v1/customers/{customer['id']}/lifecycle/transitions"
    first = (await api.get(path, params={"limit": 3})).json()
    assert [t["to_stage"] for t in first["data"]] == ["loyal", "active", "at_risk"]
    assert first["has_more"]
    rest = (await api.get(path, params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [t["to_stage"] for t in rest["data"]] == ["active"]
    assert not rest["has_more"]


async def test_a_move_off_the_graph_names_the_allowed_targets(api, new_customer, move, history):
    customer = await new_customer()
    problem = assert_problem(await move(customer["id"], "churned"), 409, "conflict")
    assert problem["current"] == "prospect"
    assert problem["allowed"] == ["onboarding", "active"]
    assert "onboarding, active" in problem["detail"]

    same = assert_problem(await move(customer["id"], "prospect"), 409, "conflict")
    assert "already" in same["detail"]
    unknown = assert_problem(await move(customer["id"], "nirvana"), 422, "validation-error")
    assert unknown["errors"][0]["field"] == "to"
    assert await history(customer["id"]) == []
    assert (await api.get(f"/v1/customers/{customer['id']}")).json()["version"] == 1


async def test_if_match_compares_with_the_customers_etag(api, new_customer, move):
    customer = await new_customer()
    assert_problem(
        await move(customer["id"], "active", **{"If-Match": '"7"'}), 412, "precondition-failed"
    )
    ok = await move(customer["id"], "active", **{"If-Match": f'"{customer["version"]}"'})
    assert ok.status_code == 201, ok.text


async def test_unknown_and_deleted_customers_are_404(api, new_customer, move):
    assert_problem(await move("0190a8c0-0000-7000-8000-000000000000", "active"), 404, "not-found")
    customer = await new_customer()
    await api.delete(f"/v1/customers/{customer['id']}")
    assert_problem(await move(customer["id"], "active"), 404, "not-found")
    path = f"/v1/customers/{customer['id']}/lifecycle/transitions"
    assert_problem(await api.get(path), 404, "not-found")


async def test_scopes(api, new_customer, key_for):
    customer = await new_customer()
    path = f"/v1/customers/{customer['id']}/lifecycle/transitions"
    reader = await key_for("lifecycle:read")
    assert (await api.get(path, headers=reader)).status_code == 200
    assert_problem(await api.post(path, json={"to": "active"}, headers=reader), 403, "forbidden")
    writer = await key_for("lifecycle:write")
    assert (await api.post(path, json={"to": "active"}, headers=writer)).status_code == 201


async def test_concurrent_moves_of_one_customer_serialise(
    database_url, admin_key, new_customer, moved_to, history
):
    customer = await new_customer()
    await moved_to(customer["id"], "active")
    path = f"/v1/customers/{customer['id']}/lifecycle/transitions"
    with serve(create_app(settings_for(database_url))) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
        ) as http:
            answers = await asyncio.gather(
                *(http.post(path, json={"to": "at_risk"}) for _ in range(20))
            )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, [a.text for a in answers if a.status_code != 409]
    assert [t["to_stage"] for t in await history(customer["id"])] == ["at_risk", "active"]
