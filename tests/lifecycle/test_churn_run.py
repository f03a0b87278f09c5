"""churn_risk after a real churn scoring run: the runner moves at-risk customers in the
transaction that stores the run's scores."""

import asyncio
from datetime import UTC, datetime, timedelta

import orjson

from support import eventually_events

NDJSON = {"Content-Type": "application/x-ndjson"}


def purchases(customer_id: str, weeks_ago: list[float]) -> bytes:
    now = datetime.now(UTC)
    return b"".join(
        orjson.dumps(
            {
                "customer_id": customer_id,
                "type": "purchase",
                "amount": 2500,
                "currency": "EUR",
                "occurred_at": (now - timedelta(weeks=w)).isoformat(),
            }
        )
        + b"\n"
        for w in weeks_ago
    )


async def finished(api, location: str) -> dict:
    for _ in range(600):
        run = (await api.get(location)).json()
        if run["status"] in ("succeeded", "failed"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run is still {run['status']}")


async def test_a_churn_run_moves_active_customers_at_risk_at_once(
    api, new_customer, moved_to, enable, stage_of, history, start_worker
):
    lapsed = [await new_customer() for _ in range(12)]
    regular = [await new_customer() for _ in range(12)]
    body = b"".join(purchases(c["id"], [100, 98, 96, 94, 92, 90]) for c in lapsed)
    body += b"".join(purchases(c["id"], [float(w) for w in range(1, 100, 4)]) for c in regular)
    imported = await api.post("/v1/interactions/import", content=body, headers=NDJSON)
    assert imported.status_code == 200, imported.text
    for customer in (*lapsed, *regular):
        await moved_to(customer["id"], "active")
    await enable("churn_risk")
    # The scheduled rules run once at the start (no scores yet), then not for an hour:
    # whatever moves after the run was moved by the run.
    await start_worker(schedule_seconds=3600)

    response = await api.post("/v1/scoring/runs", json={"scorer": "bgnbd"})
    assert response.status_code == 202, response.text
    run = await finished(api, response.headers["location"])
    assert run["status"] == "succeeded", run["error"]

    at_risk = (await api.get("/v1/churn/at-risk", params={"limit": 200})).json()["data"]
    risky = {r["customer_id"] for r in at_risk}
    assert risky and risky <= {c["id"] for c in lapsed}
    for customer in (*lapsed, *regular):
        expected = "at_risk" if customer["id"] in risky else "active"
        assert await stage_of(customer["id"]) == expected
    made = (await history(next(iter(risky))))[0]
    assert (made["from_stage"], made["to_stage"]) == ("active", "at_risk")
    assert made["automatic"] and made["rule"] == "churn_risk"
    moves = await eventually_events(api, len(risky) + 24, type="lifecycle.transitioned")
    assert len([m for m in moves if m["data"]["rule"] == "churn_risk"]) == len(risky)
