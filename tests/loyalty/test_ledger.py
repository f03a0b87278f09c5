"""The points ledger over HTTP: earning, spending, corrections, and books that always balance."""

import uuid

import asyncpg
import pytest

from support import assert_problem


async def test_earn_by_points_creates_an_entry_and_a_lot(
    create_program, enrol, write, account_of, books
) -> None:
    account = await enrol(await create_program())
    response = await write(account, "earn", points=120, reference="order-1")
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["kind"] == "earn" and entry["points"] == 120 and entry["seq"] == 1
    assert entry["balance_after"] == 120 and entry["reference"] == "order-1"
    assert entry["multiplier"] is None and entry["amount"] is None
    shown = await account_of(account)
    assert shown["balance"] == shown["available"] == shown["lifetime_earned"] == 120
    assert shown["locked"] == 0
    assert await books(account) == 120


@pytest.mark.parametrize(
    ("rounding", "amount", "rate", "points"),
    [
        ("floor", 1999, 1, 19),
        ("nearest", 1950, 1, 20),
        ("nearest", 1949, 1, 19),
        ("ceil", 1901, 1, 20),
        ("floor", 1000, 2.5, 25),
        ("floor", 999, 0.1, 0),
        ("ceil", 999, 0.1, 1),
    ],
)
async def test_earn_by_amount_converts_exactly_and_rounds_once(
    create_program, enrol, write, rounding, amount, rate, points
) -> None:
    account = await enrol(await create_program(rounding=rounding, points_per_unit=rate))
    response = await write(account, "earn", amount=amount, currency="EUR")
    if points == 0:
        body = assert_problem(response, 422, "validation-error")
        assert body["errors"][0]["field"] == "amount"
        return
    assert response.status_code == 201, response.text
    assert response.json()["points"] == points
    assert response.json()["amount"] == amount and response.json()["currency"] == "EUR"


async def test_currencies_without_cents_convert_in_major_units(
    create_program, enrol, write
) -> None:
    account = await enrol(await create_program(currency="JPY", points_per_unit=0.01))
    response = await write(account, "earn", amount=12345, currency="JPY")
    assert response.json()["points"] == 123


async def test_a_foreign_currency_is_refused_naming_the_field(create_program, enrol, write) -> None:
    account = await enrol(await create_program())
    response = await write(account, "earn", amount=1000, currency="USD")
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == "currency" and "EUR" in body["detail"]


@pytest.mark.parametrize(
    "body",
    [{}, {"points": 5, "amount": 100, "currency": "EUR"}, {"amount": 100}, {"points": 0},
     {"points": -3}, {"points": 5, "extra": 1}],
)  # fmt: skip
async def test_an_earn_needs_exactly_one_source(create_program, enrol, write, body) -> None:
    account = await enrol(await create_program())
    assert_problem(await write(account, "earn", **body), 422, "validation-error")


async def test_redeem_uses_the_oldest_lots_first(
    create_program, enrol, write, earned, backdate, sql, books
) -> None:
    account = await enrol(await create_program())
    first, second, third = [await earned(account, p) for p in (10, 20, 30)]
    for days, lot in ((3, first), (2, second), (1, third)):
        await backdate(lot, days)
    response = await write(account, "redeem", points=25)
    assert response.status_code == 201, response.text
    assert response.json()["points"] == -25 and response.json()["balance_after"] == 35
    remaining = {
        str(r["entry_id"]): r["remaining"]
        for r in await sql.fetch("SELECT entry_id, remaining FROM loyalty_lots")
    }
    assert remaining == {first["id"]: 0, second["id"]: 5, third["id"]: 30}
    assert await books(account) == 35


async def test_a_debit_walks_as_many_lots_as_it_needs_and_no_further(
    create_program, enrol, write, earned, sql, books
) -> None:
    account = await enrol(await create_program())
    lots = [(await earned(account, 1))["id"] for _ in range(90)]
    response = await write(account, "redeem", points=85)
    assert response.status_code == 201, response.text
    remaining = {
        str(r["entry_id"]): r["remaining"]
        for r in await sql.fetch("SELECT entry_id, remaining FROM loyalty_lots")
    }
    assert remaining == {lot: 0 if n < 85 else 1 for n, lot in enumerate(lots)}
    uses = await sql.fetchval(
        "SELECT count(*) FROM loyalty_lot_uses WHERE entry_id = $1",
        uuid.UUID(response.json()["id"]),
    )
    assert uses == 85
    body = assert_problem(await write(account, "redeem", points=10), 409, "insufficient-points")
    assert body["errors"][0]["message"] == "exceeds the 5 points available"
    assert await books(account) == 5


async def test_an_overdraw_is_a_409_that_changes_nothing(
    create_program, enrol, write, earned, api, account_of, books, sql
) -> None:
    program = await create_program()
    reward = await api.post(
        f"/v1/loyalty/programs/{program['id']}/rewards",
        json={"name": "Mug", "cost": 40, "stock": 3},
    )
    account = await enrol(program)
    await earned(account, 30)
    before = await account_of(account)
    response = await write(account, "redeem", points=31)
    body = assert_problem(response, 409, "insufficient-points")
    assert "30" in body["detail"] and "31" in body["detail"]
    response = await write(account, "redeem", reward_id=reward.json()["id"])
    assert_problem(response, 409, "insufficient-points")
    response = await write(account, "adjust", points=-31, reason="fix")
    assert_problem(response, 409, "insufficient-points")
    assert await account_of(account) == before
    entries = await api.get(f"/v1/loyalty/accounts/{account['id']}/entries")
    assert len(entries.json()["data"]) == 1
    stock = await api.get(f"/v1/loyalty/programs/{program['id']}/rewards/{reward.json()['id']}")
    assert stock.json()["stock"] == 3
    assert await sql.fetchval("SELECT count(*) FROM loyalty_lot_uses") == 0
    assert await books(account) == 30


async def test_locked_points_cannot_be_spent_until_their_lock_ends(
    create_program, enrol, write, earned, account_of, sql, books
) -> None:
    account = await enrol(await create_program(lock_days=14))
    entry = await earned(account, 50)
    shown = await account_of(account)
    assert (shown["available"], shown["locked"], shown["balance"]) == (0, 50, 50)
    assert_problem(await write(account, "redeem", points=1), 409, "insufficient-points")
    await sql.execute(
        "UPDATE loyalty_lots SET available_at = now() - interval '1 second' WHERE entry_id = $1",
        uuid.UUID(entry["id"]),
    )
    assert (await write(account, "redeem", points=50)).status_code == 201
    assert await books(account) == 0


async def test_adjustments_need_a_reason_and_credits_are_available_at_once(
    create_program, enrol, write, account_of, books
) -> None:
    account = await enrol(await create_program(lock_days=30))
    for body in ({"points": 10}, {"points": 10, "reason": "  "}, {"points": 0, "reason": "x"}):
        response = await write(account, "adjust", **body)
        assert_problem(response, 422, "validation-error")
    response = await write(account, "adjust", points=10, reason="goodwill")
    assert response.status_code == 201 and response.json()["reason"] == "goodwill"
    assert (await account_of(account))["available"] == 10
    response = await write(account, "adjust", points=-4, reason="duplicate credit")
    assert response.status_code == 201 and response.json()["balance_after"] == 6
    assert (await account_of(account))["lifetime_earned"] == 0
    assert await books(account) == 6


async def test_rewards_take_stock_until_none_is_left(
    create_program, enrol, write, earned, api, books
) -> None:
    program = await create_program()
    created = await api.post(
        f"/v1/loyalty/programs/{program['id']}/rewards",
        json={"name": "Tote bag", "cost": 10, "stock": 2},
    )
    assert created.status_code == 201, created.text
    reward = created.json()
    account = await enrol(program)
    await earned(account, 100)
    response = await write(account, "redeem", reward_id=reward["id"], quantity=2)
    assert response.status_code == 201, response.text
    assert response.json()["points"] == -20 and response.json()["reward_quantity"] == 2
    response = await write(account, "redeem", reward_id=reward["id"])
    body = assert_problem(response, 409, "conflict")
    assert "0" in body["detail"]
    url = f"/v1/loyalty/programs/{program['id']}/rewards/{reward['id']}"
    assert (await api.get(url)).json()["stock"] == 0
    topped = await api.patch(url, json={"add_stock": 5})
    assert topped.status_code == 200 and topped.json()["stock"] == 5
    assert (await write(account, "redeem", reward_id=reward["id"])).status_code == 201
    assert await books(account) == 70


async def test_a_reward_of_another_programme_or_inactive_is_refused(
    create_program, enrol, write, earned, api
) -> None:
    program, other = await create_program(), await create_program()
    foreign = await api.post(
        f"/v1/loyalty/programs/{other['id']}/rewards", json={"name": "x", "cost": 1}
    )
    inactive = await api.post(
        f"/v1/loyalty/programs/{program['id']}/rewards",
        json={"name": "y", "cost": 1, "active": False},
    )
    account = await enrol(program)
    await earned(account, 10)
    for reward in (foreign, inactive):
        response = await write(account, "redeem", reward_id=reward.json()["id"])
        assert (
            assert_problem(response, 422, "validation-error")["errors"][0]["field"] == "reward_id"
        )


async def test_the_ledger_is_append_only_in_the_database(
    create_program, enrol, earned, sql
) -> None:
    account = await enrol(await create_program())
    entry = await earned(account, 5)
    for statement in (
        "UPDATE loyalty_entries SET points = 500 WHERE id = $1",
        "DELETE FROM loyalty_entries WHERE id = $1",
    ):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await sql.execute(statement, uuid.UUID(entry["id"]))


async def test_the_database_refuses_a_negative_balance(create_program, enrol, earned, sql) -> None:
    account = await enrol(await create_program())
    await earned(account, 5)
    with pytest.raises(asyncpg.CheckViolationError):
        await sql.execute(
            "UPDATE loyalty_accounts SET balance = -1 WHERE id = $1", uuid.UUID(account["id"])
        )


async def test_entries_list_newest_first_with_cursors(create_program, enrol, earned, api) -> None:
    account = await enrol(await create_program())
    for points in range(1, 6):
        await earned(account, points)
    url = f"/v1/loyalty/accounts/{account['id']}/entries"
    first = (await api.get(url, params={"limit": 3})).json()
    assert [e["seq"] for e in first["data"]] == [5, 4, 3] and first["has_more"]
    rest = (await api.get(url, params={"limit": 3, "cursor": first["next_cursor"]})).json()
    assert [e["seq"] for e in rest["data"]] == [2, 1] and not rest["has_more"]
    one = await api.get(f"/v1/loyalty/entries/{first['data'][0]['id']}")
    assert one.json() == first["data"][0]
    assert_problem(await api.get(f"/v1/loyalty/entries/{uuid.uuid4()}"), 404, "not-found")


async def test_writes_to_unknown_accounts_are_404(api) -> None:
    response = await api.post(f"/v1/loyalty/accounts/{uuid.uuid4()}/earn", json={"points": 1})
    assert_problem(response, 404, "not-found")


async def test_an_idempotency_key_never_makes_a_second_entry(
    create_program, enrol, write, api, sql, books
) -> None:
    account = await enrol(await create_program())
    headers = {"Idempotency-Key": "earn-1"}
    first = await write(account, "earn", headers=headers, points=7)
    again = await write(account, "earn", headers=headers, points=7)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    # Even once the stored response is gone, the ledger itself refuses a second entry.
    await sql.execute("DELETE FROM idempotency_keys")
    later = await write(account, "earn", headers=headers, points=7)
    assert later.status_code == 200 and later.headers["idempotent-replayed"] == "true"
    assert later.json()["id"] == first.json()["id"]
    different = await write(account, "earn", headers=headers, points=8)
    assert_problem(different, 422, "idempotency-key-reused")
    assert await books(account) == 7
