"""The background worker: webhook deliveries, scoring runs, segment refreshes, loyalty and
lifecycle schedules, the recommendation rules' refresh, housekeeping.

`crm-api worker` runs it as its own process (production: as many as needed, side by
side); `crm-api serve` runs one inside the server when the database is the embedded one.
"""

import asyncio
import contextlib
import logging
import signal

from crm_api import transaction_clock
from crm_api.analytics import daily_totals, stored_rules
from crm_api.config import Settings
from crm_api.core import idempotency
from crm_api.core.db import Database
from crm_api.lifecycle import rules as lifecycle_rules
from crm_api.loyalty import jobs as loyalty_jobs
from crm_api.scoring import runner as scoring_runs
from crm_api.scoring import service as scoring
from crm_api.segments import service as segments
from crm_api.webhooks.worker import DeliveryWorker

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 600.0
JOBS_POLL_SECONDS = 5.0  # a safety net; the API notifies when it queues a job


async def run(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Work until ``stop`` is set."""
    helpers = [
        asyncio.create_task(_housekeeping(db, stop)),
        asyncio.create_task(_jobs(db, settings, stop)),
    ]
    scheduled = asyncio.create_task(_scheduled(db, settings, stop))
    try:
        await DeliveryWorker(db, settings).run(stop)
    finally:
        # The periodic jobs run often and are mostly mid-statement: on a stop they finish
        # their batch instead, as a cancelled query can leave its pooled connection
        # unreleased and the pool's close waiting for it forever.
        for task in helpers if stop.is_set() else (*helpers, scheduled):
            task.cancel()
        for task in (*helpers, scheduled):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _jobs(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Queued scoring runs, one at a time, woken by the API's notification; then the
    segments whose scheduled refresh is due (checked at least every few seconds)."""
    wake = asyncio.Event()

    def notified(*_: object) -> None:
        wake.set()

    listener = await db.pool.acquire()
    await listener.add_listener(scoring.JOBS_CHANNEL, notified)
    try:
        while not stop.is_set():
            wake.clear()
            try:
                while await scoring_runs.run_next(db, settings.churn_risk_threshold):
                    pass
                await segments.refresh_due(db)
            except Exception as exc:  # the database may be away for a while
                log.warning("background jobs failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), JOBS_POLL_SECONDS)
    finally:
        await listener.remove_listener(scoring.JOBS_CHANNEL, notified)
        await db.pool.release(listener)


# Periodic jobs: each is idempotent, claims its rows with SKIP LOCKED and answers how many
# it changed, so any number of workers may run them side by side.
SCHEDULED = (
    ("loyalty expiry", loyalty_jobs.expire_due),
    ("loyalty re-tiering", loyalty_jobs.retier_due),
    ("lifecycle rules", lifecycle_rules.apply_due),
    ("daily totals", daily_totals.roll_due),
    # Due once the stored set is older than the setting; an advisory lock, not SKIP LOCKED.
    ("recommendation rules", stored_rules.refresh_due),
)


async def _scheduled(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, job in SCHEDULED:
            try:
                changed = await job(db, settings)
            except Exception as exc:  # logged and retried on the next round
                log.warning("%s failed: %s", name, exc)
                continue
            if changed:
                log.info("%s: %d changed", name, changed)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.schedule_seconds)


async def _housekeeping(db: Database, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            async with db.connection() as conn:
                purged = await idempotency.purge_expired(conn)
            if purged:
                log.info("purged %d expired idempotency records", purged)
        except Exception as exc:
            log.warning("housekeeping failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HOUSEKEEPING_SECONDS)


async def serve_forever(settings: Settings) -> None:
    """The `crm-api worker` process: stops cleanly on SIGTERM or SIGINT."""
    assert settings.database_url
    db = await Database.connect(
        settings.database_url,
        min_size=2,
        max_size=max(4, settings.pool_size // 2),
        acquire_timeout=settings.pool_timeout_seconds,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    async with db.connection() as conn:
        await transaction_clock.keep_ahead(conn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker started")
    try:
        await run(db, settings, stop)
    finally:
        await db.close()
        log.info("worker stopped")
