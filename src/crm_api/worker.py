"""The background worker: webhook deliveries and housekeeping, on the service's database.

`crm-api worker` runs it as its own process (production: as many as needed, side by
side); `crm-api serve` runs one inside the server when the database is the embedded one.
"""

import asyncio
import contextlib
import logging
import signal

from crm_api.config import Settings
from crm_api.core import idempotency
from crm_api.core.db import Database
from crm_api.webhooks.worker import DeliveryWorker

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 600.0


async def run(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Work until ``stop`` is set."""
    housekeeping = asyncio.create_task(_housekeeping(db, stop))
    try:
        await DeliveryWorker(db, settings).run(stop)
    finally:
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping


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
