"""The delivery loop: fan the outbox out, keep up to N attempts in flight, record outcomes.

It sleeps on LISTEN (a trigger notifies at every commit that adds events, and the API
when it queues deliveries) and otherwise until the next retry is due, so a delivery
leaves within milliseconds of its commit without polling.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

import sqlalchemy as sa

from crm_api.config import Settings
from crm_api.core.db import Compiled, Database
from crm_api.events.models import NOTIFY_CHANNEL
from crm_api.webhooks import queue
from crm_api.webhooks.models import webhook_deliveries as d
from crm_api.webhooks.sender import Job, Outcome, Sender
from crm_api.webhooks.targets import policy_for

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0  # a safety net; notifications do the waking
# Events committed behind a still-running transaction, or due work another worker holds.
SHORT_POLL_SECONDS = 0.05
# Past an attempt's time limit, for recording its outcome; a lease that runs out sends the
# delivery again (same webhook-id), never while the first attempt can still be running.
LEASE_MARGIN_SECONDS = 5.0

_NEXT_DUE = Compiled.of(
    sa.select(sa.func.extract("epoch", sa.func.min(d.c.next_attempt_at) - sa.func.now())).where(
        d.c.status.in_(["pending", "sending"])
    )
)


class DeliveryWorker:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._policy = queue.RetryPolicy(
            schedule=settings.webhook_retry_schedule_seconds,
            jitter=settings.webhook_retry_jitter,
            disable_after=settings.webhook_disable_after_failures,
        )
        self._slots = settings.worker_concurrency
        self._batch = settings.worker_batch_size
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)
        self._grace = settings.webhook_timeout_seconds + 1  # attempts end by their time limit
        self._sender = Sender(
            policy_for(settings),
            connect_timeout=settings.webhook_connect_timeout_seconds,
            total_timeout=settings.webhook_timeout_seconds,
            connections=settings.worker_concurrency,
        )
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._outcome_ready = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then finish what is in flight and record it."""
        listener = await self._db.pool.acquire()
        await listener.add_listener(NOTIFY_CHANNEL, self._notified)
        recorder = asyncio.create_task(self._record_forever())
        try:
            await self._deliver_until(stop)
        finally:
            await self._drain()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self._flush()
            await listener.remove_listener(NOTIFY_CHANNEL, self._notified)
            await self._db.pool.release(listener)
            await self._sender.aclose()

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _deliver_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                delay = await self._step()
            except Exception as exc:  # the database may be down for a while
                log.warning("webhook delivery step failed: %s", exc)
                delay = IDLE_POLL_SECONDS
            if delay > 0:
                waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
                _, pending = await asyncio.wait(
                    waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED
                )
                for task in pending:
                    task.cancel()

    async def _step(self) -> float:
        """One round of fan-out and claims; how long to sleep before the next one."""
        waiting = False
        async with self._db.connection() as conn:
            while (fanned := await queue.fan_out(conn)) is not None:
                waiting = fanned.waiting
                if not fanned.more:
                    break
        free = self._slots - len(self._in_flight)
        if free <= 0:
            return IDLE_POLL_SECONDS  # a finishing attempt wakes us
        wanted = min(free, self._batch)
        jobs = await queue.claim(self._db.pool, wanted, self._lease)
        for job in jobs:
            task = asyncio.create_task(self._attempt(job))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        if len(jobs) == wanted:
            return 0  # more may be due at once
        if waiting:
            return SHORT_POLL_SECONDS
        due_in = await _NEXT_DUE.fetchval(self._db.pool)
        if due_in is None:
            return IDLE_POLL_SECONDS
        return min(max(float(due_in), SHORT_POLL_SECONDS), IDLE_POLL_SECONDS)

    async def _attempt(self, job: Job) -> None:
        outcome = await self._sender.send(job)
        self._outcomes.append(outcome)
        self._outcome_ready.set()
        self._wake.set()  # a slot is free

    async def _record_forever(self) -> None:
        while True:
            await self._outcome_ready.wait()
            self._outcome_ready.clear()
            try:
                await self._flush()
            except Exception as exc:
                # Kept for the next flush; should this process die first, the leases run
                # out and the deliveries are attempted again.
                log.warning("recording webhook outcomes failed: %s", exc)
                await asyncio.sleep(IDLE_POLL_SECONDS)
                self._outcome_ready.set()

    async def _flush(self) -> None:
        batch, self._outcomes = self._outcomes, []
        try:
            async with self._db.connection() as conn:
                await queue.record(conn, batch, self._policy)
        except BaseException:
            self._outcomes[:0] = batch
            raise

    async def _drain(self) -> None:
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=self._grace)
            for task in late:
                task.cancel()
