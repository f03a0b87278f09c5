"""Live events: the feed pushed to subscribers as events enter it.

The outbox stays the source of truth; NOTIFY is only a wake-up (a trigger sends one, on
commit, per transaction that adds events). While anyone subscribes, a process holds ONE
listening connection and reads each newly settled batch once into a window of recent
rows. Every subscriber follows that window from its own position and reads the outbox
itself only when it is behind the window (resuming from an old cursor, or too slow to
keep up). A lost connection is opened again and the feed read on from where it was, so a
subscriber gets every event once, in feed order, whatever happened in between.
"""

import asyncio
import bisect
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

import sqlalchemy as sa

from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection, Database, Queryable, Record
from crm_api.events.models import NOTIFY_CHANNEL, events
from crm_api.events.schemas import Event
from crm_api.events.service import FEED, SETTLED, render

log = logging.getLogger(__name__)

Position = tuple[int, int]  # (tx_id, seq): a place in the feed, as its cursors hold it
START: Position = (0, 0)  # before every event
BATCH = 500
WINDOW = 5_000  # recent events kept for subscribers (up to twice as many between trims)
# Committed events held back by an older transaction still running: no notification says
# when that one ends.
SHORT_POLL_SECONDS = 0.05
# A safety net, and a check that the listening connection still answers (a connection
# dropped without a word is only noticed by using it).
IDLE_POLL_SECONDS = 5.0
TIMEOUT_SECONDS = 10.0
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)
LISTENER_NAME = "crm-api live events"  # its application_name, for operators to tell it apart

_past = sa.tuple_(events.c.tx_id, events.c.seq) > sa.tuple_(
    sa.bindparam("tx_id", type_=sa.BigInteger), sa.bindparam("seq", type_=sa.BigInteger)
)
_AFTER = Compiled.of(
    sa.select(events).where(_past, SETTLED).order_by(events.c.tx_id, events.c.seq).limit(BATCH)
)
_UNSETTLED = Compiled.of(sa.select(sa.exists().where(_past, sa.not_(SETTLED))))
_HEAD = Compiled.of(
    sa.select(events.c.tx_id, events.c.seq)
    .where(SETTLED)
    .order_by(events.c.tx_id.desc(), events.c.seq.desc())
    .limit(1)
)


def _position(row: Record) -> Position:
    return row["tx_id"], row["seq"]


async def _after(conn: Queryable, position: Position) -> list[Record]:
    """The next settled events past ``position``."""
    return await conn.fetch(_AFTER.sql, *_AFTER.args(_bounds(position)), timeout=TIMEOUT_SECONDS)


def _bounds(position: Position) -> dict[str, int]:
    return {"tx_id": position[0], "seq": position[1]}


class LiveEvents:
    """The process's one follower of the feed, shared by all its subscribers.

    It listens only while someone subscribes (started by the first, idle after the last)
    and stops with the application.
    """

    def __init__(self, db: Database, *, window: int = WINDOW) -> None:
        self._db = db
        self._window = window
        self._rows: list[Record] = []  # the window, in feed order
        self._keys: list[Position] = []  # their positions, for bisecting
        self._floor = START  # every event after the floor, up to the head, is in the window
        self._head = START
        self._ready = asyncio.Event()  # the head is known
        self._published = asyncio.Event()  # replaced by a new one at every publication
        self._wake = asyncio.Event()
        self._wanted = asyncio.Event()  # someone subscribes
        self._closed = asyncio.Event()
        self._subscribers = 0
        self._task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        self._closed.set()
        for event in (self._wanted, self._wake, self._ready, self._published):
            event.set()
        if self._task is not None:
            await self._task

    async def follow(self, after: Position | None) -> AsyncIterator[list[Record]]:
        """Batches of the events after ``after`` (default: the feed's head now), in feed
        order, as they settle; the iteration ends when the application stops."""
        self._join()
        try:
            await self._ready.wait()
            position = self._head if after is None else after
            while not self._closed.is_set():
                published = self._published
                if position < self._floor:
                    rows = await _after(self._db.pool, position)
                else:
                    i = bisect.bisect_right(self._keys, position)
                    rows = self._rows[i : i + BATCH]
                if not rows:
                    await published.wait()
                    continue
                position = _position(rows[-1])
                yield rows
        finally:
            self._leave()

    def _join(self) -> None:
        self._subscribers += 1
        self._wanted.set()
        if self._task is None and not self._closed.is_set():
            self._task = asyncio.create_task(self._run())

    def _leave(self) -> None:
        self._subscribers -= 1
        if not self._subscribers:
            self._wanted.clear()
            self._wake.set()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while not self._closed.is_set():
            if not self._wanted.is_set():
                self._forget()
                await self._wanted.wait()
                continue
            try:
                await self._listen()
                failures = 0
            except Exception as exc:  # the database may be away for a while
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("live events: %s; listening again in %.1f s", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay)

    def _forget(self) -> None:
        """Nobody follows: a later subscriber starts from the head as it is then."""
        self._rows.clear()
        self._keys.clear()
        self._ready.clear()

    async def _listen(self) -> None:
        """Follow the feed on one connection until nobody subscribes, or the connection fails."""
        listener = await self._db.pool.acquire()
        listener.add_termination_listener(self._notified)
        try:
            await listener.execute(f"SET application_name = '{LISTENER_NAME}'")
            await listener.add_listener(NOTIFY_CHANNEL, self._notified)
            if not self._ready.is_set():
                head = await listener.fetchrow(_HEAD.sql, *_HEAD.args({}), timeout=TIMEOUT_SECONDS)
                self._floor = self._head = START if head is None else _position(head)
                self._ready.set()
            while self._wanted.is_set() and not self._closed.is_set():
                self._wake.clear()
                # Read after listening, so nothing committed in between goes unseen.
                delay = await self._read(listener)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            listener.remove_termination_listener(self._notified)
            # A broken connection refuses the goodbye; the pool replaces it.
            with contextlib.suppress(Exception):
                await listener.remove_listener(NOTIFY_CHANNEL, self._notified)
                await listener.execute("RESET application_name")
            await self._db.pool.release(listener)

    async def _read(self, conn: Connection) -> float:
        """Publish what settled past the head; answers how long to wait before looking again."""
        while True:
            rows = await _after(conn, self._head)
            if rows:
                self._publish(rows)
            if len(rows) < BATCH:
                break
        waiting = await conn.fetchval(
            _UNSETTLED.sql, *_UNSETTLED.args(_bounds(self._head)), timeout=TIMEOUT_SECONDS
        )
        return SHORT_POLL_SECONDS if waiting else IDLE_POLL_SECONDS

    def _publish(self, rows: list[Record]) -> None:
        self._rows.extend(rows)
        self._keys.extend(_position(r) for r in rows)
        self._head = self._keys[-1]
        if len(self._rows) > 2 * self._window:
            cut = len(self._rows) - self._window
            self._floor = self._keys[cut - 1]
            del self._rows[:cut], self._keys[:cut]
        published, self._published = self._published, asyncio.Event()
        published.set()


async def subscribe(
    live: LiveEvents,
    caller: Callable[[], Awaitable[Principal]],
    *,
    types: Collection[str],
    customer_id: uuid.UUID | None,
    after: str | None,
) -> AsyncIterator[tuple[Event, str]]:
    """The events entering the feed after the cursor ``after`` (default: now) of the given
    types (any when empty) and customer, each with the cursor to resume right after it.

    They are rendered as the REST feed renders them. ``caller`` answers who is
    subscribing, verified anew before each delivery: a key revoked or expired since ends
    the stream with its error.
    """
    start = None if after is None else FEED.decode(after)
    async for rows in live.follow(None if start is None else (start[0], start[1])):
        wanted = [
            r
            for r in rows
            if (not types or r["type"] in types)
            and (customer_id is None or r["customer_id"] == customer_id)
        ]
        if wanted:
            principal = await caller()
            for row in wanted:
                yield render(row, principal), FEED.encode(_position(row))
