"""The benchmark's database: which server, a fresh migrated database on it, and its chores."""

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from crm_api import migrate
from crm_api.api_keys import service as api_keys
from crm_api.api_keys.schemas import ApiKeyCreate
from crm_api.core.db import asyncpg_dsn


@dataclass(frozen=True, slots=True)
class Server:
    url: str  # asyncpg URL of a database on the server we may connect to for admin work
    source: str  # where the URL came from, for the report


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (TCP and socket URLs alike)."""
    scheme, rest = asyncpg_dsn(url).split("://", 1)
    authority, _, tail = rest.partition("/")
    _, _, query = tail.partition("?")
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


def describe(url: str) -> str:
    """The URL without its password."""
    scheme, rest = url.split("://", 1)
    authority, _, tail = rest.partition("/")
    if "@" in authority:
        user, _, host = authority.rpartition("@")
        authority = f"{user.partition(':')[0]}@{host}"
    return f"{scheme}://{authority}/{tail}"


@contextmanager
def server() -> Iterator[Server]:
    """CRM_BENCH_DATABASE_URL, else CRM_DATABASE_URL, else an embedded PostgreSQL in a temp dir."""
    for variable in ("CRM_BENCH_DATABASE_URL", "CRM_DATABASE_URL"):
        url = os.environ.get(variable)
        if url:
            yield Server(asyncpg_dsn(url), variable)
            return
    from crm_api.core import embedded_pg

    with tempfile.TemporaryDirectory(prefix="crm-bench-pg-") as folder:
        pg, url = embedded_pg.start(Path(folder) / "data")
        try:
            yield Server(url, "embedded pgserver")
        finally:
            pg.cleanup()


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create(server: Server) -> str:
    """A new, migrated database on ``server``; returns its URL."""
    name = f"crm_bench_{uuid.uuid4().hex[:10]}"
    await _admin(server.url, f'CREATE DATABASE "{name}"')
    url = with_database(server.url, name)
    await migrate.upgrade_async(url)
    return url


async def drop(server: Server, url: str) -> None:
    name = asyncpg_dsn(url).split("://", 1)[1].partition("/")[2].partition("?")[0]
    await _admin(server.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def issue_key(url: str, name: str, *scopes: str) -> str:
    """An API key made the way `crm-api keys create` makes one."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            created = await api_keys.create_key(
                conn, None, ApiKeyCreate.model_validate({"name": name, "scopes": list(scopes)})
            )
    finally:
        await conn.close()
    return created.key


async def empty_customers(conn: asyncpg.Connection) -> None:
    """No customers and nothing hanging off them (interactions, events, idempotency...)."""
    await conn.execute("TRUNCATE customers, events RESTART IDENTITY CASCADE")


async def checkpoint(conn: asyncpg.Connection) -> None:
    """Flush dirty pages now so a checkpoint is less likely to land inside a timed section."""
    with suppress(asyncpg.InsufficientPrivilegeError):
        await conn.execute("CHECKPOINT")


async def settle(url: str) -> None:
    """VACUUM ANALYZE of the tables that hold rows: the visibility map and statistics a
    long-running table would have.

    Empty tables stay unvacuumed, as in a new deployment. Vacuumed empty, a table counts
    as certainly empty to the planner, and plans cached per connection, such as foreign
    key checks, scan it sequentially until autovacuum's next pass: the first round's
    writes would slow down as the table filled, an artefact of the set-up.
    """
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables"
        )
        for table in tables:
            if await conn.fetchval(f"SELECT EXISTS (SELECT FROM {table['name']})"):
                await conn.execute(f"VACUUM ANALYZE {table['name']}")
        await checkpoint(conn)
    finally:
        await conn.close()


async def customer_ids(url: str) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        return [r["id"] for r in await conn.fetch("SELECT id FROM customers")]
    finally:
        await conn.close()


async def count(url: str, table: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


async def version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def about(server: Server, url: str) -> dict[str, str]:
    """The server a run used, for its results: where from (no password) and its version."""
    return {
        "database": f"{describe(server.url)} from {server.source}",
        "postgres": (await version(url)).split()[0],
    }
