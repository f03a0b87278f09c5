"""The interaction timeline: recording facts, reading them back, bulk import."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from support import ago, assert_problem, events_of

NDJSON = {"Content-Type": "application/x-ndjson"}


def purchase(customer_id: str, **fields: object) -> dict:
    return {
        "customer_id": customer_id,
        "type": "purchase",
        "channel": "web",
        "amount": 2598,
        "currency": "EUR",
        "items": [
            {
                "sku": "TEA-1",
                "name": "Green tea",
                "category": "tea",
                "quantity": 2,
                "unit_price": 999,
            },
            {"sku": "MUG-1", "category": "kitchen", "quantity": 1, "unit_price": 600},
        ],
        **fields,
    }


async def test_a_purchase_is_recorded_with_its_items_and_announced(api, new_customer):
    customer = await new_customer()

    response = await api.post(
        "/v1/interactions", json=purchase(customer["id"], external_id="order-1")
    )

    assert response.status_code == 201, response.text
    recorded = response.json()
    assert response.headers["location"] == f"/v1/interactions/{recorded['id']}"
    assert recorded["items"][0] == {
        "sku": "TEA-1",
        "name": "Green tea",
        "category": "tea",
        "quantity": 2,
        "unit_price": 999,
        "unit_cost": None,
    }
    assert recorded["amount"] == 2598 and recorded["currency"] == "EUR"
    assert recorded["occurred_at"] and recorded["recorded_at"]
    assert (await api.get(f"/v1/interactions/{recorded['id']}")).json() == recorded
    [event] = await events_of(api, type="interaction.created")
    assert event["customer_id"] == customer["id"]
    assert event["data"]["items"][1]["sku"] == "MUG-1"


async def test_the_timeline_is_newest_first_and_filterable(api, new_customer):
    customer = await new_customer()
    other = await new_customer()
    cid = customer["id"]
    for body in (
        {
            "customer_id": cid,
            "type": "email",
            "channel": "email",
            "direction": "outbound",
            "occurred_at": ago(days=3),
        },
        purchase(cid, occurred_at=ago(days=2)),
        {
            "customer_id": cid,
            "type": "feedback",
            "channel": "app",
            "nps": 9,
            "csat": 5,
            "body": "Lovely",
            "occurred_at": ago(days=1),
        },
        {
            "customer_id": other["id"],
            "type": "call",
            "channel": "phone",
            "occurred_at": ago(hours=1),
        },
    ):
        assert (await api.post("/v1/interactions", json=body)).status_code == 201

    async def types(**params) -> list[str]:
        response = await api.get(f"/v1/customers/{cid}/interactions", params=params)
        assert response.status_code == 200, response.text
        return [i["type"] for i in response.json()["data"]]

    assert await types() == ["feedback", "purchase", "email"]
    assert await types(type=["email", "purchase"]) == ["purchase", "email"]
    assert await types(channel="app") == ["feedback"]
    assert await types(since=ago(days=2, minutes=1), until=ago(days=1, minutes=1)) == ["purchase"]
    assert await types(limit=1) == ["feedback"]
    everyone = (await api.get("/v1/interactions")).json()["data"]
    assert [i["type"] for i in everyone] == ["call", "feedback", "purchase", "email"]
    only_other = (await api.get("/v1/interactions", params={"customer_id": other["id"]})).json()
    assert [i["type"] for i in only_other["data"]] == ["call"]


async def test_timeline_pages_follow_the_cursor(api, new_customer):
    customer = await new_customer()
    for hours in range(5):
        body = {"customer_id": customer["id"], "type": "web", "occurred_at": ago(hours=hours)}
        await api.post("/v1/interactions", json=body)
    url = f"/v1/customers/{customer['id']}/interactions"

    first = (await api.get(url, params={"limit": 3})).json()
    second = (await api.get(url, params={"limit": 3, "cursor": first["next_cursor"]})).json()

    times = [i["occurred_at"] for i in first["data"] + second["data"]]
    assert len(times) == 5 and times == sorted(times, reverse=True)
    assert second["has_more"] is False


async def test_interactions_must_fit_their_type(api, new_customer):
    cid = (await new_customer())["id"]
    cases = [
        {"customer_id": cid, "type": "purchase"},
        {"customer_id": cid, "type": "email", "amount": 5, "currency": "EUR"},
        {"customer_id": cid, "type": "call", "nps": 8},
        {"customer_id": cid, "type": "feedback", "nps": 11},
        {"customer_id": cid, "type": "purchase", "amount": -1, "currency": "EUR"},
        {"customer_id": cid, "type": "purchase", "amount": 1, "currency": "EURO"},
        {
            "customer_id": cid,
            "type": "note",
            "occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
        {"customer_id": cid, "type": "note", "occurred_at": "2024-01-01T00:00:00"},
        {"customer_id": cid, "type": "teleport"},
    ]
    for body in cases:
        assert_problem(await api.post("/v1/interactions", json=body), 422, "validation-error")
    assert (await api.get("/v1/interactions")).json()["data"] == []


async def test_unknown_or_deleted_customers_get_no_interactions(api, new_customer):
    unknown = await api.post(
        "/v1/interactions", json={"customer_id": str(uuid.uuid4()), "type": "note"}
    )
    assert assert_problem(unknown, 422, "validation-error")["errors"][0]["field"] == "customer_id"

    gone = await new_customer()
    await api.delete(f"/v1/customers/{gone['id']}")
    response = await api.post("/v1/interactions", json={"customer_id": gone["id"], "type": "note"})
    assert_problem(response, 422, "validation-error")
    assert_problem(await api.get(f"/v1/customers/{gone['id']}/interactions"), 404, "not-found")


async def test_an_external_id_is_recorded_once_per_customer(api, new_customer):
    customer = await new_customer()
    assert (
        await api.post("/v1/interactions", json=purchase(customer["id"], external_id="o-9"))
    ).status_code == 201

    again = await api.post("/v1/interactions", json=purchase(customer["id"], external_id="o-9"))

    assert assert_problem(again, 409, "conflict")["errors"][0]["field"] == "external_id"
    assert len((await api.get("/v1/interactions")).json()["data"]) == 1
    elsewhere = await new_customer()
    assert (
        await api.post("/v1/interactions", json=purchase(elsewhere["id"], external_id="o-9"))
    ).status_code == 201


async def test_concurrent_recordings_each_get_their_own_answer(api, new_customer, database_url):
    cid = (await new_customer())["id"]
    bodies = [purchase(cid, external_id=f"c-{n}") for n in range(30)]
    bodies.append(purchase(cid, external_id="c-7"))  # a retried sync, racing the first
    bodies.append({"customer_id": str(uuid.uuid4()), "type": "note"})

    responses = await asyncio.gather(*(api.post("/v1/interactions", json=b) for b in bodies))

    assert [r.status_code for r in responses[:7] + responses[8:30]] == [201] * 29
    assert sorted(r.status_code for r in (responses[7], responses[30])) == [201, 409]
    assert_problem(responses[31], 422, "validation-error")
    recorded = {r.json()["id"]: r.json() for r in responses if r.status_code == 201}
    timeline = await api.get(f"/v1/customers/{cid}/interactions", params={"limit": 200})
    assert {i["id"]: i for i in timeline.json()["data"]} == recorded
    announced = await events_of(api, type="interaction.created")
    assert sorted(e["data"]["id"] for e in announced) == sorted(recorded)
    # Concurrent requests shared statements (and commits): what this test is about.
    conn = await asyncpg.connect(database_url)
    try:
        commits = await conn.fetchval("SELECT count(DISTINCT tx_id) FROM interactions")
    finally:
        await conn.close()
    assert commits < len(recorded)


async def test_a_time_with_any_offset_is_stored_as_its_instant(api, new_customer):
    cid = (await new_customer())["id"]
    note = {"customer_id": cid, "type": "note", "occurred_at": "2020-05-01T06:23:35-23:01"}

    posted = await api.post("/v1/interactions", json={**note, "external_id": "n-1"})
    imported = await api.post(
        "/v1/interactions/import",
        content=json.dumps({**note, "external_id": "n-2"}),
        headers=NDJSON,
    )

    assert posted.status_code == 201, posted.text
    assert imported.json()["created"] == 1, imported.text
    timeline = (await api.get(f"/v1/customers/{cid}/interactions")).json()["data"]
    assert [datetime.fromisoformat(i["occurred_at"]) for i in timeline] == [
        datetime(2020, 5, 2, 5, 24, 35, tzinfo=UTC)
    ] * 2


async def test_unknown_interaction_is_404(api):
    assert_problem(await api.get(f"/v1/interactions/{uuid.uuid4()}"), 404, "not-found")


async def test_import_records_good_lines_reports_bad_ones_and_is_safe_to_replay(api, new_customer):
    cid = (await new_customer())["id"]
    lines = [
        purchase(cid, external_id="imp-1"),
        {"customer_id": cid, "type": "sms", "body": "Hi", "external_id": "imp-2"},
        {"customer_id": str(uuid.uuid4()), "type": "note"},
        {"customer_id": cid, "type": "purchase"},
        "garbage",
    ]
    body = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines)

    first = await api.post("/v1/interactions/import", content=body, headers=NDJSON)
    replay = await api.post("/v1/interactions/import", content=body, headers=NDJSON)

    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["created"], report["unchanged"], report["failed"]) == (2, 0, 3)
    assert sorted({e["line"] for e in report["errors"]}) == [3, 4, 5]
    assert [e["field"] for e in report["errors"] if e["line"] == 3] == ["customer_id"]
    assert (replay.json()["created"], replay.json()["unchanged"]) == (0, 2)
    timeline = (await api.get(f"/v1/customers/{cid}/interactions")).json()["data"]
    assert sorted(i["type"] for i in timeline) == ["purchase", "sms"]
    assert [len(i["items"]) for i in timeline if i["type"] == "purchase"] == [2]
    assert len(await events_of(api, type="interaction.created")) == 2
