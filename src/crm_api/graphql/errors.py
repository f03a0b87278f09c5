"""GraphQL errors in the API's one vocabulary: the problem slugs and statuses REST uses.

Resolvers raise the same ``ProblemError``s as the services; ``ProblemExtensions`` renders
them as ``extensions: {code, type, status, errors?}`` and replaces any other exception
raised while resolving a field with an opaque internal error, so no Python detail leaks.
``type`` is REST's problem ``type`` itself (``/problems/not-found``); ``code`` is its last
segment (``not-found``), the short form GraphQL clients conventionally switch on.
"""

import logging
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types import StreamExecutionResult

from crm_api.core.errors import (
    DATABASE_UNAVAILABLE,
    PROBLEM_BASE,
    FieldError,
    NotFound,
    ProblemError,
    ServiceUnavailable,
)
from crm_api.graphql.convert import graphql_path

log = logging.getLogger("crm_api.graphql")
T = TypeVar("T")


async def or_none(found: Awaitable[T]) -> T | None:
    """A single-object field answers null, not an error, for what does not exist."""
    try:
        return await found
    except NotFound:
        return None


def is_unexpected(error: GraphQLError) -> bool:
    """A failure of ours (a bug, an outage) rather than of the request."""
    original = error.original_error
    # Errors without a path (syntax, validation, variable coercion) are the client's.
    return error.path is not None and not isinstance(original, ProblemError | GraphQLError | None)


def _field_error(error: FieldError) -> dict[str, str]:
    # Paths name GraphQL input fields (camelCase), not the JSON fields of REST.
    return {"field": graphql_path(error.field), "message": error.message}


def _problem(error: GraphQLError, problem: ProblemError) -> GraphQLError:
    extensions: dict[str, Any] = {
        "code": problem.slug,
        "type": PROBLEM_BASE + problem.slug,
        "status": problem.status,
    }
    if problem.errors:
        extensions["errors"] = [_field_error(e) for e in problem.errors]
    return GraphQLError(
        problem.detail,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def _rendered(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, ProblemError):
        return _problem(error, original)
    if not is_unexpected(error):
        return error
    if isinstance(original, DATABASE_UNAVAILABLE):
        return _problem(error, ServiceUnavailable("The database is unavailable; retry shortly."))
    return _problem(
        error, ProblemError("An unexpected error occurred; it has been logged with the request id.")
    )


def _render_errors(result: Any) -> None:
    if getattr(result, "errors", None):
        result.errors = [_rendered(e) for e in result.errors]


class ProblemExtensions(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        _render_errors(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        # A websocket sends each result as it comes, before the operation ends.
        _render_errors(result)
        yield


def log_unexpected(errors: list[GraphQLError]) -> None:
    """Log our own failures with their traceback; a client's mistakes are no error of ours."""
    for error in errors:
        if is_unexpected(error):
            log.error("unhandled error in %s", error.path, exc_info=error.original_error)
