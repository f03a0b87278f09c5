"""The database: table metadata, the asyncpg pool, and SQLAlchemy Core compiled for asyncpg.

SQLAlchemy builds every statement; asyncpg runs it. Skipping the async ORM/engine layer
keeps the hot paths near raw-driver speed (see DESIGN.md), and statements that do not
change shape are compiled once at import time.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from crm_api.core.json import dumps

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

_DIALECT = pg_asyncpg.dialect()
Record = asyncpg.Record
Connection = asyncpg.Connection
# Reads that need no transaction run on the pool itself: it acquires and releases per
# statement, which costs less than holding a connection through the request.
Queryable = asyncpg.Connection | asyncpg.Pool


def constant(value: Any, type_: Any = None) -> sa.ColumnElement[Any]:
    """``value`` written into the SQL text instead of sent as a parameter.

    For a constant of the code in a statement compiled once: a prepared statement's
    generic plan then sees it as the custom plans do, and costs no more than they do, so
    PostgreSQL keeps it instead of planning every execution anew.
    """
    bound = sa.literal(value, type_)
    sql = bound.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return sa.literal_column(str(sql), bound.type)


def recordset(table: sa.Table, param: str, columns: Sequence[str]) -> sa.TableValuedAlias:
    """SQL: the JSON array ``param`` as rows of ``table``'s ``columns``. One statement so
    takes one row or many."""
    return (
        sa.func.jsonb_populate_recordset(
            sa.literal_column(f"NULL::{table.name}"), sa.bindparam(param, type_=JSONB)
        )
        .table_valued(*(sa.column(c, table.c[c].type) for c in columns))
        .alias(param)
    )


def json_rows(
    param: str, columns: Mapping[str, Any], *, name: str | None = None
) -> sa.TableValuedAlias:
    """SQL: the JSON array ``param`` as rows of ``columns`` (name: type), for rows that
    are no table's; ``name`` them when a table shares the parameter's."""
    return (
        sa.func.jsonb_to_recordset(sa.bindparam(param, type_=JSONB))
        .table_valued(*(sa.column(name, type_) for name, type_ in columns.items()))
        .render_derived(with_types=True)
        .alias(name or param)
    )


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement rendered for asyncpg: SQL text plus the order of its parameters."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]

    @classmethod
    def of(cls, statement: sa.Executable) -> "Compiled":
        compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        return cls(str(compiled), tuple(compiled.positiontup or ()), dict(compiled.params))

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] if n in params else self.defaults[n] for n in self.names]

    async def fetch(self, conn: Queryable, **params: Any) -> list[Record]:
        return await conn.fetch(self.sql, *self.args(params))

    async def fetchrow(self, conn: Queryable, **params: Any) -> Record | None:
        return await conn.fetchrow(self.sql, *self.args(params))

    async def fetchval(self, conn: Queryable, **params: Any) -> Any:
        return await conn.fetchval(self.sql, *self.args(params))

    async def execute(self, conn: Queryable, **params: Any) -> str:
        return await conn.execute(self.sql, *self.args(params))


async def fetch(conn: Queryable, statement: sa.Executable) -> list[Record]:
    """Run a statement built per call (dynamic filters); its literals become parameters."""
    c = Compiled.of(statement)
    return await conn.fetch(c.sql, *c.args({}))


async def fetchrow(conn: Queryable, statement: sa.Executable) -> Record | None:
    c = Compiled.of(statement)
    return await conn.fetchrow(c.sql, *c.args({}))


async def fetchval(conn: Queryable, statement: sa.Executable) -> Any:
    c = Compiled.of(statement)
    return await conn.fetchval(c.sql, *c.args({}))


# jsonb's binary wire format is a version byte, then the JSON text.
_JSONB_VERSION = b"\x01"


def _jsonb_dumps(value: Any) -> bytes:
    return _JSONB_VERSION + dumps(value)


def _jsonb_loads(data: bytes) -> Any:
    return orjson.loads(memoryview(data)[1:])


async def _init_connection(conn: Connection) -> None:
    # Binary codecs: no text round trip per value, and COPY (binary only) can write them.
    await conn.set_type_codec(
        "json", encoder=dumps, decoder=orjson.loads, schema="pg_catalog", format="binary"
    )
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_dumps, decoder=_jsonb_loads, schema="pg_catalog", format="binary"
    )


async def _open(*args: Any, **kwargs: Any) -> Connection:
    """asyncpg's connect, with a server that is down reported as a connection error.

    An absent socket file (the server stopped) raises FileNotFoundError, which is no
    ConnectionError; a request must still learn "database unavailable", not a crash.
    """
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as exc:
        if isinstance(exc, ConnectionError):
            raise
        raise ConnectionRefusedError(f"cannot reach the database: {exc}") from exc


async def _keep_session(conn: Connection) -> None:
    """Replaces asyncpg's reset query on release (a round trip per request).

    asyncpg still rolls back an open transaction itself; nothing else needs resetting,
    since requests set no session state (advisory locks are transaction-scoped).
    """


def asyncpg_dsn(url: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+asyncpg://``) as well as plain ones."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep and scheme.startswith("postgres") else url


def sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + asyncpg_dsn(url).partition("://")[2]


class Database:
    """The process-wide connection pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        acquire_timeout: float = 10.0,
        statement_timeout_ms: int = 30_000,
    ) -> "Database":
        pool = await asyncpg.create_pool(
            asyncpg_dsn(url),
            min_size=min(min_size, max_size),
            max_size=max_size,
            timeout=acquire_timeout,
            command_timeout=None,
            statement_cache_size=1024,
            connect=_open,
            init=_init_connection,
            reset=_keep_session,
            server_settings={
                "application_name": "crm-api",
                "statement_timeout": str(statement_timeout_ms),
                "timezone": "UTC",
            },
        )
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
