"""RFC 9457 problem details: the one error shape of the API.

Services raise the exceptions below; the handlers installed by ``install`` render them,
FastAPI's validation errors and Starlette's HTTP errors as ``application/problem+json``.
"""

import asyncio
import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from crm_api.core.json import dumps
from crm_api.core.types import NOT_UNICODE, PATTERN_MESSAGES

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"
log = logging.getLogger("crm_api.errors")


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `address.country`.")
    message: str
    location: str = Field(
        default="body", description="Where the field was: body, query, path or header."
    )


class Problem(BaseModel):
    """An RFC 9457 problem details object."""

    type: str = Field(
        description="URI reference naming the problem type, e.g. `/problems/not-found`."
    )
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    request_id: str | None = None
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    status: int = 500
    slug: str = "internal-error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Iterable[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = dict(headers or {})
        # RFC 9457 extension members: problem-specific facts a client can act on.
        self.extensions = dict(extensions or {})

    @classmethod
    def for_field(cls, field: str, message: str, *, location: str = "body") -> "ProblemError":
        return cls(message, errors=[FieldError(field=field, message=message, location=location)])


class BadRequest(ProblemError):
    status, slug = 400, "bad-request"


class Unauthorized(ProblemError):
    status, slug = 401, "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="crm-api"'})


class Forbidden(ProblemError):
    status, slug = 403, "forbidden"


class NotFound(ProblemError):
    status, slug = 404, "not-found"


class Conflict(ProblemError):
    status, slug = 409, "conflict"


class IdempotencyInProgress(ProblemError):
    status, slug = 409, "idempotency-key-in-use"


class PreconditionFailed(ProblemError):
    status, slug = 412, "precondition-failed"


class UnsupportedMediaType(ProblemError):
    status, slug = 415, "unsupported-media-type"


class ValidationFailed(ProblemError):
    status, slug = 422, "validation-error"


class IdempotencyKeyReused(ProblemError):
    status, slug = 422, "idempotency-key-reused"


class ServiceUnavailable(ProblemError):
    status, slug = 503, "service-unavailable"


def problem_response(
    request: Request | None,
    *,
    status: int,
    slug: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response:
    body = Problem(
        type=PROBLEM_BASE + slug,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        request_id=request.scope.get("state", {}).get("request_id")
        if request is not None
        else None,
        errors=errors,
    )
    return Response(
        dumps({**(extensions or {}), **body.model_dump(exclude_none=True)}),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    """Pydantic / FastAPI validation errors as field errors (``loc`` -> dotted path)."""
    out = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] == location else loc
        message = _message(error)
        out.append(FieldError(field=".".join(path) or location, message=message, location=location))
    return out


_LOCATIONS = frozenset({"body", "query", "path", "header"})


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "string_unicode":
        return NOT_UNICODE
    if error["type"] == "string_pattern_mismatch":
        return PATTERN_MESSAGES.get(error.get("ctx", {}).get("pattern"), error["msg"])
    return str(error["msg"]).removeprefix("Value error, ")


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        status=exc.status,
        slug=exc.slug,
        detail=exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(
        request,
        status=422,
        slug=ValidationFailed.slug,
        detail=f"The request is invalid: {len(errors)} field error(s).",
        errors=errors,
    )


HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    408: "request-timeout",
    413: "content-too-large",
    415: "unsupported-media-type",
}


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI answers malformed JSON with a 422 but a body that is not UTF-8, or nested
        # past the parser's limit, with a 400: to a client both are one mistake, one answer.
        return problem_response(
            request,
            status=422,
            slug=ValidationFailed.slug,
            detail="The request body is not valid JSON.",
            errors=[FieldError(field="body", message="is not valid UTF-8 encoded JSON")],
        )
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No route matches {request.url.path}."
    return problem_response(
        request,
        status=exc.status_code,
        slug=HTTP_SLUGS.get(exc.status_code, f"http-{exc.status_code}"),
        detail=detail,
        headers=exc.headers,
    )


async def _on_database_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("database unavailable: %r", exc)
    return problem_response(
        request,
        status=503,
        slug=ServiceUnavailable.slug,
        detail="The database is unavailable; retry shortly.",
        headers={"Retry-After": "1"},
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(
        request,
        status=500,
        slug="internal-error",
        detail="An unexpected error occurred; it has been logged with this request id.",
    )


DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    # A connection the server dropped surfaces as a client-side state error when asyncpg
    # notices only at the next use ("connection is closed", "another operation is in
    # progress"): the database's outage, not a fault of the request.
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.OperatorInterventionError,
    asyncpg.QueryCanceledError,
    ConnectionError,
    asyncio.TimeoutError,
)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem responses an operation can give."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase} for status in statuses
    }
