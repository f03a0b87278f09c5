"""Many simultaneous writes over real HTTP: exactness under contention, on one account and
across many that share transactions."""

import asyncio
import random
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crm_api.app import create_app
from crm_api.config import Settings
from live import serve, settings_for
from support import eventually_events


def _settings(database_url: str) -> Settings:
    # Enough connections that requests queue on the account's row lock, not on the pool.
    return settings_for(database_url).model_copy(update={"pool_size": 30})


async def test_simultaneous_redeems_succeed_exactly_as_far_as_the_points_go(
    database_url, admin_key, create_program, enrol, earned, books
) -> None:
    account = await enrol(await create_program())
    await earned(account, 150)  # 75 redeems of 2 are affordable
    url = f"/v1/loyalty/accounts/{account['id']}/redeem"
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=120, max_keepalive_connections=120)
    with serve(create_app(_settings(database_url))) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=60
        ) as http:
            answers = await asyncio.gather(
                *(http.post(url, json={"points": 2}) for _ in range(120))
            )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] * 75 + [409] * 45, [r.text for r in answers if r.status_code >= 500]
    assert {r.json()["type"] for r in answers if r.status_code == 409} == {
        "/problems/insufficient-points"
    }
    assert sorted(r.json()["balance_after"] for r in answers if r.status_code == 201) == list(
        range(0, 150, 2)
    )
    assert await books(account) == 0


async def test_mixed_simultaneous_earns_and_redeems_keep_the_books(
    database_url, admin_key, create_program, enrol, earned, books
) -> None:
    account = await enrol(await create_program())
    await earned(account, 50)
    base = f"/v1/loyalty/accounts/{account['id']}"
    headers = {"Authorization": f"Bearer {admin_key}"}
    rng = random.Random(7)
    writes = [("earn", rng.randint(1, 9)) if n % 2 else ("redeem", rng.randint(1, 9))
              for n in range(100)]  # fmt: skip
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    with serve(create_app(_settings(database_url))) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=60
        ) as http:
            answers = await asyncio.gather(
                *(http.post(f"{base}/{action}", json={"points": p}) for action, p in writes)
            )
    assert {r.status_code for r in answers} <= {201, 409}
    ok = [(action, p) for (action, p), r in zip(writes, answers, strict=True)
          if r.status_code == 201]  # fmt: skip
    expected = 50 + sum(p if action == "earn" else -p for action, p in ok)
    assert all(r.status_code == 201 for (action, _), r in zip(writes, answers, strict=True)
               if action == "earn")  # fmt: skip
    assert await books(account) == expected


def _batches(metrics: str) -> tuple[float, float]:
    """The loyalty writes submitted to shared transactions so far, and the transactions."""
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.labels.get("write") == "loyalty_entry"
    }
    return found["crm_coalesced_batch_size_sum"], found["crm_coalesced_batch_size_count"]


async def test_simultaneous_writes_to_many_accounts_each_get_their_own_answer(
    database_url, admin_key, create_program, enrol, earned, backdate, books, account_of, api
) -> None:
    """Earns and redeems on distinct accounts share transactions; a write that fails
    fails alone, and one that needs more (due lots to expire first) runs in its own."""
    program = await create_program(
        expiry_days=30, tiers=[{"name": "Silver", "threshold": 15, "multiplier": 2}]
    )
    accounts = [await enrol(program) for _ in range(12)]
    for account in accounts:
        await earned(account, 10)
    due = accounts[0]
    await backdate(
        (await api.get(f"/v1/loyalty/accounts/{due['id']}/entries")).json()["data"][0], 31
    )
    await earned(due, 5)
    writes = [(due, "redeem", {"points": 3}, 201)]
    for account in accounts[1:]:
        writes += [
            (account, "earn", {"points": 5}, 201),  # reaches Silver
            (account, "redeem", {"points": 3}, 201),
            (account, "redeem", {"points": 100}, 409),  # more than there will ever be
            (account, "earn", {"amount": 500, "currency": "USD"}, 422),
        ]
    writes.append(({"id": str(uuid.uuid4())}, "redeem", {"points": 1}, 404))
    headers = {"Authorization": f"Bearer {admin_key}"}
    limits = httpx.Limits(max_connections=len(writes), max_keepalive_connections=len(writes))
    with serve(create_app(_settings(database_url))) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=60
        ) as http:
            before = _batches((await http.get("/metrics")).text)
            answers = await asyncio.gather(
                *(
                    http.post(f"/v1/loyalty/accounts/{account['id']}/{action}", json=body)
                    for account, action, body, _ in writes
                )
            )
            after = _batches((await http.get("/metrics")).text)

    assert [r.status_code for r in answers] == [status for *_, status in writes], [
        r.text for r in answers if r.status_code >= 500
    ]
    problems = {r.status_code: r.json() for r in answers if r.status_code >= 400}
    assert problems[409]["type"] == "/problems/insufficient-points"
    assert problems[422]["errors"][0]["field"] == "currency"
    submitted, batches = (a - b for a, b in zip(after, before, strict=True))
    assert submitted == len(writes) and batches < len(writes)  # they shared transactions
    # The due account's expired lot went first, in the redeem's own transaction.
    due_entries = (await api.get(f"/v1/loyalty/accounts/{due['id']}/entries")).json()["data"]
    assert [(e["kind"], e["points"]) for e in due_entries] == [
        ("redeem", -3), ("expire", -10), ("earn", 5), ("earn", 10),
    ]  # fmt: skip
    assert await books(due) == 2
    for account in accounts[1:]:
        assert await books(account) == 12
    # Every account earned 15 in the window, the due one before the rush.
    assert {(await account_of(a))["tier"] for a in accounts} == {"Silver"}
    changes = await eventually_events(api, 12, type="loyalty.tier_changed")
    assert sorted(e["data"]["account_id"] for e in changes) == sorted(a["id"] for a in accounts)
