"""Assertions and helpers shared by the test modules."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx


async def events_of(api: httpx.AsyncClient, **params: object) -> list[dict]:
    """Every event in the feed matching ``params``, following cursors to the end."""
    found, cursor = [], None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return found


async def eventually_events(api: httpx.AsyncClient, count: int, **params: object) -> list[dict]:
    """``events_of`` once it holds ``count`` events: the feed shows an event only after
    every older transaction on the server has ended, so work elsewhere can delay it."""
    for _ in range(100):
        found = await events_of(api, **params)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    return found


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict:
    """The response is an RFC 9457 problem of this status and type; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"] == f"/problems/{slug}"
    assert body["title"] and body["detail"]
    return body


def ago(**delta: float) -> str:
    """An RFC 3339 timestamp ``delta`` before now."""
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()
