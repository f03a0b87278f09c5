"""Group commit's queue: batches, lanes, and items kept apart."""

import asyncio
from collections.abc import Sequence

from crm_api.core.coalescing import Coalescer

Item = tuple[str, int]  # (key, n)


async def test_items_with_one_key_never_run_together_and_keep_their_order() -> None:
    batches: list[list[Item]] = []
    running: set[str] = set()  # the keys in flight
    lanes_used = 0
    in_flight = 0

    async def run(items: Sequence[Item]) -> list[int]:
        nonlocal lanes_used, in_flight
        keys = {key for key, _ in items}
        assert not running & keys
        batches.append(list(items))
        running.update(keys)
        in_flight += 1
        lanes_used = max(lanes_used, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        running.difference_update(keys)
        return [n for _, n in items]

    queue = Coalescer(run, name="test", max_size=4, lanes=2, apart=lambda item: item[0])
    items = [("hot", n) for n in range(5)] + [(f"cold{n}", n) for n in range(9)]

    answers = await asyncio.gather(*(queue.submit(item) for item in items))

    assert answers == [n for _, n in items]
    assert all(len(b) <= 4 and len({key for key, _ in b}) == len(b) for b in batches)
    assert [n for b in batches for key, n in b if key == "hot"] == list(range(5))
    assert lanes_used == 2
    assert len(batches) >= 5  # the hot key alone needs five


async def test_an_item_submitted_as_the_last_batch_ends_is_run() -> None:
    async def run(items: Sequence[int]) -> list[int]:
        await asyncio.sleep(0)
        return list(items)

    queue = Coalescer(run, name="test", max_size=2, lanes=2, apart=lambda item: item)
    for n in range(50):
        assert await asyncio.wait_for(queue.submit(n), timeout=5) == n
