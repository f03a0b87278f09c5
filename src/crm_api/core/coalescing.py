"""Group commit for hot writes: concurrent requests' rows go to the database together.

Under load, many requests wait on the database at once, and each paid for a round trip,
a statement and a commit (a WAL flush) of its own. A ``Coalescer`` runs whatever was
submitted while its last run was in flight as its next run. A request alone runs at
once: there is no timer, so coalescing adds no latency when there is nothing to share.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from crm_api.core.metrics import COALESCED

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Runs submitted items in batches of at most ``max_size``, at most ``lanes`` batches
    at a time; each batch's size is observed under ``name`` in
    ``crm_coalesced_batch_size``. Items with the same ``apart`` key are never in flight
    together: a later one waits for a later batch, in order.

    ``run`` answers one result per item, in order; an exception it raises is every
    item's. A submitter that is cancelled while it waits does not take its item back:
    like a request cut off mid-statement, its write may still land.
    """

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        name: str,
        max_size: int,
        lanes: int = 1,
        apart: Callable[[Item], Hashable] | None = None,
    ) -> None:
        self._run = run
        self._max_size = max_size
        self._lanes = lanes
        self._apart = apart
        self._sizes = COALESCED.labels(name)
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._draining: set[asyncio.Task[None]] = set()
        self._in_flight: set[Hashable] = set()  # the apart keys of the batches running

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._draining) < self._lanes:
            self._draining.add(asyncio.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        try:
            while batch := self._next_batch():
                keys = {self._apart(item) for item, _ in batch} if self._apart else set()
                self._in_flight |= keys
                try:
                    await self._settle(batch)
                finally:
                    self._in_flight -= keys
        finally:
            # At once, with no await after the last look at the queue: an item submitted
            # from here on starts a lane of its own.
            self._draining.discard(asyncio.current_task())  # type: ignore[arg-type]

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        if self._apart is None:
            batch = self._waiting[: self._max_size]
            del self._waiting[: self._max_size]
            return batch
        batch, later, keys = [], [], set(self._in_flight)
        for waiting in self._waiting:
            key = self._apart(waiting[0])
            if len(batch) < self._max_size and key not in keys:
                keys.add(key)
                batch.append(waiting)
            else:
                later.append(waiting)
        self._waiting = later
        return batch

    async def _settle(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        self._sizes.observe(len(batch))
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
