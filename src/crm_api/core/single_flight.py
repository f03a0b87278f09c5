"""One call in flight per key: concurrent callers with the same key share its result."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs ``work`` once for a key while it is in flight; callers arriving meanwhile await
    that run's result (or its exception) instead of starting their own."""

    def __init__(self) -> None:
        self._in_flight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            result = await work()
        except BaseException as exc:
            pending.set_exception(exc)
            pending.exception()  # retrieved here, so an unawaited future logs nothing
            raise
        else:
            pending.set_result(result)
            return result
        finally:
            del self._in_flight[key]
