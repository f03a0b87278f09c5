"""Alembic environment: async, on the URL the application uses, one migrator at a time."""

import asyncio
import os

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from crm_api.core.db import sqlalchemy_url
from crm_api.models import metadata

# Any fixed number: held while migrating so that replicas starting together take turns.
MIGRATION_LOCK = 7_254_118


def _url() -> str:
    url = context.config.attributes.get("database_url") or os.environ.get("CRM_DATABASE_URL")
    if not url:
        raise RuntimeError("set CRM_DATABASE_URL to migrate")
    return sqlalchemy_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    try:
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})


async def _main() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
