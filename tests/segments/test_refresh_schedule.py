"""The scheduled refresh: due segments are claimed with SKIP LOCKED, so workers share them."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from crm_api.core.db import Database
from crm_api.segments.service import refresh_due
from support import eventually_events

GERMANS = {"field": "country", "op": "eq", "value": "DE"}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url, min_size=1, max_size=4)
    yield database
    await database.close()


async def test_due_segments_are_refreshed_once_then_wait_their_interval(
    api, db, new_customer, create_segment, member_ids
):
    ada = await new_customer(address={"country": "DE"})
    daily = await create_segment(GERMANS)
    hourly = await create_segment(GERMANS, refresh_interval=3600)
    by_hand = await create_segment(GERMANS, refresh_interval=None)
    static = await create_segment(kind="static")

    assert await refresh_due(db) == 2
    assert await refresh_due(db) == 0
    for segment in (daily, hourly):
        assert await member_ids(segment["id"]) == {ada["id"]}
        fetched = (await api.get(f"/v1/segments/{segment['id']}")).json()
        interval = fetched["next_refresh_at"] > fetched["refreshed_at"]
        assert interval and fetched["refreshed_at"] is not None
    for segment in (by_hand, static):
        assert await member_ids(segment["id"]) == set()

    changed = await api.patch(f"/v1/segments/{hourly['id']}", json={"condition": {"not": GERMANS}})
    assert changed.json()["next_refresh_at"] <= changed.json()["updated_at"]  # due at once
    assert await refresh_due(db) == 1
    assert await member_ids(hourly["id"]) == set()


async def test_workers_side_by_side_refresh_each_due_segment_once(
    api, db, database_url, new_customer, create_segment
):
    for _ in range(3):
        await new_customer(address={"country": "DE"})
    for _ in range(8):
        await create_segment(GERMANS)
    other = await Database.connect(database_url, min_size=1, max_size=4)
    try:
        counts = await asyncio.gather(refresh_due(db), refresh_due(other), refresh_due(db))
    finally:
        await other.close()
    assert sum(counts) == 8
    assert len(await eventually_events(api, 24, type="segment.entered")) == 24


async def test_a_segment_that_fails_to_refresh_does_not_hold_up_the_others(
    api, db, new_customer, create_segment, sql, caplog
):
    await new_customer(address={"country": "DE"})
    broken = await create_segment(GERMANS)
    fine = await create_segment(GERMANS)
    # A stored condition this version no longer understands.
    await sql.execute(
        """UPDATE segments SET condition = '{"field": "shoe_size", "op": "eq", "value": 4}'
           WHERE id = $1""",
        broken["id"],
    )
    assert await refresh_due(db) == 1
    assert f"refreshing segment {broken['id']} failed" in caplog.text
    assert (await api.get(f"/v1/segments/{fine['id']}/count")).json()["members"] == 1
    never = "SELECT refreshed_at IS NULL FROM segments WHERE id = $1"
    assert await sql.fetchval(never, broken["id"])
