"""The zero-configuration database: a PostgreSQL server run from the ``pgserver`` wheel."""

import os
from pathlib import Path
from urllib.parse import parse_qs, urlparse

# pgserver keeps its sockets under the XDG runtime dir, read when it is imported;
# machines without a login session (containers, CI) have none set, so give it one.
os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/crm-api-runtime-{os.getuid()}")

import pgserver


def start(data_dir: Path) -> tuple[pgserver.PostgresServer, str]:
    """Start (or join) the server for ``data_dir``; return it and its asyncpg URL.

    The server stops when the last process using it exits.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    return server, to_asyncpg_url(server.get_uri())


def to_asyncpg_url(uri: str) -> str:
    """pgserver answers ``postgresql://postgres:@/postgres?host=/socket/dir``."""
    parsed = urlparse(uri)
    socket_dir = parse_qs(parsed.query)["host"][0]
    database = parsed.path.lstrip("/") or "postgres"
    return f"postgresql://{parsed.username or 'postgres'}@/{database}?host={socket_dir}"
