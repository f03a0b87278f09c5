"""Fixtures of the analytics tests."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from analytics.history import History
from crm_api.core.db import asyncpg_dsn


@pytest.fixture
async def history(api: httpx.AsyncClient, database_url: str) -> AsyncIterator[History]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    yield History(api, conn, datetime.now(UTC))
    await conn.close()
