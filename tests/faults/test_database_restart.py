"""The database goes away under load and comes back: requests fail fast with a 503 problem
and `Retry-After`, the pool recovers by itself, and retried writes end exactly once."""

import asyncio
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from pgserver._commands import pg_ctl

from crm_api import migrate
from crm_api.app import create_app
from crm_api.core import embedded_pg
from crm_api.core.scopes import Scope
from live import issue_key, serve, settings_for

WRITERS = 12
BULK = 20_000  # lines of an import the restart interrupts: several batches in flight


async def _write_until(
    http: httpx.AsyncClient, stop: asyncio.Event, attempts: dict[str, list[httpx.Response]]
) -> None:
    """Create customers one after another, each under its own Idempotency-Key."""
    while not stop.is_set():
        key = str(uuid.uuid4())
        response = await http.post(
            "/v1/customers",
            json={"kind": "consumer", "first_name": "Load", "external_id": key},
            headers={"Idempotency-Key": key},
        )
        attempts[key] = [response]
        # As a well-behaved client does: wait as long as a 503 asks.
        await asyncio.sleep(int(response.headers.get("retry-after", 0)) or 0.01)


async def _record_notes(http: httpx.AsyncClient, customer_id: str) -> list[httpx.Response]:
    """Concurrent notes on the timeline, none with an Idempotency-Key."""
    note = {"customer_id": customer_id, "type": "note", "body": "called back"}
    return list(await asyncio.gather(*(http.post("/v1/interactions", json=note) for _ in range(8))))


async def _earn_points(http: httpx.AsyncClient, account_id: str) -> list[httpx.Response]:
    """Concurrent earns and redeems on one account, none with an Idempotency-Key: each
    goes to the shared ledger writer."""
    path = f"/v1/loyalty/accounts/{account_id}"
    return list(
        await asyncio.gather(
            *(http.post(f"{path}/earn", json={"points": 5}) for _ in range(4)),
            *(http.post(f"{path}/redeem", json={"points": 1}) for _ in range(4)),
        )
    )


async def _until(predicate, what: str, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + seconds
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("mode", ["fast", "immediate"])  # a clean restart, and a crash
async def test_a_database_restart_under_load_loses_nothing_and_heals_itself(
    tmp_path: Path, mode: str
) -> None:
    server, url = embedded_pg.start(tmp_path / "data")
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        key = await issue_key(url, Scope.ADMIN)
        app = create_app(settings_for(url))
        attempts: dict[str, list[httpx.Response]] = {}
        with serve(app) as base_url:
            async with httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            ) as http:

                async def recovered() -> bool:
                    return (await http.get("/v1/customers?limit=1")).status_code == 200

                stop = asyncio.Event()
                writers = [
                    asyncio.create_task(_write_until(http, stop, attempts)) for _ in range(WRITERS)
                ]
                await _until(lambda: _answered(attempts, 201, at_least=20), "writes before")
                account = await _funded_account(http, attempts)
                importing = asyncio.create_task(_import_bulk(http))
                await asyncio.sleep(0.3)  # into the import, unless this machine is very fast
                await asyncio.to_thread(
                    pg_ctl, ["-w", "-m", mode, "stop"], pgdata=server.pgdata,
                    user=server.system_user,
                )  # fmt: skip
                await _until(lambda: _answered(attempts, 503, at_least=WRITERS), "503s")
                buyer = next(
                    t[-1].json()["id"] for t in attempts.values() if t[-1].status_code == 201
                )
                # Recordings that share a statement fail together, each with its own 503.
                during = await _record_notes(http, buyer)
                assert {r.status_code for r in during} == {503}, [r.text for r in during]
                # So do ledger writes that share a transaction.
                during = await _earn_points(http, account)
                assert {r.status_code for r in during} == {503}, [r.text for r in during]
                await asyncio.to_thread(server.ensure_postgres_running)
                await _until(recovered, "recovery")

                async def notes_recorded() -> bool:
                    return {r.status_code for r in await _record_notes(http, buyer)} == {201}

                await _until(notes_recorded, "recordings after")

                async def points_written() -> bool:
                    return {r.status_code for r in await _earn_points(http, account)} == {201}

                await _until(points_written, "ledger writes after")
                served = len(attempts)
                await _until(
                    lambda: _answered_since(attempts, served, 201, at_least=20), "writes after"
                )
                stop.set()
                await asyncio.gather(*writers)

                # The import was cut short, or had ended: all of it or nothing was written.
                imported = await importing
                assert imported.status_code in (200, 503), imported.text
                expected = BULK if imported.status_code == 200 else 0

                statuses = {r.status_code for tries in attempts.values() for r in tries}
                assert statuses <= {201, 503}, statuses
                for tries in attempts.values():
                    if tries[-1].status_code == 503:
                        problem = tries[-1]
                        assert problem.headers["content-type"] == "application/problem+json"
                        assert problem.json()["status"] == 503
                        assert int(problem.headers["retry-after"]) >= 1
                # A client retries what failed with the same key: each write ends exactly once.
                for key_, tries in attempts.items():
                    if tries[-1].status_code != 201:
                        retry = await http.post(
                            "/v1/customers",
                            json={"kind": "consumer", "first_name": "Load", "external_id": key_},
                            headers={"Idempotency-Key": key_},
                        )
                        assert retry.status_code == 201, retry.text
                        tries.append(retry)

        await _check_books(url, attempts, bulk=expected)
    finally:
        server.cleanup()


async def _import_bulk(http: httpx.AsyncClient) -> httpx.Response:
    body = "".join(f'{{"external_id": "bulk-{n}", "first_name": "Bulk"}}\n' for n in range(BULK))
    return await http.post(
        "/v1/customers/import", content=body, headers={"Content-Type": "application/x-ndjson"}
    )


async def _funded_account(
    http: httpx.AsyncClient, attempts: dict[str, list[httpx.Response]]
) -> str:
    """A loyalty account, with points, of a customer the load created."""
    customer = next(t[-1].json()["id"] for t in attempts.values() if t[-1].status_code == 201)
    program = await http.post(
        "/v1/loyalty/programs", json={"name": "restart", "currency": "EUR", "points_per_unit": 1}
    )
    account = await http.post(
        "/v1/loyalty/accounts",
        json={"customer_id": customer, "program_id": program.json()["id"]},
    )
    account_id: str = account.json()["id"]
    funded = await http.post(f"/v1/loyalty/accounts/{account_id}/earn", json={"points": 100})
    assert funded.status_code == 201, funded.text
    return account_id


async def _answered(attempts: dict[str, list[httpx.Response]], status: int, *, at_least: int):  # type: ignore[no-untyped-def]
    return sum(tries[-1].status_code == status for tries in list(attempts.values())) >= at_least


async def _answered_since(
    attempts: dict[str, list[httpx.Response]], start: int, status: int, *, at_least: int
) -> bool:
    later = list(attempts.values())[start:]
    return sum(tries[-1].status_code == status for tries in later) >= at_least


async def _check_books(url: str, attempts: dict[str, list[httpx.Response]], *, bulk: int) -> None:
    """One customer per key, created once, with exactly one `customer.created` event; and
    ``bulk`` customers of the import, each with its event."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT c.external_id, c.id, c.version,
                      (SELECT count(*) FROM events e
                       WHERE e.customer_id = c.id AND e.type = 'customer.created') AS created
               FROM customers c"""
        )
    finally:
        await conn.close()
    imported = [r for r in rows if r["external_id"].startswith("bulk-")]
    assert len(imported) == bulk and all(r["created"] == 1 for r in imported)
    stored = {r["external_id"]: r for r in rows if not r["external_id"].startswith("bulk-")}
    assert stored.keys() == attempts.keys()
    for key, tries in attempts.items():
        assert tries[-1].json()["id"] == str(stored[key]["id"])
        assert stored[key]["version"] == 1 and stored[key]["created"] == 1
