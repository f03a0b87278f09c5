"""Test databases and clients: real PostgreSQL, real HTTP semantics, no mocks.

A run migrates one template database; every test gets its own copy of it (a file copy,
tens of milliseconds), so tests never see each other's rows and may commit freely.
`CRM_TEST_DATABASE_URL` points at a server to use; unset, an embedded one is started.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from crm_api import migrate
from crm_api.api_keys import service as api_keys
from crm_api.api_keys.schemas import ApiKeyCreate
from crm_api.app import create_app
from crm_api.config import Environment, Settings
from crm_api.core.db import Database, asyncpg_dsn
from crm_api.core.scopes import Scope


def _with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (works for TCP and socket URLs alike)."""
    scheme, rest = asyncpg_dsn(url).split("://", 1)
    authority, _, tail = rest.partition("/")
    _, _, query = tail.partition("?")
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("CRM_TEST_DATABASE_URL")
    if url:
        yield url
        return
    from crm_api.core import embedded_pg

    server, url = embedded_pg.start(tmp_path_factory.mktemp("pg") / "data")
    yield url
    server.cleanup()


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(_with_database(url, "postgres")))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_db(server_url: str) -> AsyncIterator[str]:
    name = f"crm_template_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(server_url, name)
    await asyncio.to_thread(migrate.upgrade, url)
    yield name
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def database_url(server_url: str, template_db: str) -> AsyncIterator[str]:
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    await _admin(
        server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}" STRATEGY FILE_COPY'
    )
    yield _with_database(server_url, name)
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        environment=Environment.TEST,
        database_url=database_url,
        pool_min_size=1,
        pool_size=10,
        bootstrap_admin_key=False,
        access_log=False,
        _env_file=None,  # type: ignore[call-arg]
    )


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


async def issue_key(database_url: str, *scopes: Scope, name: str = "test") -> str:
    """Create a key the way `crm-api keys create` does, straight in the database."""
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        async with db.transaction() as conn:
            created = await api_keys.create_key(
                conn, None, ApiKeyCreate(name=name, scopes=list(scopes))
            )
    finally:
        await db.close()
    return created.key


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


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def new_customer(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Create a customer over REST (unique email unless given); returns its JSON."""

    async def create(**fields: object) -> dict:
        fields.setdefault("email", f"{uuid.uuid4().hex[:12]}@example.com")
        response = await api.post("/v1/customers", json=fields)
        assert response.status_code == 201, response.text
        return response.json()

    return create
