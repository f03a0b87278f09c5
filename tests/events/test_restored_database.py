"""A database moved to a new cluster with pg_dump and pg_restore, whose transaction ids
start over: the feed, its followers, the webhook fan-out and the KPIs go on as before."""

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from pgserver._commands import POSTGRES_BIN_PATH

from crm_api.analytics import daily_totals
from crm_api.app import create_app
from crm_api.core import embedded_pg
from crm_api.core.db import Database, asyncpg_dsn
from crm_api.webhooks import queue
from live import settings_for, with_database


async def _current_xact_id(url: str) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT pg_current_xact_id()::text::bigint"))
    finally:
        await conn.close()


def _run(tool: str, *args: str) -> None:
    # pgserver's client tools: version 16, which dumps the PostgreSQL 15 of CI machines too.
    subprocess.run([str(POSTGRES_BIN_PATH / tool), *args], check=True, capture_output=True)


@pytest.fixture
async def new_cluster(tmp_path: Path) -> AsyncIterator[str]:
    """A freshly initialised PostgreSQL server: its transaction ids start near zero."""
    server, url = await asyncio.to_thread(embedded_pg.start, tmp_path / "cluster")
    yield url
    await asyncio.to_thread(server.cleanup)


async def _restored(source_url: str, cluster_url: str, dump: Path) -> str:
    target_url = with_database(cluster_url, "restored")
    admin = await asyncpg.connect(asyncpg_dsn(cluster_url))
    await admin.execute("CREATE DATABASE restored")
    await admin.close()
    await asyncio.to_thread(_run, "pg_dump", "--format=custom", f"--file={dump}", source_url)
    await asyncio.to_thread(
        _run,
        "pg_restore",
        "--no-owner",
        "--single-transaction",
        f"--dbname={target_url}",
        str(dump),
    )
    return target_url


async def test_a_restored_copy_keeps_feed_order_cursors_fan_out_and_kpis(
    api, database_url, new_cluster, receiver, new_customer, tmp_path
):
    # The source's transactions must be ahead of the new cluster's, as a busy server's are.
    new_cluster_at = await _current_xact_id(new_cluster)
    while await _current_xact_id(database_url) < new_cluster_at + 1000:
        pass
    endpoint = await api.post(
        "/v1/webhook-endpoints", json={"url": receiver.url, "event_types": ["customer.*"]}
    )
    assert endpoint.status_code == 201, endpoint.text
    first = await new_customer()
    purchase = {"type": "purchase", "amount": 1500, "currency": "EUR"}
    assert (
        await api.post("/v1/interactions", json={"customer_id": first["id"], **purchase})
    ).status_code == 201
    follower = (await api.get("/v1/events")).json()
    source = await Database.connect(database_url, min_size=1, max_size=1)
    async with source.connection() as conn:
        assert (await queue.fan_out(conn)).deliveries == 1
        assert await daily_totals.roll(conn) == 1

    restored_url = await _restored(database_url, new_cluster, tmp_path / "crm.dump")
    await source.close()

    app = create_app(settings_for(restored_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://crm.test", headers=api.headers
        ) as moved:
            second = (
                await moved.post("/v1/customers", json={"email": "second@example.com"})
            ).json()
            recorded = await moved.post(
                "/v1/interactions", json={"customer_id": second["id"], **purchase}
            )
            assert recorded.status_code == 201, recorded.text

            facts = {"type": ["customer.created", "interaction.created"]}
            whole = (await moved.get("/v1/events", params=facts)).json()["data"]
            assert [(e["type"], e["customer_id"]) for e in whole] == [
                ("customer.created", first["id"]),
                ("interaction.created", first["id"]),
                ("customer.created", second["id"]),
                ("interaction.created", second["id"]),
            ]
            news = await moved.get("/v1/events", params={"cursor": follower["next_cursor"]})
            assert [e["customer_id"] for e in news.json()["data"]] == [second["id"]] * 2

            async with app.state.db.connection() as conn:
                assert (await queue.fan_out(conn)).deliveries == 1
                assert await daily_totals.roll(conn) == 1
            deliveries = await moved.get(
                f"/v1/webhook-endpoints/{endpoint.json()['id']}/deliveries"
            )
            assert (
                sorted(d["event_type"] for d in deliveries.json()["data"])
                == ["customer.created"] * 2
            )

            kpis = await moved.get(
                "/v1/analytics/kpis",
                params={"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
            )
            assert (kpis.json()["orders"], kpis.json()["revenue"]) == (2, 3000)
