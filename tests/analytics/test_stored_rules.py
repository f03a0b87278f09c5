"""The stored recommendation rules: mined like the live affinities, replaced atomically, and
refreshed by the worker, by `crm-api analytics refresh-rules` and on the first request."""

import asyncio
import os
import random
import subprocess
import sys
from datetime import timedelta

import asyncpg
import pytest

from analytics.baskets import buy
from crm_api.analytics import stored_rules
from crm_api.core.db import Database, asyncpg_dsn

TOFU, BEER, BREAD = ("tofu", "vegetarian"), ("beer", "drinks"), ("bread", "bakery")
VEG_SPECIAL = ("veg-special", "vegetarian")


async def _recommend(api, customer_id, **params):  # type: ignore[no-untyped-def]
    response = await api.get(f"/v1/customers/{customer_id}/recommendations", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _refresh_by_cli(database_url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATABASE_URL": database_url, "CRM_LOG_LEVEL": "WARNING", "NO_COLOR": "1"}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "from crm_api.cli import app; app()", "analytics", "refresh-rules"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _stored(database_url: str) -> tuple[list[tuple], list[tuple]]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rules = await conn.fetch("SELECT * FROM recommendation_rules ORDER BY 1, 2, 3")
        items = await conn.fetch("SELECT * FROM item_popularity ORDER BY 1, 2")
    finally:
        await conn.close()
    return [tuple(r) for r in rules], [tuple(r) for r in items]


@pytest.fixture
async def shop(api, new_customer):  # type: ignore[no-untyped-def]
    """Olga: O1 tofu veg-special, O2 tofu veg-special bread; Vera: V1 tofu; V2 bread."""
    olga, vera = (await new_customer())["id"], (await new_customer())["id"]
    await buy(api, olga, [TOFU, VEG_SPECIAL], at="2026-01-08T12:00:00Z")
    await buy(api, olga, [TOFU, VEG_SPECIAL, BREAD], at="2026-01-09T12:00:00Z")
    await buy(api, vera, [TOFU], at="2026-01-10T12:00:00Z")
    await buy(api, vera, [BREAD], at="2026-01-11T12:00:00Z")
    return {"olga": olga, "vera": vera}


async def test_stored_rules_equal_the_live_computation(api, new_customer, database_url) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    # Every fourth SKU has no category: its baskets alone count at the SKU level only, so
    # the two levels, mined together, count different baskets.
    skus = [(f"sku-{k}", None if k % 4 == 3 else f"cat-{k % 3}") for k in range(12)]
    customers = [(await new_customer())["id"] for _ in range(4)]
    baskets = []
    for n in range(60):
        # Skewed: the first SKUs sell far more often than the last ones.
        basket = set(rng.choices(skus, weights=[12 - k for k in range(12)], k=rng.randint(1, 4)))
        baskets.append(basket)
        await buy(api, customers[n % 4], sorted(basket), at=f"2026-02-{1 + n % 28:02d}T10:00:00Z")
    assert any(all(category is None for _, category in basket) for basket in baskets)
    lines = (await _refresh_by_cli(database_url)).splitlines()
    categorised = sum(any(category for _, category in basket) for basket in baskets)
    assert lines[0].startswith("sku:") and lines[0].endswith("over 60 baskets")
    assert lines[1].startswith("category:") and lines[1].endswith(f"over {categorised} baskets")
    rules, items = await _stored(database_url)

    for level, column in (("sku", 0), ("category", 1)):
        live = await api.get(
            "/v1/analytics/affinities",
            params={"level": level, "min_support": 0.01, "min_confidence": 0, "min_lift": 0}
            | {"limit": 500},
        )
        assert live.status_code == 200
        expected = {
            (r["antecedent"], r["consequent"]): (
                r["baskets_with_both"],
                r["antecedent_baskets"],
                r["consequent_baskets"],
                pytest.approx(r["support"]),
                pytest.approx(r["confidence"]),
                pytest.approx(r["lift"]),
            )
            for r in live.json()["rules"]
        }
        assert {(x, y): tuple(rest) for lv, x, y, *rest in rules if lv == level} == expected
        # Popularity, independently: the share of the level's baskets holding the item.
        at_level = [{s[column] for s in b} - {None} for b in baskets]
        at_level = [items for items in at_level if items]
        names = set().union(*at_level)
        share = {n: sum(n in b for b in at_level) / len(at_level) for n in names}
        stored = {item: s for lv, item, _, s, _, _ in items if lv == level}
        assert stored == {n: pytest.approx(s) for n, s in share.items() if s >= 0.01}
    # Each SKU is stored with its category, each category with itself.
    assert {(item, tuple(c)) for lv, item, *_, c in items if lv == "sku"} == {
        (sku, () if category is None else (category,))
        for sku, category in skus
        if any((sku, category) in b for b in baskets)
    }
    assert all(c == [item] for lv, item, *_, c in items if lv == "category")
    # Running it again over the same purchases stores the same set.
    await _refresh_by_cli(database_url)
    assert await _stored(database_url) == (rules, items)


async def test_rules_stay_until_the_next_refresh(api, shop, new_customer, database_url) -> None:  # type: ignore[no-untyped-def]
    # The first request mines the set (none existed). Four baskets: tofu 3, veg-special 2,
    # bread 2. tofu -> veg-special: both 2, confidence 2/3, lift (2/3) / (2/4) = 4/3.
    first = await _recommend(api, shop["vera"])
    assert [(r["item"], r["source"]) for r in first["recommendations"]] == [
        ("veg-special", "affinity")
    ]
    assert first["recommendations"][0]["score"] == pytest.approx(2 / 3)
    # Six more baskets of tofu and beer: live, tofu -> beer would now be the strongest rule.
    bob = (await new_customer())["id"]
    for day in range(12, 18):
        await buy(api, bob, [TOFU, BEER], at=f"2026-01-{day}T12:00:00Z")
    again = await _recommend(api, shop["vera"])
    assert again == first  # the same set, from the same refresh

    output = await _refresh_by_cli(database_url)
    # Ten baskets now: tofu 9, beer 6, veg-special 2, bread 2; the pairs tofu-beer,
    # tofu-veg-special, tofu-bread and veg-special-bread give two rules each.
    assert "sku: 8 rules over 10 baskets" in output
    fresh = await _recommend(api, shop["vera"])
    assert fresh["rules_computed_at"] > first["rules_computed_at"]
    # tofu -> beer: both 6, confidence 6/9, lift (6/9) / (6/10) = 10/9. For veg-special
    # bread -> veg-special (both 1, confidence 1/2, lift 0.5 / (2/10) = 2.5) beats
    # tofu -> veg-special (2/9); before, that rule had lift (1/2) / (2/4) = 1, not above 1.
    assert [
        (r["item"], r["because_of"], r["score"], r["lift"]) for r in fresh["recommendations"]
    ] == [
        ("beer", "tofu", pytest.approx(6 / 9), pytest.approx(10 / 9)),
        ("veg-special", "bread", pytest.approx(0.5), pytest.approx(2.5)),
    ]


async def test_readers_see_the_old_set_until_the_refresh_commits(api, shop, database_url) -> None:  # type: ignore[no-untyped-def]
    before = await _recommend(api, shop["vera"])  # mines the first set
    old = await _stored(database_url)
    await buy(api, shop["olga"], [BEER, BREAD], at="2026-01-20T12:00:00Z")

    db = await Database.connect(database_url, min_size=1, max_size=2)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = conn.transaction()
        await transaction.start()
        done = await stored_rules.refresh(conn, older_than=timedelta(0), wait=True)
        assert done is not None  # written, not committed
        # Another process's refresh finds the lock taken and leaves the work to this one.
        assert await stored_rules.refresh(db.pool, older_than=timedelta(0), wait=False) is None
        assert await _stored(database_url) == old
        assert await _recommend(api, shop["vera"]) == before
        await transaction.commit()
    finally:
        await conn.close()
        await db.close()
    rules, items = await _stored(database_url)
    assert (rules, items) != old
    # Five baskets now: beer in 1, so share 0.2.
    assert ("sku", "beer", 1, pytest.approx(0.2)) in [row[:4] for row in items]
    after = await _recommend(api, shop["vera"])
    assert after["rules_computed_at"] > before["rules_computed_at"]


async def test_the_worker_refreshes_when_the_set_is_due(
    api, shop, new_customer, start_worker, database_url
) -> None:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))

    async def refreshed_after(when: object) -> object:
        for _ in range(100):
            last = await conn.fetchval("SELECT min(computed_at) FROM recommendation_refreshes")
            if last is not None and (when is None or last > when):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError("the worker did not refresh the rules")

    try:
        await start_worker(recommendation_refresh_seconds=1)
        first = await refreshed_after(None)  # none yet: due at once
        bob = (await new_customer())["id"]
        for day in range(12, 18):
            await buy(api, bob, [TOFU, BEER], at=f"2026-01-{day}T12:00:00Z")
        await refreshed_after(first)
        found = await _recommend(api, shop["vera"])
        assert [r["item"] for r in found["recommendations"]] == ["beer", "veg-special"]
        counted = await conn.fetch("SELECT level, baskets FROM recommendation_refreshes")
        assert sorted(map(tuple, counted)) == [("category", 10), ("sku", 10)]
    finally:
        await conn.close()


async def test_concurrent_first_requests_share_one_refresh(api, shop) -> None:  # type: ignore[no-untyped-def]
    # Each would mine its own set (a later computed_at each) were they not waiting for one.
    answers = await asyncio.gather(*(_recommend(api, shop["vera"]) for _ in range(4)))
    assert len({a["rules_computed_at"] for a in answers}) == 1
    assert all(a == answers[0] for a in answers)
