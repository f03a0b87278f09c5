"""The daily totals behind the KPIs: rolled up while interactions are written, each
interaction is in them once, whatever runs at the same time."""

import asyncio
import os
import random
import subprocess
import sys
from pathlib import Path

import asyncpg

from analytics.history import History
from crm_api.analytics import daily_totals
from crm_api.core.db import asyncpg_dsn

_FIGURES = (
    "facts, orders, nps_answers, promoters, detractors, csat_answers, satisfied, sales, refunds, "
    "cogs, covered, service_cost"
)
# Per UTC day and currency, the same sums written out over the interactions themselves.
_BY_HAND = """
SELECT (occurred_at AT TIME ZONE 'UTC')::date AS day, currency,
       count(*) AS facts,
       count(*) FILTER (WHERE type = 'purchase') AS orders,
       count(nps) AS nps_answers,
       count(*) FILTER (WHERE nps >= 9) AS promoters,
       count(*) FILTER (WHERE nps <= 6) AS detractors,
       count(csat) AS csat_answers,
       count(*) FILTER (WHERE csat >= 4) AS satisfied,
       coalesce(sum(amount) FILTER (WHERE type = 'purchase'), 0) AS sales,
       coalesce(sum(amount) FILTER (WHERE type = 'refund'), 0) AS refunds,
       coalesce(sum(items_cost) FILTER (WHERE type = 'purchase'), 0)
           - coalesce(sum(items_cost) FILTER (WHERE type = 'refund'), 0) AS cogs,
       coalesce(sum(costed_amount) FILTER (WHERE type = 'purchase'), 0)
           - coalesce(sum(costed_amount) FILTER (WHERE type = 'refund'), 0) AS covered,
       coalesce(sum(service_cost), 0) AS service_cost
FROM interactions
WHERE currency IS NOT NULL OR nps IS NOT NULL OR csat IS NOT NULL
GROUP BY 1, 2
"""


async def _rows(sql: asyncpg.Connection, query: str) -> set[tuple]:
    return {tuple(r) for r in await sql.fetch(query)}


async def test_rolls_beside_writes_count_each_interaction_once(
    history: History, database_url: str
) -> None:
    rng = random.Random(11)
    customers = [await history.customer() for _ in range(6)]

    async def write(count: int) -> None:
        for _ in range(count):
            who, days_ago = rng.choice(customers), rng.uniform(0, 3)
            match rng.choice(["purchase", "refund", "feedback", "support"]):
                case "purchase" | "refund" as kind:
                    price, cost = rng.randint(100, 900), rng.choice([None, rng.randint(50, 90)])
                    line = {"sku": "A", "quantity": 2, "unit_price": price, "unit_cost": cost}
                    await history.record(
                        who, kind, history.ago(days_ago), amount=2 * price,
                        currency=rng.choice(["EUR", "USD"]), items=[line],
                    )  # fmt: skip
                case "feedback":
                    await history.feedback(who, days_ago, rng.randint(0, 10), rng.randint(1, 5))
                case _:
                    await history.record(
                        who, "support", history.ago(days_ago), currency="EUR",
                        service_cost=rng.randint(0, 500),
                    )  # fmt: skip

    await write(10)
    # Rows written before interactions carried their transaction: the first roll takes them.
    await history.sql.execute("UPDATE interactions SET tx_id = NULL")
    rollers = [await asyncpg.connect(asyncpg_dsn(database_url)) for _ in range(3)]

    async def rolls(conn: asyncpg.Connection) -> None:
        for _ in range(6):
            await daily_totals.roll(conn)
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(write(40), *(rolls(conn) for conn in rollers))
    finally:
        for conn in rollers:
            await conn.close()
    await history.roll()

    stored = await _rows(
        history.sql, f"SELECT day, currency, {_FIGURES} FROM interaction_daily_totals"
    )
    assert stored == await _rows(history.sql, _BY_HAND)
    assert await daily_totals.roll(history.sql) == 0  # nothing new, nothing added twice
    assert stored == await _rows(
        history.sql, f"SELECT day, currency, {_FIGURES} FROM interaction_daily_totals"
    )


async def test_the_cli_rolls_up_what_was_loaded_behind_the_api(
    history: History, database_url: str
) -> None:
    who = await history.customer(40)
    await history.buy(who, 20, 2500)
    await history.feedback(who, 2, 10, 5)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATABASE_URL": database_url, "CRM_LOG_LEVEL": "WARNING"}
    script = str(Path(sys.executable).parent / "crm-api")

    def roll(*options: str) -> str:
        done = subprocess.run(
            [script, "analytics", "roll-totals", *options], env=env, capture_output=True,
            text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout

    # Two days: the purchase's in EUR, the feedback's without a currency.
    assert "updated 2 day(s) and currency(ies)" in await asyncio.to_thread(roll)
    assert "updated 0 day(s)" in await asyncio.to_thread(roll)
    assert await _stored(history) == await _rows(history.sql, _BY_HAND)
    # Starting over rolls the same history up again, to the same totals.
    assert "updated 2 day(s)" in await asyncio.to_thread(roll, "--rebuild")
    assert await _stored(history) == await _rows(history.sql, _BY_HAND)


async def _stored(history: History) -> set[tuple]:
    return await _rows(
        history.sql, f"SELECT day, currency, {_FIGURES} FROM interaction_daily_totals"
    )


async def test_totals_rolled_up_under_another_numbering_of_transactions_are_not_trusted(
    history: History,
) -> None:
    who = await history.customer(40)
    await history.buy(who, 20, 2500)
    await history.roll()
    # As a logical dump restored into a new cluster leaves it, written to before the
    # service started there: the rows and the watermark count from transactions this
    # database will only reach much later, and new rows fall below them.
    await history.sql.execute("UPDATE interactions SET tx_id = tx_id + 2 ^ 40")
    await history.sql.execute("UPDATE rollup_watermarks SET rolled_before = rolled_before + 2 ^ 40")
    await history.buy(who, 10, 1500)
    period = {"from": history.ago(30).isoformat(), "to": history.ago(-1).isoformat()}

    async def orders_and_revenue() -> tuple[int, int]:
        response = await history.api.get("/v1/analytics/kpis", params=period)
        assert response.status_code == 200, response.text
        return response.json()["orders"], response.json()["revenue"]

    assert await orders_and_revenue() == (2, 4000)  # from the interactions alone
    assert await daily_totals.roll(history.sql) == 0  # nothing added under that watermark
    await daily_totals.rebuild(history.sql)
    assert await _stored(history) == await _rows(history.sql, _BY_HAND)
    assert await daily_totals.watermark(history.sql) is not None  # the totals serve again
    assert await orders_and_revenue() == (2, 4000)
