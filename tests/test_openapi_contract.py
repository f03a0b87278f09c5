"""The committed API contract (openapi/) matches the code, and reads well for SDK generators."""

import json
import re
from pathlib import Path

import pytest

from crm_api.core.scopes import Scope
from crm_api.events.schemas import EventType
from crm_api.graphql.schema import schema as graphql_schema
from live import openapi_document

CONTRACT = Path(__file__).resolve().parents[1] / "openapi"
SPEC = openapi_document()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
]
V1 = [(m, p, o) for m, p, o in OPERATIONS if p.startswith("/v1/")]
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
STALE = "{} is out of date with the code: run `make openapi` and commit the result."


def _ids(operations: list) -> list[str]:
    return [f"{m} {p}" for m, p, _ in operations]


def test_the_committed_openapi_document_is_current() -> None:
    committed = json.loads((CONTRACT / "openapi.json").read_text())
    assert committed == SPEC, STALE.format("openapi/openapi.json")


def test_the_committed_graphql_schema_is_current() -> None:
    committed = (CONTRACT / "schema.graphql").read_text()
    assert committed.strip() == graphql_schema.as_str().strip(), STALE.format(
        "openapi/schema.graphql"
    )


def test_operation_ids_are_unique_domain_verb_names() -> None:
    """``<domain>_<verb>`` (e.g. ``customers_list``), which SDK generators turn into
    ``customers.list()``: one domain per tag, one word per verb, no id used twice."""
    ids = [o["operationId"] for _, _, o in OPERATIONS]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    domains: dict[str, set[str]] = {}
    for method, path, operation in OPERATIONS:
        operation_id = operation["operationId"]
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*_[a-z]+", operation_id), (method, path, operation_id)
        [tag] = operation["tags"]
        domains.setdefault(tag, set()).add(operation_id.rsplit("_", 1)[0])
    assert all(len(d) == 1 for d in domains.values()), domains
    assert len({d for ds in domains.values() for d in ds}) == len(domains), domains


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=_ids(OPERATIONS))
def test_errors_are_documented_as_problems(method: str, path: str, operation: dict) -> None:
    errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
    if path.startswith("/v1/"):
        assert {"401", "403", "422"} <= set(errors), sorted(errors)
    by_id = any(p["in"] == "path" for p in operation.get("parameters", []))
    if by_id and "201" not in operation["responses"]:  # finds its resource, or creates it
        assert "404" in errors, f"{method} {path} may miss its resource but documents no 404"
    for status, response in errors.items():
        content = response.get("content", {})
        assert set(content) == {"application/problem+json"}, (status, sorted(content))
        assert content["application/problem+json"]["schema"] == PROBLEM_REF, status


def test_the_problem_schema_has_the_rfc_9457_members() -> None:
    problem = SPEC["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail"} <= set(problem["required"])
    assert {"instance", "errors"} <= set(problem["properties"])


@pytest.mark.parametrize(("method", "path", "operation"), V1, ids=_ids(V1))
def test_every_v1_operation_requires_a_scoped_key(method: str, path: str, operation: dict) -> None:
    security = operation.get("security")
    assert security, f"{method} {path} declares no security requirement"
    schemes = SPEC["components"]["securitySchemes"]
    for requirement in security:
        for scheme, scopes in requirement.items():
            assert scheme in schemes
            assert scopes, f"{method} {path}: {scheme} names no scope"
            assert set(scopes) <= {s.value for s in Scope}, scopes
    # Either header works, with the same scopes.
    assert {frozenset(r) for r in security} == {frozenset({"bearer"}), frozenset({"apiKey"})}
    assert len({tuple(sorted(s)) for r in security for s in r.values()}) == 1


def test_the_operational_endpoints_need_no_key() -> None:
    for path in ("/healthz", "/readyz"):
        assert "security" not in SPEC["paths"][path]["get"], path


def test_every_event_type_documents_its_webhook_payload() -> None:
    documented = SPEC["webhooks"]
    assert set(documented) == {str(t) for t in EventType}
    for event_type, item in documented.items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        message = SPEC["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        assert set(message["required"]) == {"type", "timestamp", "data"}, event_type
        assert "webhook-signature" in item["post"]["description"]
