"""With CRM_OTEL_ENDPOINT set, requests reach an OTLP collector as traces: a server span
named by the route template with the request's SQL statements as its children."""

import threading

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_api.app import create_app
from live import serve, settings_for


class Collector:
    """An OTLP/HTTP trace collector on loopback: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/v1/traces", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        with self._lock:
            for resource in export.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        return Response(b"", media_type="application/x-protobuf")


def _attributes(span) -> dict:  # type: ignore[no-untyped-def]
    return {a.key: a.value.string_value for a in span.attributes}


async def test_a_request_is_exported_as_a_trace_with_its_sql(
    database_url, admin_key, new_customer
) -> None:
    customer = await new_customer()
    collector = Collector()
    with serve(collector.app) as collector_url:
        app = create_app(settings_for(database_url, otel_endpoint=collector_url))
        with serve(app) as base_url:  # leaving it shuts the app down, flushing its spans
            async with httpx.AsyncClient(
                base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}
            ) as http:
                got = await http.get(f"/v1/customers/{customer['id']}")
                assert got.status_code == 200
    server = [s for s in collector.spans if s.name == "GET /v1/customers/{customer_id}"]
    assert len(server) == 1, [s.name for s in collector.spans]
    assert customer["id"] not in str([s.name for s in collector.spans])
    trace = [s for s in collector.spans if s.trace_id == server[0].trace_id]
    statements = [s for s in trace if _attributes(s).get("db.system") == "postgresql"]
    assert statements, [(s.name, _attributes(s)) for s in trace]
    assert all(s.start_time_unix_nano >= server[0].start_time_unix_nano for s in statements)
