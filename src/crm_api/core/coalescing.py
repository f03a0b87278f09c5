"""Group commit for hot writes: concurrent requests' rows go to the database together.

Under load, many requests wait on the database at once, and each paid for a round trip,
a statement and a commit (a WAL flush) of its own. A ``Coalescer`` runs whatever was
submitted while its last run was in flight as its next run. A request alone runs at
once: there is no timer, so coalescing adds no latency when there is nothing to share.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from crm_api.core.metrics import COALESCED

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Runs submitted items in batches of at most ``max_size``, one batch at a time; each
    batch's size is observed under ``name`` in ``crm_coalesced_batch_size``.

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
    ) -> None:
        self._run = run
        self._max_size = max_size
        self._sizes = COALESCED.labels(name)
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_size]
                del self._waiting[: self._max_size]
                await self._settle(batch)
        finally:
            self._draining = None

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
