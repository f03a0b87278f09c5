"""Programmes, their rewards and enrolment: CRUD, validation, conditional writes, scopes."""

import uuid

import pytest

from support import assert_problem, eventually_events


async def test_programme_crud_with_etags(api, create_program) -> None:
    program = await create_program(
        name="Club", points_per_unit=2.5, rounding="nearest", expiry_days=365,
        tiers=[{"name": "Gold", "threshold": 500, "multiplier": 1.25}],
    )  # fmt: skip
    assert program["points_per_unit"] == 2.5 and program["tiers"][0]["multiplier"] == 1.25
    assert program["downgrade"] == "never" and program["lock_days"] == 0
    url = f"/v1/loyalty/programs/{program['id']}"
    got = await api.get(url)
    assert got.json() == program and got.headers["etag"] == '"1"'
    stale = await api.patch(url, json={"lock_days": 3}, headers={"If-Match": '"7"'})
    assert_problem(stale, 412, "precondition-failed")
    patched = await api.patch(url, json={"lock_days": 3}, headers={"If-Match": '"1"'})
    assert patched.status_code == 200 and patched.json()["lock_days"] == 3
    assert patched.headers["etag"] == '"2"'
    listed = (await api.get("/v1/loyalty/programs")).json()
    assert [p["id"] for p in listed["data"]] == [program["id"]]
    duplicate = await api.post(
        "/v1/loyalty/programs", json={"name": "CLUB", "currency": "EUR", "points_per_unit": 1}
    )
    assert assert_problem(duplicate, 409, "conflict")["errors"][0]["field"] == "name"
    assert (await api.delete(url)).status_code == 204
    assert_problem(await api.get(url), 404, "not-found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"points_per_unit": 0}, "points_per_unit"),
        ({"currency": "XYZ"}, "currency"),
        ({"rounding": "up"}, "rounding"),
        ({"lock_days": -1}, "lock_days"),
        ({"expiry_days": 0}, "expiry_days"),
        ({"tiers": [{"name": "A", "threshold": 10}, {"name": "B", "threshold": 10}]}, "body"),
        ({"tiers": [{"name": "A", "threshold": 1}, {"name": "a", "threshold": 5}]}, "body"),
        ({"downgrade": "reevaluate"}, "body"),
        ({"downgrade_every_days": 30}, "body"),
    ],
)
async def test_invalid_programmes_are_refused_naming_the_field(api, body, field) -> None:
    full = {"name": "x", "currency": "EUR", "points_per_unit": 1, **body}
    problem = assert_problem(await api.post("/v1/loyalty/programs", json=full), 422,
                             "validation-error")  # fmt: skip
    assert problem["errors"][0]["field"] == field, problem


async def test_patches_are_validated_against_the_whole_programme(api, create_program) -> None:
    program = await create_program()
    url = f"/v1/loyalty/programs/{program['id']}"
    bad = await api.patch(url, json={"downgrade": "reevaluate"})
    assert assert_problem(bad, 422, "validation-error")["errors"][0]["field"] == (
        "downgrade_every_days"
    )
    ok = await api.patch(url, json={"downgrade": "reevaluate", "downgrade_every_days": 30})
    assert ok.status_code == 200
    back = await api.patch(url, json={"downgrade": "never"})
    assert back.json()["downgrade_every_days"] is None
    nulled = await api.patch(url, json={"currency": None})
    assert assert_problem(nulled, 422, "validation-error")["errors"][0]["field"] == "currency"


async def test_a_programme_with_accounts_keeps_its_currency_and_cannot_go(
    api, create_program, enrol
) -> None:
    program = await create_program()
    await enrol(program)
    url = f"/v1/loyalty/programs/{program['id']}"
    assert_problem(await api.patch(url, json={"currency": "USD"}), 409, "conflict")
    assert (await api.patch(url, json={"name": "renamed"})).status_code == 200
    assert_problem(await api.delete(url), 409, "conflict")


async def test_enrolment_is_idempotent_and_for_live_customers_only(
    api, create_program, new_customer
) -> None:
    program = await create_program()
    customer = await new_customer()
    body = {"customer_id": customer["id"], "program_id": program["id"]}
    first = await api.post("/v1/loyalty/accounts", json=body)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/loyalty/accounts", json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    listed = await api.get("/v1/loyalty/accounts", params={"customer_id": customer["id"]})
    assert [a["id"] for a in listed.json()["data"]] == [first.json()["id"]]
    unknown = await api.post(
        "/v1/loyalty/accounts", json={**body, "customer_id": str(uuid.uuid4())}
    )
    assert assert_problem(unknown, 422, "validation-error")["errors"][0]["field"] == "customer_id"
    assert (await api.delete(f"/v1/customers/{customer['id']}")).status_code == 204
    other = await create_program()
    deleted = await api.post("/v1/loyalty/accounts", json={**body, "program_id": other["id"]})
    assert_problem(deleted, 422, "validation-error")
    nowhere = await api.post("/v1/loyalty/accounts", json={**body, "program_id": str(uuid.uuid4())})
    assert_problem(nowhere, 422, "validation-error")


async def test_rewards_crud(api, create_program) -> None:
    program = await create_program()
    base = f"/v1/loyalty/programs/{program['id']}/rewards"
    created = await api.post(base, json={"name": "Mug", "cost": 100})
    assert created.status_code == 201 and created.json()["stock"] is None
    url = f"{base}/{created.json()['id']}"
    assert (await api.get(url)).json() == created.json()
    patched = await api.patch(url, json={"stock": 3, "active": False}, headers={"If-Match": '"1"'})
    assert patched.json()["stock"] == 3 and not patched.json()["active"]
    both = await api.patch(url, json={"stock": 3, "add_stock": 1})
    assert_problem(both, 422, "validation-error")
    assert [r["id"] for r in (await api.get(base)).json()["data"]] == [created.json()["id"]]
    assert_problem(await api.post(base, json={"name": "x", "cost": 0}), 422, "validation-error")
    missing = f"/v1/loyalty/programs/{uuid.uuid4()}/rewards"
    assert_problem(await api.post(missing, json={"name": "x", "cost": 1}), 404, "not-found")


async def test_a_read_key_reads_but_cannot_write(api, key_for, create_program, enrol) -> None:
    account = await enrol(await create_program())
    reader = await key_for("loyalty:read")
    assert (
        await api.get(f"/v1/loyalty/accounts/{account['id']}", headers=reader)
    ).status_code == 200
    denied = await api.post(
        f"/v1/loyalty/accounts/{account['id']}/earn", json={"points": 1}, headers=reader
    )
    assert "loyalty:write" in assert_problem(denied, 403, "forbidden")["detail"]
    writer = await key_for("loyalty:write")
    allowed = await api.post(
        f"/v1/loyalty/accounts/{account['id']}/earn", json={"points": 1}, headers=writer
    )
    assert allowed.status_code == 201 and allowed.json()["actor_key_id"] is not None


async def test_every_ledger_change_is_announced(api, create_program, enrol, earned, write) -> None:
    program = await create_program()
    reward = await api.post(
        f"/v1/loyalty/programs/{program['id']}/rewards", json={"name": "Cap", "cost": 5}
    )
    account = await enrol(program)
    entry = await earned(account, 20)
    await write(account, "redeem", reward_id=reward.json()["id"])
    await write(account, "adjust", points=1, reason="x")
    await api.post(f"/v1/loyalty/entries/{entry['id']}/reverse", json={"reason": "x", "points": 1})
    for event_type, points in [
        ("loyalty.points_earned", 20),
        ("loyalty.points_redeemed", -5),
        ("loyalty.points_adjusted", 1),
        ("loyalty.points_reversed", -1),
    ]:
        [event] = await eventually_events(api, 1, type=event_type)
        assert event["data"]["points"] == points and event["customer_id"] == account["customer_id"]
    [bought] = await eventually_events(api, 1, type="loyalty.reward_redeemed")
    assert bought["data"]["reward_name"] == "Cap" and bought["data"]["quantity"] == 1
