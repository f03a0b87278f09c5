"""Routers for the API's domains, with the conventions every operation shares."""

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic_core import PydanticUndefined as Undefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_api.core.auth import ApiKeyAuth
from crm_api.core.errors import responses
from crm_api.core.openapi import operation_id
from crm_api.core.ratelimit import RATE_LIMITED_RESPONSE


def domain_router(*, tag: str, prefix: str = "", authenticated: bool = True) -> APIRouter:
    """A router whose operations are named ``<domain>_<verb>`` and declare their problems."""
    common: dict[int | str, Any] = (
        responses(401, 403, 422) | RATE_LIMITED_RESPONSE if authenticated else {}
    )
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=common,
        generate_unique_id_function=operation_id,
        route_class=LeanRoute,
    )


Handler = Callable[[Request], Awaitable[Response]]
# Fills one dependant's arguments: (request, parsed body, per-request cache, errors found).
Solver = Callable[[Request, Any, dict[Any, Any], list[Any]], Awaitable[dict[str, Any]]]


class LeanRoute(APIRoute):
    """An API route served without FastAPI's general dependency solver, when it can be.

    An operation qualifies when it renders its own ``Response`` and everything it takes
    is a path, query or header value, a JSON body, the request, the API-key principal, or
    a plain async dependency made of those (the unit of work of a write). FastAPI's
    per-request machinery (exit stacks, dependency cache, response-model serialisation)
    was a third of a cached GET and a fifth of a write; here the plan is worked out once
    per route. Values are still validated by FastAPI's own field code, in FastAPI's order,
    so errors read the same, and the OpenAPI document is built from the declaration as for
    any route. Anything else is served by FastAPI as usual.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        handler = _lean_handler(self.dependant, self._embed_body_fields)
        if handler is not None:
            self.app = _serve(handler)


def _serve(handler: Handler) -> ASGIApp:
    # Exceptions go up to the app's exception middleware, which holds the same handlers
    # Starlette would otherwise wrap around each route.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def _lean_handler(dependant: Dependant, embed_body_fields: bool) -> Handler | None:
    call = dependant.call
    returns = inspect.signature(call).return_annotation if call else None
    if not (inspect.isclass(returns) and issubclass(returns, Response)):
        return None
    solve = _solver(dependant, embed_body_fields)
    if call is None or solve is None:
        return None
    reads_body = bool(dependant.body_params)

    async def handler(request: Request) -> Response:
        # FastAPI parses the body before anything else: malformed JSON is a 422 first.
        body = await _json_body(request) if reads_body else Undefined
        errors: list[Any] = []
        values = await solve(request, body, {}, errors)
        if errors:
            raise RequestValidationError(errors, body=body)
        return await call(**values)

    return handler


def _solver(dependant: Dependant, embed_body_fields: bool = False) -> Solver | None:
    """How to fill ``dependant``'s arguments, or None when it needs FastAPI's solver."""
    if (
        dependant.call is None
        or not inspect.iscoroutinefunction(dependant.call)
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        return None
    subs: list[tuple[str, Callable[..., Awaitable[Any]], Solver | None]] = []
    for sub in dependant.dependencies:
        if sub.name is None or sub.call is None:
            return None
        if isinstance(sub.call, ApiKeyAuth) and not sub.dependencies:
            subs.append((sub.name, sub.call, None))
            continue
        inner = None if sub.body_params else _solver(sub)
        if inner is None:
            return None
        subs.append((sub.name, sub.call, inner))
    # A path parameter is always there, one string: it goes straight to its field's
    # validation, without the per-request look at its annotation (sequence? model?) that
    # FastAPI's request_params_to_args makes for every kind of parameter.
    path = [(field, ("path", field.alias)) for field in dependant.path_params]
    sources = (
        (dependant.query_params, lambda r: r.query_params),
        (dependant.header_params, lambda r: r.headers),
    )
    params = [(fields, source) for fields, source in sources if fields]
    body_fields = dependant.body_params
    request_param = dependant.request_param_name

    async def solve(
        request: Request, body: Any, cache: dict[Any, Any], errors: list[Any]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {}
        failed = False
        for name, call, inner in subs:
            if call in cache:
                values[name] = cache[call]
                continue
            if inner is None:  # the API-key principal
                values[name] = cache[call] = await call(request)
                continue
            found = len(errors)
            arguments = await inner(request, body, cache, errors)
            if len(errors) > found:
                failed = True
                continue
            values[name] = cache[call] = await call(**arguments)
        for field, loc in path:
            value, wrong = field.validate(request.path_params[loc[1]], values, loc=loc)
            if wrong:
                errors.extend(wrong)
            else:
                values[field.name] = value
        for fields, source in params:
            found_params, wrong = request_params_to_args(fields, source(request))
            values.update(found_params)
            errors.extend(wrong)
        if body_fields:
            found_body, wrong_body = await request_body_to_args(
                body_fields, body, embed_body_fields
            )
            values.update(found_body)
            errors.extend(wrong_body)
        if request_param:
            values[request_param] = request
        # A dependency whose inputs failed is not called; its caller is not either.
        return {} if failed else values

    return solve


async def _json_body(request: Request) -> Any:
    """The body as FastAPI reads it: JSON when declared so, else the raw bytes."""
    try:
        raw = await request.body()
        if not raw:
            return Undefined
        content_type = request.headers.get("content-type")
        return await request.json() if content_type and _is_json(content_type) else raw
    except json.JSONDecodeError as e:
        error = {
            "type": "json_invalid",
            "loc": ("body", e.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": e.msg},
        }
        raise RequestValidationError([error], body=e.doc) from e
    except HTTPException:
        raise
    except Exception as e:
        raise HTTPException(400, "There was an error parsing the body") from e


def _is_json(content_type: str) -> bool:
    if content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
