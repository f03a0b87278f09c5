"""Automatic transitions: rules an admin switches on move customers on the triggering
write, after a churn run and in the worker; recorded as automatic with the rule's name."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from crm_api.core.db import Database, asyncpg_dsn
from crm_api.lifecycle import rules
from live import settings_for
from support import assert_problem, eventually_events

NDJSON = {"Content-Type": "application/x-ndjson"}


async def eventually(check, within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition never held")


async def import_purchases(api, *customer_ids: str, days_ago: float = 1) -> None:
    at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    body = b"".join(
        orjson.dumps(
            {"customer_id": c, "type": "purchase", "amount": 500, "currency": "EUR",
             "occurred_at": at}
        ) + b"\n"
        for c in customer_ids
    )  # fmt: skip
    response = await api.post("/v1/interactions/import", content=body, headers=NDJSON)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == len(customer_ids), response.text


async def test_rules_start_switched_off_with_their_defaults(api, key_for):
    response = await api.get("/v1/lifecycle/rules", headers=await key_for("lifecycle:read"))
    assert response.status_code == 200, response.text
    rules = {r["name"]: r for r in response.json()}
    assert set(rules) == {"first_purchase", "churn_risk", "inactivity", "win_back"}
    assert not any(r["enabled"] for r in rules.values())
    assert rules["first_purchase"]["settings"] == {"target": "onboarding"}
    assert rules["first_purchase"]["to_stage"] == "onboarding"
    assert rules["churn_risk"]["settings"] == {"threshold": None}
    assert rules["churn_risk"]["from_stages"] == ["active", "loyal"]
    assert rules["inactivity"]["settings"] == {"days": 90}
    assert rules["win_back"]["settings"] == {}


async def test_rule_changes_are_validated_and_admin_only(api, key_for, enable):
    path = "/v1/lifecycle/rules"
    bad = await api.patch(f"{path}/first_purchase", json={"settings": {"target": "loyal"}})
    assert assert_problem(bad, 422, "validation-error")["errors"][0]["field"] == "settings.target"
    bad = await api.patch(f"{path}/inactivity", json={"settings": {"days": 0}})
    assert assert_problem(bad, 422, "validation-error")["errors"][0]["field"] == "settings.days"
    bad = await api.patch(f"{path}/win_back", json={"settings": {"days": 3}})
    assert_problem(bad, 422, "validation-error")
    assert_problem(await api.patch(f"{path}/nonsense", json={}), 422, "validation-error")
    writer = await key_for("lifecycle:write")
    assert_problem(
        await api.patch(f"{path}/win_back", json={"enabled": True}, headers=writer),
        403,
        "forbidden",
    )

    rule = await enable("first_purchase", target="active")
    assert rule["enabled"] and rule["to_stage"] == "active" and rule["version"] == 2
    stale = await api.patch(
        f"{path}/first_purchase", json={"enabled": False}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412, "precondition-failed")
    kept = await api.patch(f"{path}/first_purchase", json={"settings": {}})
    assert kept.json()["settings"] == {"target": "active"} and kept.json()["version"] == 2


async def test_switched_off_rules_move_nobody(
    api, new_customer, interact, stage_of, history, start_worker, moved_to
):
    prospect, at_risk = await new_customer(), await new_customer()
    await moved_to(at_risk["id"], "active", "at_risk")
    await interact(prospect["id"])
    await interact(at_risk["id"], "email", days_ago=400)
    await start_worker()
    await asyncio.sleep(0.6)  # three scheduled rounds
    assert await stage_of(prospect["id"]) == "prospect"
    assert await stage_of(at_risk["id"]) == "at_risk"
    assert await history(prospect["id"]) == []


async def test_a_first_purchase_moves_a_prospect_at_once(
    api, new_customer, interact, enable, stage_of, history
):
    customer = await new_customer()
    await enable("first_purchase")
    await interact(customer["id"], "email")
    assert await stage_of(customer["id"]) == "prospect"

    await interact(customer["id"])
    assert await stage_of(customer["id"]) == "onboarding"
    [made] = await history(customer["id"])
    assert (made["from_stage"], made["to_stage"]) == ("prospect", "onboarding")
    assert made["automatic"] is True and made["rule"] == "first_purchase"
    assert made["actor_key_id"] is None
    [event] = await eventually_events(api, 1, type="lifecycle.transitioned")
    assert event["customer_id"] == customer["id"] and event["data"] == made

    await interact(customer["id"])  # a second purchase moves them no further
    assert len(await history(customer["id"])) == 1


async def test_imported_purchases_are_moved_by_the_worker(
    api, new_customer, enable, stage_of, history, start_worker
):
    buyers = [await new_customer() for _ in range(3)]
    bystander = await new_customer()
    await enable("first_purchase", target="active")
    await import_purchases(api, *(b["id"] for b in buyers))
    assert await stage_of(buyers[0]["id"]) == "prospect"  # imports set no rules off

    await start_worker()
    for buyer in buyers:
        await eventually(lambda b=buyer: _is(stage_of, b["id"], "active"))
        [made] = await history(buyer["id"])
        assert made["rule"] == "first_purchase" and made["automatic"]
    assert await stage_of(bystander["id"]) == "prospect"
    assert len(await eventually_events(api, 3, type="lifecycle.transitioned")) == 3


async def _is(stage_of, customer_id: str, stage: str) -> bool:
    return await stage_of(customer_id) == stage


async def test_a_churned_customer_who_buys_is_won_back(
    api, new_customer, interact, enable, stage_of, history, moved_to
):
    customer = await new_customer()
    await moved_to(customer["id"], "active", "at_risk", "churned")
    await enable("win_back")
    await interact(customer["id"], days_ago=30)  # bought before churning: no sign of return
    assert await stage_of(customer["id"]) == "churned"

    await interact(customer["id"])
    assert await stage_of(customer["id"]) == "won_back"
    made = (await history(customer["id"]))[0]
    assert (made["from_stage"], made["rule"]) == ("churned", "win_back")


async def test_silent_at_risk_customers_churn_in_the_worker(
    api, new_customer, interact, enable, stage_of, history, moved_to, start_worker
):
    silent, talking, outbound_only = [await new_customer() for _ in range(3)]
    for customer in (silent, talking, outbound_only):
        await moved_to(customer["id"], "active", "at_risk")
    await interact(silent["id"], "call", days_ago=120)
    await interact(talking["id"], "call", days_ago=20)
    response = await api.post(
        "/v1/interactions",
        json={"customer_id": outbound_only["id"], "type": "email", "direction": "outbound"},
    )
    assert response.status_code == 201, response.text
    await enable("inactivity", days=30)

    await start_worker()
    await eventually(lambda: _is(stage_of, silent["id"], "churned"))
    await eventually(lambda: _is(stage_of, outbound_only["id"], "churned"))
    assert await stage_of(talking["id"]) == "at_risk"
    made = (await history(silent["id"]))[0]
    assert (made["from_stage"], made["to_stage"], made["rule"]) == (
        "at_risk",
        "churned",
        "inactivity",
    )


@pytest.fixture
async def sql(database_url):
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield conn
    await conn.close()


async def churn_run(sql, scores: dict[str, float]) -> None:
    """A succeeded churn run computed earlier, written as the runner writes one."""
    run_id = uuid.uuid4()
    await sql.execute(
        """INSERT INTO scoring_runs (id, scorer, scorer_version, kind, config,
               observation_end, time_unit, status, finished_at)
           VALUES ($1, 'bgnbd', '1', 'churn', '{}', now(), 'weeks', 'succeeded', now())""",
        run_id,
    )
    await sql.executemany(
        """INSERT INTO customer_scores (customer_id, run_id, scorer, kind, score)
           VALUES ($1, $2, 'bgnbd', 'churn', $3)""",
        [(uuid.UUID(c), run_id, score) for c, score in scores.items()],
    )


async def test_applying_the_rules_twice_moves_nobody_the_second_time(
    api, database_url, new_customer, moved_to, enable, interact, stage_of, sql
):
    risky, loyal_risky, safe, buyer = [await new_customer() for _ in range(4)]
    await moved_to(risky["id"], "active")
    await moved_to(loyal_risky["id"], "active", "loyal")
    await moved_to(safe["id"], "active")
    await churn_run(sql, {risky["id"]: 0.9, loyal_risky["id"]: 0.75, safe["id"]: 0.2})
    await import_purchases(api, buyer["id"])
    for rule in ("churn_risk", "first_purchase", "inactivity"):
        await enable(rule)

    db = await Database.connect(database_url, min_size=1, max_size=2)
    try:
        settings = settings_for(database_url)
        # churn_risk moves two, first_purchase one, then inactivity churns both at-risk
        # customers, who never interacted.
        assert await rules.apply_due(db, settings) == 5
        assert await rules.apply_due(db, settings) == 0
    finally:
        await db.close()
    assert await stage_of(risky["id"]) == "churned"
    assert await stage_of(loyal_risky["id"]) == "churned"
    assert await stage_of(safe["id"]) == "active"
    assert await stage_of(buyer["id"]) == "onboarding"


async def test_a_churn_threshold_per_rule(
    database_url, new_customer, moved_to, enable, stage_of, sql
):
    mild, severe = await new_customer(), await new_customer()
    for customer in (mild, severe):
        await moved_to(customer["id"], "active")
    await churn_run(sql, {mild["id"]: 0.75, severe["id"]: 0.95})
    await enable("churn_risk", threshold=0.9)
    db = await Database.connect(database_url, min_size=1, max_size=2)
    try:
        assert await rules.apply_due(db, settings_for(database_url)) == 1
    finally:
        await db.close()
    assert await stage_of(severe["id"]) == "at_risk"
    assert await stage_of(mild["id"]) == "active"
