"""The OpenAPI document as SDK generators need it: stable operation ids, problem media type."""

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from crm_api.core.auth import API_KEY_HEADER, BEARER_SCHEME
from crm_api.core.errors import PROBLEM_MEDIA_TYPE

API_KEY_SCHEME = "apiKey"


def operation_id(route: APIRoute) -> str:
    """``<domain>_<verb>``: the route function's name, e.g. ``customers_list``."""
    return route.name


def install(app: FastAPI, *, description: str) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=description,
                routes=app.routes,
                webhooks=app.webhooks.routes,
                # One schema per model: generators name classes after schemas, and a
                # "Customer-Input" beside a "Customer-Output" makes two "Customer" classes.
                separate_input_output_schemas=False,
                tags=app.openapi_tags,
            )
            _api_key_header_scheme(schema)
            _creation_links(schema.get("paths", {}))
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    _problem_media_type(operation)
                    _api_key_header_alternative(operation)
                    _idempotency_conflict(operation)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]


def _creation_links(paths: dict[str, Any]) -> None:
    """OpenAPI links from each create (a 201 answering the new resource) to the operations
    on what it created, path `<create path>/{id}` and below: clients and stateful test
    tools follow the new id (and the create's own path ids) into them."""
    for path, item in paths.items():
        create = item.get("post")
        if create is None or "201" not in create["responses"]:
            continue
        inherited = {name: f"$request.path.{name}" for name in re.findall(r"{(\w+)}", path)}
        links = {}
        for target, operations in paths.items():
            found = re.fullmatch(re.escape(path) + r"/{(\w+)}(/[^{]*)?", target)
            if found is None:
                continue
            for operation in operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": inherited | {found[1]: "$response.body#/id"},
                }
        if links:
            create["responses"]["201"]["links"] = links


def _problem_media_type(operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {})
        if status[0] in "45" and "application/json" in content:
            content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")


def _idempotency_conflict(operation: dict[str, Any]) -> None:
    """A write taking an ``Idempotency-Key`` answers 409 while a request with it runs."""
    takes_key = any(
        p.get("in") == "header" and p.get("name") == "Idempotency-Key"
        for p in operation.get("parameters", [])
    )
    if takes_key:
        operation["responses"].setdefault(
            "409",
            {
                "description": "Conflict",
                "content": {
                    PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            },
        )


def _api_key_header_scheme(schema: dict[str, Any]) -> None:
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[API_KEY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": f"`{API_KEY_HEADER}: <api key>`, the same key as the bearer token.",
    }


def _api_key_header_alternative(operation: dict[str, Any]) -> None:
    """Every operation accepting the bearer key accepts it as ``X-API-Key`` too."""
    for requirement in list(operation.get("security", [])):
        if BEARER_SCHEME in requirement:
            operation["security"].append({API_KEY_SCHEME: requirement[BEARER_SCHEME]})
