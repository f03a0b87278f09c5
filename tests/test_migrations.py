"""Alembic owns the schema: the models match the migrations, and every migration undoes
cleanly, so an operator can roll a release back and forward again."""

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from crm_api import migrate
from crm_api.core.db import asyncpg_dsn
from live import create_database, drop_database

# Alembic's env.py runs its own event loop, so every command runs in a worker thread.


async def _check(url: str) -> None:
    """`alembic check`: raises when autogenerate would find a difference to the models."""
    await asyncio.to_thread(command.check, migrate.alembic_config(url))


async def _schema_objects(url: str) -> set[str]:
    """Tables, views, sequences and types in the public schema, alembic's own excepted."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            """
            SELECT c.relname AS name FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
            UNION ALL
            SELECT t.typname FROM pg_type t
              JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
               AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
            """
        )
    finally:
        await conn.close()
    return {r["name"] for r in rows} - {"alembic_version"}


@pytest.fixture
async def empty_database(server_url: str) -> AsyncIterator[str]:
    url = await create_database(server_url)
    yield url
    await drop_database(url)


async def test_the_models_match_the_migrations(database_url: str) -> None:
    await _check(database_url)  # a copy of the template, migrated to head


async def test_downgrade_to_base_and_upgrade_again_round_trips(empty_database: str) -> None:
    url = empty_database
    await asyncio.to_thread(migrate.upgrade, url)
    migrated = await _schema_objects(url)
    assert {"customers", "interactions", "events", "api_keys"} <= migrated

    await asyncio.to_thread(migrate.downgrade, url, "base")
    assert await _schema_objects(url) == set(), "the downgrade left objects behind"

    await asyncio.to_thread(migrate.upgrade, url)
    assert await _schema_objects(url) == migrated
    await _check(url)


async def test_every_migration_downgrades_one_step_at_a_time(empty_database: str) -> None:
    url = empty_database
    config = migrate.alembic_config(url)
    revisions = list(ScriptDirectory.from_config(config).walk_revisions())  # head first
    await asyncio.to_thread(migrate.upgrade, url)
    for _ in revisions:
        await asyncio.to_thread(migrate.downgrade, url, "-1")
    assert await _schema_objects(url) == set()
    for _ in revisions:
        await asyncio.to_thread(command.upgrade, config, "+1")
    await _check(url)
