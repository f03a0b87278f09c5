"""Routers for the API's domains, with the conventions every operation shares."""

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from crm_api.core.auth import ApiKeyAuth
from crm_api.core.errors import responses
from crm_api.core.openapi import operation_id


def domain_router(*, tag: str, prefix: str = "", authenticated: bool = True) -> APIRouter:
    """A router whose operations are named ``<domain>_<verb>`` and declare their problems."""
    common: dict[int | str, Any] = responses(401, 403, 422) if authenticated else {}
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=common,
        generate_unique_id_function=operation_id,
        route_class=LeanRoute,
    )


Handler = Callable[[Request], Awaitable[Response]]


class LeanRoute(APIRoute):
    """An API route that serves simple read operations without FastAPI's general solver.

    An operation qualifies when its body is empty, its only dependency is the API-key
    principal, its other parameters are path, query or header values and it renders its
    own ``Response``. Those are the hot reads; FastAPI's per-request machinery (exit
    stacks, dependency cache, response-model serialisation) was most of their cost. They
    still validate their parameters with FastAPI's own field code, so errors read the
    same, and the OpenAPI document is built from the declaration as for any route.
    Anything else is served by FastAPI as usual.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        handler = _lean_handler(self.dependant)
        if handler is not None:
            self.app = _serve(handler)


def _serve(handler: Handler) -> ASGIApp:
    # Exceptions go up to the app's exception middleware, which holds the same handlers
    # Starlette would otherwise wrap around each route.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


def _lean_handler(dependant: Dependant) -> Handler | None:
    call = dependant.call
    returns = inspect.signature(call).return_annotation if call else None
    auth = [d for d in dependant.dependencies if isinstance(d.call, ApiKeyAuth)]
    if (
        call is None
        or not inspect.iscoroutinefunction(call)
        or not (inspect.isclass(returns) and issubclass(returns, Response))
        or dependant.body_params
        or dependant.cookie_params
        or len(auth) != len(dependant.dependencies)
        or any(d.dependencies or d.name is None for d in auth)
    ):
        return None
    principals = [(d.name, d.call) for d in auth]
    request_param = dependant.request_param_name
    sources = (
        (dependant.path_params, lambda r: r.path_params),
        (dependant.query_params, lambda r: r.query_params),
        (dependant.header_params, lambda r: r.headers),
    )
    params = [(fields, source) for fields, source in sources if fields]

    async def handler(request: Request) -> Response:
        values: dict[str, Any] = {name: await verify(request) for name, verify in principals}
        errors: list[Any] = []
        for fields, source in params:
            found, wrong = request_params_to_args(fields, source(request))
            values.update(found)
            errors.extend(wrong)
        if errors:
            raise RequestValidationError(errors)
        if request_param:
            values[request_param] = request
        return await call(**values)

    return handler
