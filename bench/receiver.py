"""The webhook receiver: a bare asyncio HTTP/1.1 server that answers 200 at once.

It records, for every POST, its ``webhook-id`` header and when the request had fully
arrived, and hands the record over on ``GET /arrivals``. It runs in its own process
(``python -m bench.receiver --port N``) so that neither the worker nor the benchmark
shares its event loop, and it does the least a subscriber can do (httptools parsing, no
framework, no signature check) so that it is never what limits the worker.

Arrival times are ``time.monotonic()``: CLOCK_MONOTONIC is system-wide on Linux (and
macOS), so they compare with the commit times the benchmark takes in its own process.

``GET /healthz`` answers when it is ready, ``GET /count`` with the number of POSTs
recorded so far, ``GET /arrivals`` with ``[[webhook-id, time], ...]`` and forgets them.
"""

import argparse
import asyncio
import time
from typing import cast

import httptools
import orjson

_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def _json(value: object) -> bytes:
    body = orjson.dumps(value)
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


class Arrivals:
    def __init__(self) -> None:
        self.ids: list[bytes] = []
        self.times: list[float] = []

    def take(self) -> list[tuple[str, float]]:
        taken = [(i.decode(), t) for i, t in zip(self.ids, self.times, strict=True)]
        self.ids, self.times = [], []
        return taken


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the ``on_*`` methods as it parses."""

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._webhook_id = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._transport.close()

    def on_message_begin(self) -> None:
        self._url = b""
        self._webhook_id = b""

    def on_url(self, url: bytes) -> None:
        self._url += url  # may come in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"webhook-id":
            self._webhook_id = value

    def on_message_complete(self) -> None:
        arrived = time.monotonic()
        assert self._transport is not None
        if self._parser.get_method() == b"POST":
            self._arrivals.ids.append(self._webhook_id)
            self._arrivals.times.append(arrived)
            self._transport.write(_OK)
        elif self._url == b"/healthz":
            self._transport.write(_OK)
        elif self._url == b"/count":
            self._transport.write(_json({"count": len(self._arrivals.ids)}))
        elif self._url == b"/arrivals":
            self._transport.write(_json(self._arrivals.take()))
        else:
            self._transport.write(_NOT_FOUND)
        if not self._parser.should_keep_alive():
            self._transport.close()


async def serve(host: str, port: int) -> None:
    arrivals = Arrivals()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(arrivals), host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # installed with uvicorn[standard]; the receiver's loop is its cost
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
