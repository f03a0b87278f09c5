"""Many simultaneous writes to one account over real HTTP: exactness under contention."""

import asyncio
import random

import httpx

from crm_api.app import create_app
from crm_api.config import Settings
from live import serve, settings_for


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
