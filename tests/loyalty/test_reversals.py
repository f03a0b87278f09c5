"""Reversals: credits taken back, debits given back to their lots, never more than once."""

import uuid

from support import assert_problem


async def _reverse(api, entry: dict, **body: object):
    return await api.post(f"/v1/loyalty/entries/{entry['id']}/reverse", json=body)


async def test_reversing_an_earn_takes_its_points_and_qualification_back(
    api, create_program, enrol, earned, account_of, books
) -> None:
    account = await enrol(await create_program())
    entry = await earned(account, 40)
    response = await _reverse(api, entry, reason="order cancelled")
    assert response.status_code == 201, response.text
    reversal = response.json()
    assert reversal["kind"] == "reverse" and reversal["points"] == -40
    assert reversal["reverses_id"] == entry["id"] and reversal["qualifying_points"] == -40
    shown = await account_of(account)
    assert shown["balance"] == 0 and shown["lifetime_earned"] == 0
    assert shown["qualifying_points"] == 0
    assert await books(account) == 0


async def test_reversals_can_be_partial_but_never_exceed_the_entry(
    api, create_program, enrol, earned, books
) -> None:
    account = await enrol(await create_program())
    entry = await earned(account, 40)
    assert (await _reverse(api, entry, reason="partial", points=15)).json()["points"] == -15
    too_much = await _reverse(api, entry, reason="again", points=26)
    assert "25" in assert_problem(too_much, 409, "conflict")["detail"]
    assert (await _reverse(api, entry, reason="the rest")).json()["points"] == -25
    assert_problem(await _reverse(api, entry, reason="once more"), 409, "conflict")
    assert await books(account) == 0


async def test_a_spent_credit_cannot_be_reversed_into_debt(
    api, create_program, enrol, earned, write, books
) -> None:
    account = await enrol(await create_program())
    entry = await earned(account, 40)
    assert (await write(account, "redeem", points=30)).status_code == 201
    response = await _reverse(api, entry, reason="cancelled")
    assert_problem(response, 409, "insufficient-points")
    assert (await _reverse(api, entry, reason="what is left", points=10)).status_code == 201
    assert await books(account) == 0


async def test_reversing_a_redemption_refills_the_lots_it_used(
    api, create_program, enrol, earned, write, backdate, sql, books
) -> None:
    account = await enrol(await create_program(expiry_days=365))
    old, new = await earned(account, 10), await earned(account, 10)
    await backdate(old, 2)
    redeemed = (await write(account, "redeem", points=15)).json()
    partial = await _reverse(api, redeemed, reason="one item back", points=4)
    assert partial.status_code == 201 and partial.json()["points"] == 4
    remaining = {
        str(r["entry_id"]): r["remaining"]
        for r in await sql.fetch("SELECT entry_id, remaining FROM loyalty_lots")
    }
    # The latest lot used is refilled first: it expires last.
    assert remaining == {old["id"]: 0, new["id"]: 9}
    assert (await _reverse(api, redeemed, reason="all back")).json()["points"] == 11
    remaining = {
        str(r["entry_id"]): r["remaining"]
        for r in await sql.fetch("SELECT entry_id, remaining FROM loyalty_lots")
    }
    assert remaining == {old["id"]: 10, new["id"]: 10}
    assert await books(account) == 20


async def test_reversing_a_reward_redemption_returns_its_stock(
    api, create_program, enrol, earned, write, books
) -> None:
    program = await create_program()
    reward = (
        await api.post(
            f"/v1/loyalty/programs/{program['id']}/rewards",
            json={"name": "Voucher", "cost": 10, "stock": 5},
        )
    ).json()
    url = f"/v1/loyalty/programs/{program['id']}/rewards/{reward['id']}"
    account = await enrol(program)
    await earned(account, 50)
    redeemed = (await write(account, "redeem", reward_id=reward["id"], quantity=3)).json()
    assert (await api.get(url)).json()["stock"] == 2
    await _reverse(api, redeemed, reason="one returned", points=10)
    assert (await api.get(url)).json()["stock"] == 3
    await _reverse(api, redeemed, reason="all returned")
    assert (await api.get(url)).json()["stock"] == 5
    assert await books(account) == 50


async def test_expiries_and_reversals_are_not_reversible(
    api, create_program, enrol, earned, books
) -> None:
    account = await enrol(await create_program())
    entry = await earned(account, 10)
    reversal = (await _reverse(api, entry, reason="x", points=3)).json()
    assert_problem(await _reverse(api, reversal, reason="undo"), 409, "conflict")
    assert_problem(await _reverse(api, {"id": str(uuid.uuid4())}, reason="x"), 404, "not-found")
    missing_reason = await _reverse(api, entry)
    assert missing_reason.json()["errors"][0]["field"] == "reason"
    assert await books(account) == 7
