"""Optional OpenTelemetry tracing.

With ``CRM_OTEL_ENDPOINT`` set (an OTLP/HTTP collector, e.g. ``http://collector:4318``),
each HTTP request becomes a trace whose child spans are its SQL statements, exported in
batches off the request path. It needs the ``otel`` extra (``pip install
'crm-api[otel]'``); without the setting nothing is imported and nothing is wrapped.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.routing import Match
from starlette.types import Scope

from crm_api.config import Settings


class TracingUnavailable(RuntimeError):
    pass


def install(app: FastAPI, settings: Settings) -> Callable[[], None] | None:
    """Trace ``app`` when the settings ask for it; answers what to call at shutdown (it
    flushes the spans still queued and stops patching asyncpg)."""
    if not settings.otel_endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as missing:
        raise TracingUnavailable(
            f"CRM_OTEL_ENDPOINT is set but OpenTelemetry is not installed ({missing.name}): "
            "install the otel extra, pip install 'crm-api[otel]'."
        ) from None
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    exporter = OTLPSpanExporter(endpoint=settings.otel_endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=provider,
        default_span_details=lambda scope: _span_details(app, scope),
    )
    instrumentor: Any = AsyncPGInstrumentor()
    instrumentor.instrument(tracer_provider=provider)

    def shutdown() -> None:
        instrumentor.uninstrument()
        provider.shutdown()

    return shutdown


def _span_details(app: FastAPI, scope: Scope) -> tuple[str, dict[str, str]]:
    """A server span's name: the method and the route template, never the raw path (ids
    in paths would make every span name unique)."""
    method = scope.get("method", "WEBSOCKET")
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            template = getattr(route, "path", "")
            return f"{method} {template}", {"http.route": template}
    return method, {}
