"""Segment fixtures: segments, searches, purchases and scoring runs written straight to SQL."""

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from crm_api.core.db import asyncpg_dsn


@pytest.fixture
def create_segment(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Create a segment over REST (a rule segment unless told); returns its JSON."""

    async def create(condition: dict | None = None, **fields: object) -> dict:
        body = {"name": f"segment {uuid.uuid4().hex[:8]}", **fields}
        if condition is not None:
            body["condition"] = condition
        response = await api.post("/v1/segments", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create


@pytest.fixture
def search(api: httpx.AsyncClient) -> Callable[..., Any]:
    """The ids of every customer ``POST /v1/customers/search`` finds for a condition."""

    async def run(condition: dict, headers: dict | None = None) -> set[str]:
        found, cursor = set(), None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            response = await api.post(
                "/v1/customers/search",
                json={"condition": condition},
                params=params,
                headers=headers or {},
            )
            assert response.status_code == 200, response.text
            page = response.json()
            found |= {c["id"] for c in page["data"]}
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return found

    return run


@pytest.fixture
def refresh(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def run(segment_id: str) -> dict:
        response = await api.post(f"/v1/segments/{segment_id}/refresh")
        assert response.status_code == 200, response.text
        return response.json()

    return run


@pytest.fixture
def member_ids(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def members(segment_id: str) -> set[str]:
        response = await api.get(f"/v1/segments/{segment_id}/members", params={"limit": 200})
        assert response.status_code == 200, response.text
        return {c["id"] for c in response.json()["data"]}

    return members


@pytest.fixture
def purchase(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Record a purchase ``days_ago`` days ago; items are (sku, category, quantity, price)."""

    async def buy(
        customer_id: str,
        *items: tuple[str, str | None, int, int],
        days_ago: float = 1,
        channel: str = "web",
        currency: str = "EUR",
    ) -> dict:
        lines = [
            {"sku": sku, "category": category, "quantity": quantity, "unit_price": price}
            for sku, category, quantity, price in items
        ]
        occurred_at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
        response = await api.post(
            "/v1/interactions",
            json={
                "customer_id": customer_id,
                "type": "purchase",
                "channel": channel,
                "occurred_at": occurred_at,
                "amount": sum(q * p for _, _, q, p in items) or 100,
                "currency": currency,
                "items": lines,
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    return buy


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database, for rows no API writes yet (scoring runs)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield conn
    await conn.close()


@pytest.fixture
def scoring_run(sql: asyncpg.Connection) -> Callable[..., Any]:
    """Insert a finished run of ``scorer`` with scores {customer_id: (score, label)}."""

    async def insert(
        scorer: str,
        scores: dict[str, tuple[float | None, str | None]],
        *,
        status: str = "succeeded",
        finished_minutes_ago: float = 0,
    ) -> uuid.UUID:
        run_id = uuid.uuid4()
        finished_at = datetime.now(UTC) - timedelta(minutes=finished_minutes_ago)
        await sql.execute(
            """INSERT INTO scoring_runs (id, scorer, scorer_version, kind, config,
                   observation_end, time_unit, status, finished_at)
               VALUES ($1, $2, '1', 'segmentation', '{}', now(), 'weeks', $3, $4)""",
            run_id,
            scorer,
            status,
            finished_at,
        )
        await sql.executemany(
            """INSERT INTO customer_scores (customer_id, run_id, scorer, kind, score, label)
               VALUES ($1, $2, $3, 'segmentation', $4, $5)""",
            [(uuid.UUID(c), run_id, scorer, s, label) for c, (s, label) in scores.items()],
        )
        return run_id

    return insert
