"""Test databases and clients: real PostgreSQL, real HTTP semantics, no mocks.

A run migrates one template database; every test gets its own copy of it (a file copy,
tens of milliseconds), so tests never see each other's rows and may commit freely.
`CRM_TEST_DATABASE_URL` points at a server to use; unset, an embedded one is started.
"""

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_api import migrate
from crm_api import worker as background
from crm_api.app import create_app
from crm_api.config import Settings
from crm_api.core import embedded_pg
from crm_api.core.db import Database
from crm_api.core.scopes import Scope
from live import create_database, database_name, drop_database, issue_key, settings_for
from webhook_receiver import Receiver, receiving


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    url = os.environ.get("CRM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # A folder of our own, not pytest's tmp_path: pytest prunes old numbered folders of
    # *other* runs, which would pull the data directory from under a concurrent run.
    with tempfile.TemporaryDirectory(prefix="crm-api-test-pg-") as folder:
        server, url = embedded_pg.start(Path(folder) / "data")
        yield url
        server.cleanup()


@pytest.fixture(scope="session")
async def template_db(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url)
    await asyncio.to_thread(migrate.upgrade, url)
    yield database_name(url)
    await drop_database(url)


@pytest.fixture
async def database_url(server_url: str, template_db: str) -> AsyncIterator[str]:
    url = await create_database(server_url, template=template_db)
    yield url
    await drop_database(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://crm.test") as c:
        yield c


@pytest.fixture
async def admin_key(database_url: str) -> str:
    return await issue_key(database_url, Scope.ADMIN, name="admin")


@pytest.fixture
async def api(app: object, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated with an admin key (every scope); `client` sends no key."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://crm.test", headers=headers
    ) as c:
        yield c


@pytest.fixture
def key_for(client: httpx.AsyncClient, admin_key: str):  # type: ignore[no-untyped-def]
    """Issue a key with the given scopes through the API; returns its auth headers."""

    async def issue(*scopes: str) -> dict[str, str]:
        response = await client.post(
            "/v1/api-keys",
            json={"name": "scoped", "scopes": list(scopes)},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert response.status_code == 201, response.text
        return {"Authorization": f"Bearer {response.json()['key']}"}

    return issue


@pytest.fixture
def new_customer(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Create a customer over REST (unique email unless given); returns its JSON."""

    async def create(**fields: object) -> dict:
        # A fixed prefix: a random one could start like a name a test searches for (`q`).
        fields.setdefault("email", f"customer-{uuid.uuid4().hex[:12]}@example.com")
        response = await api.post("/v1/customers", json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    return create


# Retries come within a tenth of a second instead of hours.
FAST = {
    "webhook_retry_schedule_seconds": [0, 0.1, 0.1, 0.1, 0.1, 0.1],
    "webhook_retry_jitter": 0.0,
    "webhook_timeout_seconds": 2.0,
    "schedule_seconds": 0.2,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


@pytest.fixture
async def start_worker(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start in-process workers (``**settings`` override the fast defaults)."""
    running: list[tuple[asyncio.Event, asyncio.Task[None], Database]] = []

    async def start(**overrides: Any) -> Settings:
        settings = settings_for(database_url, **(FAST | overrides))
        db = await Database.connect(database_url, min_size=1, max_size=4)
        stop = asyncio.Event()
        task = asyncio.create_task(background.run(db, settings, stop))
        running.append((stop, task, db))
        return settings

    yield start
    for stop, task, db in running:
        stop.set()
        await task
        await db.close()
