"""Helpers for tests that step outside the per-test `app`/`client` fixtures: databases of
their own (empty, or copied from the migrated template), keys issued straight into them,
the app under a real uvicorn server on a loopback port, and the OpenAPI document.
"""

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from crm_api.api_keys import service as api_keys
from crm_api.api_keys.schemas import ApiKeyCreate
from crm_api.app import create_app
from crm_api.config import Environment, Settings
from crm_api.core.db import Database, asyncpg_dsn
from crm_api.core.scopes import Scope


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (TCP and socket URLs alike)."""
    scheme, rest = asyncpg_dsn(url).split("://", 1)
    authority, _, tail = rest.partition("/")
    _, _, query = tail.partition("?")
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(with_database(server_url, "postgres")))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_url: str, *, template: str | None = None) -> str:
    """A new database (empty, or a copy of ``template``); returns its URL."""
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{copy}')
    return with_database(server_url, name)


def database_name(url: str) -> str:
    return asyncpg_dsn(url).split("://", 1)[1].partition("/")[2].partition("?")[0]


async def drop_database(url: str) -> None:
    await _admin(url, f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document the app serves, built as `crm-api export-openapi` builds it."""
    app = create_app(Settings(database_url="postgresql://unused/", _env_file=None))  # type: ignore[call-arg]
    return app.openapi()


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Test settings; rate limiting is off unless ``overrides`` sets a limit."""
    fields: dict[str, Any] = {
        "environment": Environment.TEST,
        "database_url": database_url,
        "pool_min_size": 1,
        "pool_size": 10,
        "bootstrap_admin_key": False,
        "access_log": False,
        "rate_limit_per_minute": 0,
    }
    return Settings(**(fields | overrides), _env_file=None)  # type: ignore[call-arg]


async def issue_key(database_url: str, *scopes: Scope, name: str = "test", **fields: Any) -> str:
    db = await Database.connect(database_url, min_size=1, max_size=1)
    try:
        async with db.transaction() as conn:
            data = ApiKeyCreate(name=name, scopes=list(scopes), **fields)
            created = await api_keys.create_key(conn, None, data)
    finally:
        await db.close()
    return created.key


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread with its own event loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server_process(
    database_url: str, port: int, *options: str, **settings: str
) -> Iterator[subprocess.Popen]:
    """`crm-api serve` as operators run it, in a process of its own (``options`` added),
    on ``database_url`` (migrated already), with no worker and, unless ``settings`` (CRM_
    variables) say otherwise, no rate limit."""
    env = os.environ | {
        "CRM_DATABASE_URL": database_url,
        "CRM_ENVIRONMENT": "test",
        "CRM_BOOTSTRAP_ADMIN_KEY": "false",
        "CRM_WORKER_IN_PROCESS": "false",
        "CRM_RATE_LIMIT_PER_MINUTE": "0",
        "CRM_LOG_LEVEL": "WARNING",
        **settings,
    }
    command = [str(Path(sys.executable).with_name("crm-api")), "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--no-migrate", *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def ready(base_url: str) -> None:
    """Wait until the server at ``base_url`` answers /readyz."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        for _ in range(600):
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"the server at {base_url} did not get ready")
