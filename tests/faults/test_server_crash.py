"""The server process is killed (SIGKILL) in the middle of writes: nothing is half-written,
every retried write ends exactly once, and every committed event reaches its subscriber."""

import asyncio
import os
import signal
import uuid

import asyncpg
import httpx

from crm_api.core.db import asyncpg_dsn
from live import free_port, ready, server_process

WRITERS = 8
ITEMS = [{"sku": f"SKU-{n}", "quantity": n, "unit_price": 100 * n} for n in (1, 2, 3)]


Write = tuple[str, str, dict]  # (path, Idempotency-Key, body)


async def _customer_then_purchase(http: httpx.AsyncClient, stop: asyncio.Event, log: list) -> None:
    """Each round: a customer, then a purchase of three lines; every attempt is logged with
    its outcome (a status, or None when the connection died under it)."""
    while not stop.is_set():
        customer_key = str(uuid.uuid4())
        body = {"kind": "consumer", "external_id": customer_key}
        customer: Write = ("/v1/customers", customer_key, body)
        response = await _attempt(http, customer, log)
        if response is None or response.status_code != 201:
            return
        purchase: Write = ("/v1/interactions", str(uuid.uuid4()), {
            "customer_id": response.json()["id"], "type": "purchase", "amount": 1400,
            "currency": "EUR", "items": ITEMS})  # fmt: skip
        if await _attempt(http, purchase, log) is None:
            return


async def _attempt(http: httpx.AsyncClient, write: Write, log: list) -> httpx.Response | None:
    path, key, body = write
    try:
        response = await http.post(path, json=body, headers={"Idempotency-Key": key})
    except httpx.TransportError:
        log.append((write, None))
        return None
    log.append((write, response.status_code))
    return response


async def test_a_killed_server_leaves_no_partial_write_and_loses_no_event(
    database_url: str, admin_key: str, api: httpx.AsyncClient, receiver, start_worker
) -> None:
    endpoint = await api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["customer.created", "interaction.created"]},
    )
    assert endpoint.status_code == 201, endpoint.text
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {admin_key}"}
    log: list[tuple[Write, int | None]] = []

    with server_process(database_url, port) as server:
        await ready(base_url)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
            stop = asyncio.Event()
            writers = [
                asyncio.create_task(_customer_then_purchase(http, stop, log))
                for _ in range(WRITERS)
            ]
            while sum(status == 201 for _, status in log) < 60:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            os.kill(server.pid, signal.SIGKILL)
            stop.set()
            await asyncio.gather(*writers)
    assert {status for _, status in log} <= {201, None}
    cut_off = [write for write, status in log if status is None]
    assert cut_off, "the kill interrupted no request; the test proved nothing"
    await _assert_whole(database_url)

    # The client retries what it never heard back about, with the same keys.
    with server_process(database_url, port):
        await ready(base_url)
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
            for path, key, body in cut_off:
                retry = await http.post(path, json=body, headers={"Idempotency-Key": key})
                assert retry.status_code in (200, 201), retry.text
    await _assert_whole(database_url)
    customers, interactions = await _counts(database_url)
    succeeded = {write[1] for write, status in log if status == 201}
    assert customers + interactions == len(succeeded | {key for _, key, _ in cut_off})

    # Every committed event reaches the subscriber, once the worker runs again.
    await start_worker()
    expected = await _events(database_url)
    for _ in range(600):
        if _delivered(receiver) >= expected:
            break
        await asyncio.sleep(0.05)
    assert _delivered(receiver) == expected


def _delivered(receiver) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(r.json["type"], r.json["data"]["id"]) for r in receiver.received}


async def _query(database_url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def _assert_whole(database_url: str) -> None:
    """No purchase without all its lines, no change without its event."""
    partial = await _query(
        database_url,
        """SELECT i.id FROM interactions i
           WHERE (SELECT count(*) FROM interaction_items t
                  WHERE t.customer_id = i.customer_id AND t.interaction_id = i.id) <> 3""",
    )
    assert partial == []
    unannounced = await _query(
        database_url,
        """SELECT id FROM customers c WHERE (SELECT count(*) FROM events e
               WHERE e.type = 'customer.created' AND e.customer_id = c.id) <> 1
           UNION ALL
           SELECT id FROM interactions i WHERE (SELECT count(*) FROM events e
               WHERE e.type = 'interaction.created' AND e.data->>'id' = i.id::text) <> 1""",
    )
    assert unannounced == []


async def _counts(database_url: str) -> tuple[int, int]:
    rows = await _query(
        database_url,
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM interactions)",
    )
    return rows[0][0], rows[0][1]


async def _events(database_url: str) -> set[tuple[str, str]]:
    """The committed events the endpoint subscribes to, as (type, resource id)."""
    rows = await _query(
        database_url,
        """SELECT type, data->>'id' AS id FROM events
           WHERE type IN ('customer.created', 'interaction.created')""",
    )
    return {(r["type"], r["id"]) for r in rows}
