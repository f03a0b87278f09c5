"""Prometheus metrics at ``GET /metrics`` (scope ``metrics:read``).

Requests and their latency are counted per route template by ``RequestContext``. With
several server processes (`crm-api serve --workers N`) their counts are summed across
processes through prometheus_client's multiprocess mode: `serve` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder before the processes start. The pool's
figures are the answering process's own. The webhook figures are read from the database
at scrape time, so they describe the whole deployment, worker included.
"""

import os
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import Scope as AsgiScope

from crm_api.core.auth import requires
from crm_api.core.db import Compiled, Database
from crm_api.core.errors import responses
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope

REQUESTS = Counter("crm_http_requests", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# How much sharing happens (core/coalescing.py): at 1 all the time, a busy server is not
# coalescing its writes.
COALESCED = Histogram(
    "crm_coalesced_batch_size",
    "Items written together by one statement or transaction of a coalesced write.",
    ["write"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)


# The labelled series, looked up once each: labels() costs more than the count itself.
_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(scope: AsgiScope, status: int, seconds: float) -> None:
    """Count an answered request under its route template (never the raw path: ids in
    paths would make a series per customer)."""
    route = getattr(scope.get("route"), "path_format", None) or "unmatched"
    key = (scope["method"], route, status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (
            REQUESTS.labels(key[0], route, str(status)),
            LATENCY.labels(key[0], route),
        )
    series[0].inc()
    series[1].observe(seconds)


# Deliveries waiting for an attempt (the partial due index holds only those), and the
# events committed beyond the fan-out's position: together, how far webhooks lag behind.
_BACKLOG = Compiled.of(
    sa.text(
        """SELECT
            (SELECT count(*) FROM webhook_deliveries
             WHERE status IN ('pending', 'sending')) AS pending,
            (SELECT extract(epoch FROM now() - min(created_at)) FROM webhook_deliveries
             WHERE status IN ('pending', 'sending')) AS oldest_seconds,
            (SELECT count(*) FROM events e, webhook_fanout f
             WHERE (e.tx_id, e.seq) > (f.tx_id, f.seq)) AS unfanned"""
    )
)
_ENDPOINTS = Compiled.of(sa.text("SELECT id, consecutive_failures, enabled FROM webhook_endpoints"))


class _Snapshot(Collector):
    """Figures read when scraped: this process's pool, and the webhook backlog."""

    def __init__(self, db: Database, backlog: Any, endpoints: list[Any]) -> None:
        self._db, self._backlog, self._endpoints = db, backlog, endpoints

    def collect(self) -> Iterator[Metric]:
        pool = self._db.pool
        connections = GaugeMetricFamily(
            "crm_db_pool_connections",
            "This process's database connections, by state.",
            labels=["state"],
        )
        size, idle = pool.get_size(), pool.get_idle_size()
        connections.add_metric(["in_use"], size - idle)
        connections.add_metric(["idle"], idle)
        yield connections
        yield GaugeMetricFamily(
            "crm_db_pool_max_connections", "This process's pool limit.", value=pool.get_max_size()
        )
        yield GaugeMetricFamily(
            "crm_webhook_deliveries_pending",
            "Deliveries waiting for an attempt or being attempted.",
            value=self._backlog["pending"],
        )
        yield GaugeMetricFamily(
            "crm_webhook_oldest_pending_seconds",
            "Age of the oldest delivery still waiting (0 when none is).",
            value=float(self._backlog["oldest_seconds"] or 0),
        )
        yield GaugeMetricFamily(
            "crm_outbox_events_not_fanned_out",
            "Committed events not yet turned into deliveries.",
            value=self._backlog["unfanned"],
        )
        failures = GaugeMetricFamily(
            "crm_webhook_endpoint_consecutive_failures",
            "Failed attempts in a row per endpoint (0 once one succeeds).",
            labels=["endpoint_id", "enabled"],
        )
        for row in self._endpoints:
            failures.add_metric(
                [str(row["id"]), str(row["enabled"]).lower()], row["consecutive_failures"]
            )
        yield failures


router = domain_router(tag="operations")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
            "description": "The Prometheus text exposition format.",
        },
        **responses(503),
    },
)
async def ops_metrics(principal: requires(Scope.METRICS_READ), request: Request) -> Response:
    """Request rate and latency per route, how many writes share a statement, the database
    pool, and the webhook backlog, for Prometheus to scrape (send the key as a bearer
    token)."""
    db: Database = request.app.state.db
    async with db.connection() as conn:
        backlog = await _BACKLOG.fetchrow(conn)
        endpoints = await _ENDPOINTS.fetch(conn)
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # every server process's counts, summed
        multiprocess.MultiProcessCollector(registry)
    else:
        for metric in (REQUESTS, LATENCY, COALESCED):
            registry.register(metric)
    registry.register(_Snapshot(db, backlog, endpoints))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
