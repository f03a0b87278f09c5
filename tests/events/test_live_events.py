"""The process's live follower of the feed, used directly: what a subscriber may rely on."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from crm_api.core.db import Database
from crm_api.events import service as events
from crm_api.events.live import START, LiveEvents


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.connect(database_url, min_size=1, max_size=4)
    yield database
    await database.close()


async def recorded(db: Database, n: int) -> list[str]:
    """``n`` events, each committed in its own transaction; their ids in commit order."""
    ids = []
    for i in range(n):
        async with db.transaction() as conn:
            await events.record(conn, "customer.updated", {"n": i}, customer_id=None)
            ids.append(str(await conn.fetchval("SELECT id FROM events ORDER BY seq DESC LIMIT 1")))
    return ids


async def taken(stream: AsyncIterator[list], count: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < count:
        ids += [str(r["id"]) for r in await asyncio.wait_for(anext(stream), 15)]
    return ids


async def test_a_subscriber_left_behind_the_window_catches_up_without_a_gap(db):
    live = LiveEvents(db, window=2)
    slow, fast = live.follow(START), live.follow(START)
    try:
        first = await recorded(db, 1)
        assert await taken(slow, 1) == await taken(fast, 1) == first
        later = await recorded(db, 12)
        assert await taken(fast, 12) == later
        # By now the window (two events) has moved far past where the slow one stopped.

        assert await taken(slow, 12) == later
    finally:
        await slow.aclose()
        await fast.aclose()
        await live.close()


async def test_following_ends_when_the_application_stops(db):
    live = LiveEvents(db)
    stream = live.follow(None)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.2)

    await live.close()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 5)
