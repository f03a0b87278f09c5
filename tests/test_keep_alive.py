"""Idle keep-alive connections: `crm-api serve` keeps them open longer than clients do.

A server that closes an idle connection first races the client's next request on it:
httpx keeps idle connections 5 s, uvicorn's own default, and the request sent as the
server closes fails without an answer (httpx.ReadError)."""

import asyncio

from live import free_port, ready, server_process

_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    """Send one request on the open connection and read its whole answer."""
    writer.write(_HEALTH)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    length = next(
        int(line.split(":", 1)[1])
        for line in head.split("\r\n")
        if line.lower().startswith("content-length:")
    )
    await reader.readexactly(length)
    return int(head.split(" ", 2)[1])


async def test_an_idle_connection_outlives_a_client_s_keep_alive(database_url: str) -> None:
    port = free_port()
    with server_process(database_url, port):
        await ready(f"http://127.0.0.1:{port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await _status(reader, writer) == 200
            await asyncio.sleep(6)  # past httpx's 5 s
            assert await _status(reader, writer) == 200
        finally:
            writer.close()


async def test_the_server_closes_a_connection_idle_past_its_setting(database_url: str) -> None:
    port = free_port()
    with server_process(database_url, port, CRM_KEEP_ALIVE_SECONDS="1"):
        await ready(f"http://127.0.0.1:{port}")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await _status(reader, writer) == 200
            await asyncio.sleep(2.5)
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed by it
        finally:
            writer.close()
