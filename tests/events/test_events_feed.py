"""The events feed: complete, in commit-safe order, resumable from a cursor."""

import base64
import json

import asyncpg

from crm_api.core.db import Database, asyncpg_dsn
from crm_api.events import service as events
from live import create_database, drop_database
from support import assert_problem


async def test_a_follower_resumes_from_its_cursor_and_sees_only_new_events(api, new_customer):
    first = await new_customer()
    page = (await api.get("/v1/events")).json()
    assert [e["type"] for e in page["data"]] == ["customer.created"]

    second = await new_customer()
    await api.patch(f"/v1/customers/{first['id']}", json={"first_name": "Changed"})
    more = (await api.get("/v1/events", params={"cursor": page["next_cursor"]})).json()
    idle = (await api.get("/v1/events", params={"cursor": more["next_cursor"]})).json()

    assert [(e["type"], e["customer_id"]) for e in more["data"]] == [
        ("customer.created", second["id"]),
        ("customer.updated", first["id"]),
    ]
    assert idle["data"] == [] and idle["next_cursor"] == more["next_cursor"]


async def test_filters_by_type_customer_and_time(api, new_customer):
    a = await new_customer()
    b = await new_customer()
    await api.post("/v1/interactions", json={"customer_id": b["id"], "type": "note"})
    since = (await api.get("/v1/events")).json()["data"][-1]["occurred_at"]

    async def types(**params) -> list[str]:
        return [e["type"] for e in (await api.get("/v1/events", params=params)).json()["data"]]

    assert await types(type="interaction.created") == ["interaction.created"]
    assert await types(customer_id=b["id"]) == ["customer.created", "interaction.created"]
    assert await types(customer_id=a["id"]) == ["customer.created"]
    assert await types(since=since) == ["interaction.created"]


async def test_a_failed_write_publishes_nothing(api, new_customer):
    await new_customer(email="one@example.com")
    await api.post("/v1/customers", json={"email": "ONE@example.com"})
    assert len((await api.get("/v1/events")).json()["data"]) == 1


async def test_an_event_committed_late_is_not_skipped_by_a_cursor(api, database_url, new_customer):
    """A slow transaction's event must not land behind a cursor a follower already holds."""
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        slow = await db.pool.acquire()
        transaction = slow.transaction()
        await transaction.start()
        await events.record(slow, "customer.updated", {"slow": True}, customer_id=None)

        await new_customer()  # commits after the slow one began
        page = (await api.get("/v1/events")).json()
        assert page["data"] == []  # held back until the slow transaction ends

        await transaction.commit()
        after = (
            await api.get(
                "/v1/events", params={"cursor": page["next_cursor"]} if page["next_cursor"] else {}
            )
        ).json()
        assert [e["type"] for e in after["data"]] == ["customer.updated", "customer.created"]
        await db.pool.release(slow)
    finally:
        await db.close()


async def test_a_long_write_in_another_database_does_not_hold_the_feed_back(
    api, server_url, new_customer
):
    """A shared server's other databases have their own transactions; only this one's count."""
    elsewhere = await create_database(server_url)
    try:
        other = await asyncpg.connect(asyncpg_dsn(elsewhere))
        long_write = other.transaction()
        await long_write.start()
        await other.execute("CREATE TABLE batch_job (id int)")  # holds a transaction id

        customer = await new_customer()
        page = (await api.get("/v1/events")).json()
        assert [e["customer_id"] for e in page["data"]] == [customer["id"]]
        await long_write.rollback()
        await other.close()
    finally:
        await drop_database(elsewhere)


async def test_events_need_their_scope(api, key_for):
    headers = await key_for("customers:read")
    assert_problem(await api.get("/v1/events", headers=headers), 403, "forbidden")


async def test_a_tampered_cursor_is_a_validation_error(api):
    for key in ([2**70, 1], ["x", 1], [1]):
        forged = base64.urlsafe_b64encode(json.dumps({"o": "feed", "k": key}).encode()).decode()
        response = await api.get("/v1/events", params={"cursor": forged})
        assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == "cursor"
