"""Expiry and re-tiering: exact per lot, idempotent, by the worker and on the command line."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from crm_api.loyalty import jobs
from support import eventually_events


async def test_expiry_is_exact_per_lot_and_idempotent(
    run_job, create_program, enrol, earned, write, backdate, sql, api, books
) -> None:
    account = await enrol(await create_program(expiry_days=30))
    old, fresh = await earned(account, 10), await earned(account, 20)
    await backdate(old, 31)
    # The old lot is spent first, partly; only what is left of it expires.
    assert (await write(account, "redeem", points=4)).status_code == 201
    # Spending expired it already (expiry before spending): 4 came from the fresh lot.
    lots = {
        str(r["entry_id"]): r["remaining"]
        for r in await sql.fetch("SELECT entry_id, remaining FROM loyalty_lots")
    }
    assert lots == {old["id"]: 0, fresh["id"]: 16}
    await backdate(fresh, 31)
    assert await run_job(jobs.expire_due) == 1
    assert await run_job(jobs.expire_due) == 0
    entries = (await api.get(f"/v1/loyalty/accounts/{account['id']}/entries")).json()["data"]
    assert [(e["kind"], e["points"]) for e in entries] == [
        ("expire", -16), ("redeem", -4), ("expire", -10), ("earn", 20), ("earn", 10),
    ]  # fmt: skip
    assert await books(account) == 0
    expired = await eventually_events(api, 2, type="loyalty.points_expired")
    assert sorted(e["data"]["points"] for e in expired) == [-16, -10]


async def test_points_returned_to_an_expired_lot_expire_again(
    run_job, create_program, enrol, earned, write, backdate, api, books
) -> None:
    account = await enrol(await create_program(expiry_days=30))
    lot = await earned(account, 10)
    redeemed = (await write(account, "redeem", points=10)).json()
    await backdate(lot, 31)
    back = await api.post(f"/v1/loyalty/entries/{redeemed['id']}/reverse", json={"reason": "x"})
    assert back.status_code == 201 and back.json()["balance_after"] == 10
    assert await run_job(jobs.expire_due) == 1
    assert await books(account) == 0


async def test_the_worker_expires_on_its_schedule(
    start_worker, create_program, enrol, earned, backdate, account_of, books
) -> None:
    account = await enrol(await create_program(expiry_days=1))
    await backdate(await earned(account, 10), 2)
    await earned(account, 5)
    await start_worker()
    for _ in range(100):
        if (await account_of(account))["balance"] == 5:
            break
        await asyncio.sleep(0.1)
    assert await books(account) == 5


async def test_the_command_line_runs_both_jobs(
    database_url, create_program, enrol, earned, backdate, books
) -> None:
    account = await enrol(await create_program(expiry_days=1))
    await backdate(await earned(account, 10), 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATABASE_URL": database_url, "CRM_LOG_LEVEL": "WARNING"}
    script = str(Path(sys.executable).parent / "crm-api")

    def run(*args: str) -> str:
        done = subprocess.run(
            [script, *args], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout

    assert "expired points in 1 account(s)" in await asyncio.to_thread(run, "loyalty", "expire")
    assert "expired points in 0 account(s)" in await asyncio.to_thread(run, "loyalty", "expire")
    assert "changed the tier of 0" in await asyncio.to_thread(run, "loyalty", "retier")
    assert await books(account) == 0


async def test_one_run_expires_many_accounts_each_with_its_own_entry_and_event(
    run_job, create_program, enrol, earned, backdate, api, books
) -> None:
    program = await create_program(expiry_days=10)
    accounts = [await enrol(program) for _ in range(3)]
    for n, account in enumerate(accounts, start=1):
        await backdate(await earned(account, 10 * n), 11)
        await earned(account, 1)
    assert await run_job(jobs.expire_due) == 3
    assert [await books(account) for account in accounts] == [1, 1, 1]
    events = await eventually_events(api, 3, type="loyalty.points_expired")
    for event in events:
        entry = (await api.get(f"/v1/loyalty/entries/{event['data']['id']}")).json()
        assert event["data"].keys() == entry.keys()
        same = ("kind", "points", "seq", "balance_after", "account_id", "customer_id")
        assert {k: event["data"][k] for k in same} == {k: entry[k] for k in same}
    assert sorted(e["data"]["points"] for e in events) == [-30, -20, -10]
