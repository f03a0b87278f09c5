"""The `crm-api` console script, run as an operator runs it: a subprocess, configured by
CRM_DATABASE_URL, against a database nobody has migrated yet."""

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from crm_api import migrate
from crm_api.app import create_app
from crm_api.core.db import asyncpg_dsn
from crm_api.graphql.schema import schema as graphql_schema
from live import create_database, drop_database, openapi_document, settings_for


def _script() -> str:
    beside = Path(sys.executable).parent / "crm-api"  # the venv running the tests
    found = str(beside) if beside.exists() else shutil.which("crm-api")
    assert found, "the crm-api console script is not installed (pip install -e .)"
    return found


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url)
    yield url
    await drop_database(url)


@pytest.fixture
def cli(empty_database: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``crm-api <args>``; returns the finished process (stdout, stderr as text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env |= {"CRM_DATABASE_URL": empty_database, "CRM_LOG_LEVEL": "WARNING", "NO_COLOR": "1"}
    script = _script()

    async def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = await asyncio.to_thread(
            subprocess.run,
            [script, *args],
            env=env,
            cwd=tmp_path,  # no stray .env; alembic.ini is found beside the package
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    return run


@pytest.fixture
async def app_on(empty_database: str):  # type: ignore[no-untyped-def]
    """Start the app on the CLI's database (after `migrate`); returns a client of it."""
    async with contextlib.AsyncExitStack() as stack:

        async def start() -> httpx.AsyncClient:
            application = create_app(settings_for(empty_database))
            await stack.enter_async_context(application.router.lifespan_context(application))
            transport = httpx.ASGITransport(app=application)
            client = httpx.AsyncClient(transport=transport, base_url="http://crm.test")
            return await stack.enter_async_context(client)

        yield start


async def test_migrate_then_a_created_key_works_against_the_app(cli, app_on) -> None:
    await cli("migrate")

    created = await cli("keys", "create", "--name", "shop sync", "--scope", "customers:read")
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("crm_")

    client = await app_on()
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200
    denied = await client.post("/v1/customers", json={"first_name": "Ada"}, headers=headers)
    assert denied.status_code == 403
    assert "customers:write" in denied.json()["detail"]

    listed = (await cli("keys", "list")).stdout
    [line] = [line for line in listed.splitlines() if "shop sync" in line]
    key_id, prefix = line.split()[:2]
    assert secret.startswith(prefix.removesuffix("..."))
    assert "customers:read" in line
    assert secret not in listed

    revoked = await cli("keys", "revoke", key_id)
    assert key_id in revoked.stdout
    assert "shop sync" not in (await cli("keys", "list")).stdout
    fresh = await app_on()  # another process would not have the key cached
    assert (await fresh.get("/v1/customers", headers=headers)).status_code == 401


async def test_migrate_numbers_transactions_past_those_a_restored_copy_holds(
    cli, empty_database
) -> None:
    await cli("migrate")
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        # As a copy restored from a busier server holds it: an event numbered far ahead.
        ahead = await conn.fetchval("SELECT crm_xact_id() + 1000000")
        await conn.execute(
            "INSERT INTO events (id, tx_id, type, data)"
            " VALUES (gen_random_uuid(), $1, 'customer.created', '{}')",
            ahead,
        )
        migrated = await cli("migrate")
        assert "numbering moved forward" in migrated.stderr
        assert await conn.fetchval("SELECT crm_xact_id()") > ahead
        assert "numbering" not in (await cli("migrate")).stderr  # once is enough
    finally:
        await conn.close()


async def test_keys_can_expire_and_bad_input_is_refused_plainly(cli, empty_database) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_database)
    await cli(
        "keys", "create", "--name", "utc", "--scope", "events:read", "--expires-at", "2099-01-01"
    )  # fmt: skip
    await cli(
        "keys", "create", "--name", "offset", "--scope", "pii:read",
        "--expires-at", "2099-01-01T12:00:00+02:00",
    )  # fmt: skip
    await cli(
        "keys", "create", "--name", "partner", "--scope", "customers:read",
        "--rate-limit-per-minute", "120",
    )  # fmt: skip
    conn = await asyncpg.connect(asyncpg_dsn(empty_database))
    try:
        keys = await conn.fetch("SELECT name, expires_at, rate_limit_per_minute FROM api_keys")
    finally:
        await conn.close()
    assert {k["name"]: (k["expires_at"], k["rate_limit_per_minute"]) for k in keys} == {
        "utc": (datetime(2099, 1, 1, tzinfo=UTC), None),
        "offset": (datetime(2099, 1, 1, 10, tzinfo=UTC), None),
        "partner": (None, 120),
    }

    for args in (
        ["keys", "create", "--name", "x", "--scope", "root"],
        ["keys", "create", "--name", "x", "--scope", "pii:read", "--expires-at", "2001-01-01"],
        ["keys", "create", "--name", "x", "--scope", "pii:read", "--rate-limit-per-minute", "0"],
    ):
        refused = await cli(*args, ok=False)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr, refused.stderr
    unknown = await cli("keys", "revoke", "01a207ee-3a09-74db-878b-1a87f4611734", ok=False)
    assert unknown.returncode == 1 and "No API key" in unknown.stderr
    assert "Traceback" not in unknown.stderr


async def test_export_openapi_writes_the_contract(cli, tmp_path: Path) -> None:
    out = tmp_path / "contract"
    done = await cli("export-openapi", "--out", str(out))
    assert "openapi.json" in done.stdout
    spec = json.loads((out / "openapi.json").read_text())
    expected = openapi_document()
    assert spec == expected
    assert (out / "schema.graphql").read_text().strip() == graphql_schema.as_str().strip()
