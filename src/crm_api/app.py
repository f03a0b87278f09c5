"""create_app(): the FastAPI application, its middleware, routers and GraphQL endpoint."""

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from crm_api import __version__, transaction_clock
from crm_api import worker as background
from crm_api.analytics.router import customers_router as profile_router
from crm_api.analytics.router import router as analytics_router
from crm_api.api_keys import service as api_keys
from crm_api.api_keys.router import router as api_keys_router
from crm_api.campaigns.router import router as campaigns_router
from crm_api.config import Settings, get_settings
from crm_api.core import docs, errors, logs, openapi, tracing
from crm_api.core.auth import Authenticator
from crm_api.core.db import Database
from crm_api.core.metrics import router as metrics_router
from crm_api.core.middleware import BodyLimit, RequestContext
from crm_api.core.ops import router as ops_router
from crm_api.core.ratelimit import RATE_LIMIT_HEADERS, RateLimiter, shared_buckets
from crm_api.core.route_index import index_routes
from crm_api.core.uow import IdempotentReplay, replay_stored
from crm_api.customers.router import router as customers_router
from crm_api.events.live import LiveEvents
from crm_api.events.router import router as events_router
from crm_api.graphql.schema import graphql_router
from crm_api.interactions import service as interactions
from crm_api.interactions.router import router as interactions_router
from crm_api.lifecycle.router import customers_router as lifecycle_customers_router
from crm_api.lifecycle.router import rules_router as lifecycle_rules_router
from crm_api.lifecycle.router import stages_router as lifecycle_stages_router
from crm_api.lifecycle.router import transitions_router as lifecycle_transitions_router
from crm_api.loyalty.router import accounts_router as loyalty_accounts_router
from crm_api.loyalty.router import entries_router as loyalty_entries_router
from crm_api.loyalty.router import programs_router as loyalty_programs_router
from crm_api.loyalty.router import rewards_router as loyalty_rewards_router
from crm_api.loyalty.writer import LedgerWriter
from crm_api.scoring.router import router as scoring_router
from crm_api.segments.router import customers_router as segment_customers_router
from crm_api.segments.router import members_router as segment_members_router
from crm_api.segments.router import router as segments_router
from crm_api.webhooks import catalog as webhook_catalog
from crm_api.webhooks.router import deliveries_router as webhook_deliveries_router
from crm_api.webhooks.router import router as webhook_endpoints_router

DESCRIPTION = """
A headless CRM: customers, their multichannel timeline and an events feed.

**Authentication**: every `/v1` call needs an API key, as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Each operation lists the scope it needs; a `:write` scope implies its
`:read`, and `admin` implies every scope. Personal fields come back null (and listed in
`redacted_fields`) unless the key holds `pii:read`.

**Conventions**: lists are keyset-paginated (`limit`, `cursor` -> `next_cursor`); errors
are RFC 9457 `application/problem+json`; every write accepts an `Idempotency-Key`;
responses carry an `ETag` and PATCH/PUT/DELETE honour `If-Match`.

**Rate limits**: each API key may make `rate_limit_per_minute` requests (the key's own, else
the server's default), as a token bucket refilled continuously. Every authenticated response,
REST and GraphQL, carries `RateLimit-Limit` (requests per minute), `RateLimit-Remaining`
(requests the key may make now) and `RateLimit-Reset` (seconds until the bucket is full
again); past the limit the answer is a 429 `rate-limited` problem with `Retry-After` (seconds
until the next request is admitted). A GraphQL subscription started over a websocket takes
one request from the same bucket; past the limit it ends at once with a `rate-limited` error.
"""


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.database_url:
        raise RuntimeError("CRM_DATABASE_URL is not set; start through `crm-api serve`.")
    db = await Database.connect(
        settings.database_url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_size,
        acquire_timeout=settings.pool_timeout_seconds,
        statement_timeout_ms=settings.statement_timeout_ms,
    )
    app.state.db = db
    async with db.connection() as conn:
        await transaction_clock.keep_ahead(conn)
    app.state.authenticator = Authenticator(
        db,
        api_keys.authenticator_lookup(settings.rate_limit_per_minute),
        settings.api_key_cache_seconds,
    )
    app.state.rate_limiter = (
        RateLimiter(shared_buckets(db, settings.redis_url))
        if settings.rate_limit_per_minute
        else None
    )
    app.state.live_events = LiveEvents(db)  # listens from the first subscription on
    app.state.interaction_recorder = interactions.Recorder(db.pool)
    app.state.ledger_writer = LedgerWriter(db.pool)
    # Everything alive after start-up lives as long as the process: keep it out of the
    # collector's sweeps, which otherwise cost 60-100 ms pauses (p99 latency) under load.
    gc.collect()
    gc.freeze()
    # Requests free almost everything they allocate by reference counting; at the default
    # of 700 surviving objects the young generation is swept hundreds of times per bulk
    # import request (a fifth of its time), for cycles that are rare here.
    gc.set_threshold(20_000, 10, 10)
    stop = asyncio.Event()
    worker = (
        asyncio.create_task(background.run(db, settings, stop))
        if settings.worker_in_process
        else None
    )
    try:
        yield
    finally:
        stop.set()
        if worker is not None:
            await worker
        await app.state.live_events.close()
        if app.state.rate_limiter is not None:
            await app.state.rate_limiter.buckets.close()
        await db.close()
        if app.state.stop_tracing is not None:
            app.state.stop_tracing()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logs.configure(settings.log_level)
    app = FastAPI(
        title="crm-api",
        version=__version__,
        summary="Customers, interactions, segments, scoring, loyalty and analytics.",
        lifespan=_lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        # Tracing is ours (core.tracing, with CRM_OTEL_ENDPOINT); FastAPI's own would look
        # up OpenTelemetry's global providers on every request (~4% of a cached GET).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    errors.install(app)
    app.add_exception_handler(IdempotentReplay, replay_stored)
    for router in (
        ops_router,
        metrics_router,
        customers_router,
        interactions_router,
        events_router,
        api_keys_router,
        webhook_endpoints_router,
        webhook_deliveries_router,
        scoring_router,
        segments_router,
        segment_members_router,
        segment_customers_router,
        lifecycle_stages_router,
        lifecycle_rules_router,
        lifecycle_transitions_router,
        lifecycle_customers_router,
        loyalty_programs_router,
        loyalty_rewards_router,
        loyalty_accounts_router,
        loyalty_entries_router,
        analytics_router,
        campaigns_router,
        profile_router,
    ):
        # The routers' routes carry their prefixes, tags and responses already; adding
        # them to the app's own router skips a nested match per request (~10% of a GET).
        app.router.routes.extend(router.routes)
    app.include_router(graphql_router(), prefix="/graphql", include_in_schema=False)
    if settings.docs_enabled:
        docs.install(app)
    webhook_catalog.document(app)
    openapi.install(app, description=DESCRIPTION)
    index_routes(app.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[
                "ETag",
                "Location",
                "X-Request-ID",
                "Idempotent-Replayed",
                *RATE_LIMIT_HEADERS,
            ],
        )
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_seconds=settings.body_timeout_seconds
    )
    app.add_middleware(RequestContext, access_log=settings.access_log)
    app.state.stop_tracing = tracing.install(app, settings)  # outermost: the whole request
    return app
