"""Loyalty fixtures: programmes and accounts over REST, the books read straight from SQL."""

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from crm_api.config import Settings
from crm_api.core.db import Database, asyncpg_dsn


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, to move time (rewrite timestamps) and read the books."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield conn
    await conn.close()


@pytest.fixture
def create_program(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def create(**fields: object) -> dict:
        body = {"name": f"programme {uuid.uuid4().hex[:8]}", "currency": "EUR",
                "points_per_unit": 1, **fields}  # fmt: skip
        response = await api.post("/v1/loyalty/programs", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create


@pytest.fixture
def enrol(api: httpx.AsyncClient, new_customer: Callable[..., Any]) -> Callable[..., Any]:
    """Enrol a new customer (or the one given) in a programme; returns the account."""

    async def run(program: dict, customer_id: str | None = None) -> dict:
        customer_id = customer_id or (await new_customer())["id"]
        response = await api.post(
            "/v1/loyalty/accounts", json={"customer_id": customer_id, "program_id": program["id"]}
        )
        assert response.status_code == 201, response.text
        return response.json()

    return run


@pytest.fixture
def write(api: httpx.AsyncClient) -> Callable[..., Any]:
    """POST an earn/redeem/adjust to an account; returns the response."""

    async def run(account: dict, action: str, headers: dict | None = None, **body: object):
        return await api.post(
            f"/v1/loyalty/accounts/{account['id']}/{action}", json=body, headers=headers or {}
        )

    return run


@pytest.fixture
def earned(write: Callable[..., Any]) -> Callable[..., Any]:
    async def run(account: dict, points: int) -> dict:
        response = await write(account, "earn", points=points)
        assert response.status_code == 201, response.text
        return response.json()

    return run


@pytest.fixture
def account_of(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def get(account: dict) -> dict:
        response = await api.get(f"/v1/loyalty/accounts/{account['id']}")
        assert response.status_code == 200, response.text
        return response.json()

    return get


@pytest.fixture
def books(sql: asyncpg.Connection) -> Callable[..., Any]:
    """Assert an account's books balance; returns its balance.

    balance == sum of its entries == sum of its lots' remaining == the last entry's
    balance_after; the entries' seqs run 1..n without gaps, every balance_after is the
    running sum, and each debit's lot uses add up to its points.
    """

    async def check(account: dict) -> int:
        account_id = uuid.UUID(account["id"])
        balance = await sql.fetchval(
            "SELECT balance FROM loyalty_accounts WHERE id = $1", account_id
        )
        entries = await sql.fetch(
            "SELECT id, seq, kind, points, balance_after FROM loyalty_entries"
            " WHERE account_id = $1 ORDER BY seq",
            account_id,
        )
        lots = await sql.fetchval(
            "SELECT coalesce(sum(remaining), 0) FROM loyalty_lots WHERE account_id = $1",
            account_id,
        )
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        running = 0
        for entry in entries:
            running += entry["points"]
            assert entry["balance_after"] == running, entry
        assert balance == running == lots
        unmatched = await sql.fetch(
            "SELECT e.id FROM loyalty_entries e"
            " JOIN loyalty_lot_uses u ON u.customer_id = e.customer_id AND u.entry_id = e.id"
            " WHERE e.account_id = $1 GROUP BY e.id, e.points HAVING sum(u.points) <> -e.points",
            account_id,
        )
        assert not unmatched
        return balance

    return check


@pytest.fixture
def backdate(sql: asyncpg.Connection) -> Callable[..., Any]:
    """Move a lot's clock back by ``days`` (its earning, availability and expiry)."""

    async def run(entry: dict, days: float) -> None:
        await sql.execute(
            "UPDATE loyalty_lots SET earned_at = earned_at - make_interval(secs => $2),"
            " available_at = available_at - make_interval(secs => $2),"
            " expires_at = expires_at - make_interval(secs => $2)"
            " WHERE entry_id = $1",
            uuid.UUID(entry["id"]),
            days * 86400,
        )

    return run


@pytest.fixture
def run_job(database_url: str, settings: Settings) -> Callable[..., Any]:
    """Run a scheduled job once, as the worker or the CLI would; returns its count."""

    async def run(job: Callable[[Database, Settings], Any]) -> int:
        db = await Database.connect(database_url, min_size=1, max_size=2)
        try:
            return await job(db, settings)
        finally:
            await db.close()

    return run
