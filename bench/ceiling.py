"""The ceiling: the least a Python service can do to serve one customer by id.

Bare Starlette, a raw asyncpg pool (configured like the app's) and orjson. No auth, no
validation models, no middleware, no access log: whatever (b) and (c) cost on top of this
is the price of the framework and the app's own work.

Run as ``uvicorn --factory bench.ceiling:create_app`` with ``BENCH_DATABASE_URL`` and
``BENCH_POOL_SIZE`` set.
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SQL = "SELECT * FROM customers WHERE id = $1 AND deleted_at IS NULL"


def _json_text(value: object) -> str:
    return orjson.dumps(value).decode()


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    pass


def create_app() -> Starlette:
    url = os.environ["BENCH_DATABASE_URL"]
    pool_size = int(os.environ.get("BENCH_POOL_SIZE", "20"))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            url,
            min_size=pool_size,
            max_size=pool_size,
            statement_cache_size=1024,
            init=_init,
            # Like the app: no reset query on release (asyncpg still rolls back open
            # transactions), so neither side pays a round trip the other skips.
            reset=_keep_session,
            server_settings={"application_name": "crm-bench-ceiling", "timezone": "UTC"},
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    async def customer(request: Request) -> Response:
        try:
            customer_id = uuid.UUID(request.path_params["id"])
        except ValueError:
            return Response(b'{"detail":"not found"}', 404, media_type="application/json")
        async with request.app.state.pool.acquire() as conn:
            row = await conn.fetchrow(SQL, customer_id)
        if row is None:
            return Response(b'{"detail":"not found"}', 404, media_type="application/json")
        return Response(orjson.dumps(dict(row), default=str), media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[Route("/customers/{id}", customer), Route("/healthz", health)],
        lifespan=lifespan,
    )
