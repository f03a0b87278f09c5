"""Tiers qualify on points earned in a rolling window, not on the balance."""

import uuid

from crm_api.loyalty import jobs
from support import eventually_events

TIERS = [
    {"name": "Silver", "threshold": 100, "multiplier": 1.5},
    {"name": "Gold", "threshold": 300, "multiplier": 2},
]


async def _age_entries(sql, account: dict, days: int) -> None:
    """Move an account's ledger ``days`` into the past (the trigger guards entries, so
    the test steps around it the way a time machine would)."""
    await sql.execute("ALTER TABLE loyalty_entries DISABLE TRIGGER loyalty_entries_append_only")
    try:
        await sql.execute(
            "UPDATE loyalty_entries SET occurred_at = occurred_at - make_interval(days => $2)"
            " WHERE account_id = $1",
            uuid.UUID(account["id"]),
            days,
        )
    finally:
        await sql.execute("ALTER TABLE loyalty_entries ENABLE TRIGGER loyalty_entries_append_only")


async def test_earning_upgrades_at_once_and_the_multiplier_applies_next(
    create_program, enrol, earned, write, account_of, api
) -> None:
    account = await enrol(await create_program(tiers=TIERS))
    shown = await account_of(account)
    assert shown["tier"] is None
    assert shown["next_tier"] == {
        "name": "Silver", "threshold": 100, "qualifying_points": 0, "points_needed": 100,
    }  # fmt: skip
    await earned(account, 100)
    shown = await account_of(account)
    assert shown["tier"] == "Silver" and shown["next_tier"]["points_needed"] == 200
    response = await write(account, "earn", amount=1000, currency="EUR")
    assert response.json()["points"] == 15 and response.json()["multiplier"] == 1.5
    changes = await eventually_events(api, 1, type="loyalty.tier_changed")
    assert [(e["data"]["from_tier"], e["data"]["to_tier"]) for e in changes] == [(None, "Silver")]


async def test_spending_does_not_downgrade(
    create_program, enrol, earned, write, account_of
) -> None:
    account = await enrol(await create_program(tiers=TIERS))
    await earned(account, 120)
    assert (await write(account, "redeem", points=120)).status_code == 201
    shown = await account_of(account)
    assert shown["balance"] == 0 and shown["tier"] == "Silver"
    assert shown["qualifying_points"] == 120


async def test_reevaluation_downgrades_once_the_window_has_passed(
    run_job, create_program, enrol, earned, account_of, sql, api
) -> None:
    reevaluated = await create_program(
        tiers=TIERS, tier_window_days=30, downgrade="reevaluate", downgrade_every_days=7
    )
    kept = await create_program(tiers=TIERS, tier_window_days=30)
    accounts = [await enrol(reevaluated), await enrol(kept)]
    for account in accounts:
        await earned(account, 150)
        await _age_entries(sql, account, 40)
    await sql.execute("UPDATE loyalty_accounts SET tier_reviewed_at = now() - interval '8 days'")
    assert await run_job(jobs.retier_due) == 1
    assert await run_job(jobs.retier_due) == 0
    down, same = [await account_of(a) for a in accounts]
    assert down["tier"] is None and down["qualifying_points"] == 0
    assert same["tier"] == "Silver"
    changes = await eventually_events(api, 3, type="loyalty.tier_changed")
    assert [(e["data"]["from_tier"], e["data"]["to_tier"]) for e in changes][-1] == (
        "Silver",
        None,
    )


async def test_lowered_thresholds_upgrade_on_the_next_review(
    run_job, create_program, enrol, earned, account_of, api
) -> None:
    program = await create_program(tiers=TIERS)
    account = await enrol(program)
    await earned(account, 80)
    easier = [{**TIERS[0], "threshold": 50}, TIERS[1]]
    response = await api.patch(f"/v1/loyalty/programs/{program['id']}", json={"tiers": easier})
    assert response.status_code == 200, response.text
    assert await run_job(jobs.retier_due) == 1
    assert await run_job(jobs.retier_due) == 0
    assert (await account_of(account))["tier"] == "Silver"
