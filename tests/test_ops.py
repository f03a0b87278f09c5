"""What operators and load balancers rely on: health, readiness, request ids, offline docs."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from crm_api.app import create_app
from crm_api.core.db import asyncpg_dsn
from live import settings_for
from support import assert_problem

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


async def test_healthz_answers_while_the_process_runs(client) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_database_is_reachable(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


class Proxy:
    """A TCP front for the database that a test can cut, as a network partition would."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._connect()
        self._writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _upstream(database_url: str) -> tuple[Connect, str]:
    """How to reach the test database (TCP or Unix socket), and its name."""
    parts = urlsplit(asyncpg_dsn(database_url))
    name = parts.path.lstrip("/")
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    if socket_dir:
        path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"
        return (lambda: asyncio.open_unix_connection(path)), name
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    return (lambda: asyncio.open_connection(host, port)), name


@pytest.fixture
async def partitioned(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Proxy]]:
    """A client of an app whose only way to its database is a proxy the test controls."""
    connect, name = _upstream(database_url)
    user = urlsplit(asyncpg_dsn(database_url)).username or "postgres"
    proxy = Proxy(connect)
    await proxy.start()
    settings = settings_for(
        f"postgresql://{user}@127.0.0.1:{proxy.port}/{name}",
        pool_timeout_seconds=2,
        api_key_cache_seconds=60,
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://crm.test") as c:
            yield c, proxy
        await proxy.cut()


async def test_without_its_database_the_app_is_unready_but_alive(partitioned, key_for) -> None:
    client, proxy = partitioned
    headers = await key_for("customers:read")
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200  # key cached

    await proxy.cut()

    unready = await client.get("/readyz")
    assert_problem(unready, 503, "service-unavailable")
    assert int(unready.headers["retry-after"]) > 0
    assert (await client.get("/healthz")).status_code == 200  # no restart for a DB outage
    # API calls fail as retryable problems, not as 500s.
    for _ in range(2):  # the pool's dropped connections, then refused new ones
        response = await client.get("/v1/customers", headers=headers)
        assert_problem(response, 503, "service-unavailable")
        assert int(response.headers["retry-after"]) > 0

    await proxy.start()  # the same port again: the database is back

    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200


async def test_the_app_does_not_start_without_its_database() -> None:
    """A closed port: start-up fails at once (the orchestrator retries), it does not hang."""
    application = create_app(settings_for("postgresql://postgres@127.0.0.1:9/postgres"))
    with pytest.raises(OSError):
        async with asyncio.timeout(15):
            async with application.router.lifespan_context(application):
                pass


async def test_a_sane_request_id_is_echoed(client) -> None:
    rid = "req-42.retry:1_A"
    response = await client.get("/healthz", headers={"X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid
    problem = await client.get("/v1/customers", headers={"X-Request-ID": rid})
    assert assert_problem(problem, 401, "unauthorized")["request_id"] == rid


@pytest.mark.parametrize("given", [None, "", "a b", "x" * 129, "<script>", "id\u00e9"])
async def test_a_missing_or_insane_request_id_is_replaced(client, given) -> None:
    headers = {} if given is None else {"X-Request-ID": given.encode()}
    first = await client.get("/healthz", headers=headers)
    second = await client.get("/healthz", headers=headers)
    generated = first.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated), generated
    assert generated != second.headers["x-request-id"]


async def test_openapi_json_loads(client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "crm-api"
    assert "/v1/customers" in document["paths"]


_ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_work_offline(client, page) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"""["'(]\s*(https?:)?//""", html), "the page loads from the network"
    assets = _ASSET.findall(html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        suffix = asset[asset.rindex(".") :]
        assert _EXPECTED_TYPES[suffix] in loaded.headers["content-type"], (asset, loaded.headers)
        assert len(loaded.content) > 100, asset
    assert "/openapi.json" in html


async def test_swagger_ui_does_not_call_the_online_validator(client) -> None:
    """Swagger UI's default validator badge loads from validator.swagger.io (and shares the
    spec's URL with it): offline it is a broken image, online a leak."""
    html = (await client.get("/docs")).text
    assert re.search(r'"validatorUrl"\s*:\s*null', html), html
