"""A real webhook receiver on loopback: records what arrives and answers as told."""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from live import serve


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic()

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


# Given the request and how many earlier requests carried its webhook-id: the answer.
Behaviour = Callable[[Received, int], Answer]


class Receiver:
    def __init__(self) -> None:
        self.url = ""
        self.behaviour: Behaviour = lambda _r, _n: Answer()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []  # webhook-ids seen twice at the same time

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def of_type(self, type_: str) -> list[Received]:
        return [r for r in self.received if r.json["type"] == type_]

    async def wait_for(self, count: int, *, within: float = 15.0) -> list[Received]:
        """At least ``count`` requests, waiting up to ``within`` seconds for them."""
        deadline = time.monotonic() + within
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count} deliveries"
            await asyncio.sleep(0.02)
        return self.received

    async def _handle(self, request: Request) -> Response:
        got = Received(dict(request.headers), await request.body(), time.monotonic())
        with self._lock:
            earlier = sum(1 for r in self._received if r.id == got.id)
            self._received.append(got)
            if self._in_flight[got.id]:
                self.overlaps.append(got.id)
            self._in_flight[got.id] += 1
        try:
            answer = self.behaviour(got, earlier)
            if answer.delay:
                await asyncio.sleep(answer.delay)
            return Response(answer.body, status_code=answer.status, headers=answer.headers)
        finally:
            with self._lock:
                self._in_flight[got.id] -= 1


@contextmanager
def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    app = Starlette(routes=[Route("/hook", receiver._handle, methods=["POST"])])
    with serve(app) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver
