"""Idempotency keys on mutations: one key, one effect, however often a mutation is retried.

REST's mechanism and table (``core.idempotency``): the key is claimed in a statement of its
own, so a concurrent duplicate is refused (``idempotency-key-in-use``) instead of waiting,
and the answer is stored in the business transaction, so it commits with the change it
reports. The answer kept is the service's result as JSON; a replay rebuilds the GraphQL
object from it, so it selects fields like a first answer does.

Keys live in one space per API key, shared with REST's ``Idempotency-Key``: a key names one
request whichever transport sent it. The request is the mutation field with its arguments
(coerced, so inline literals and variables of equal value are the same request); the key
with another mutation, other arguments or a REST call is ``idempotency-key-reused``.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, TypeVar

import orjson
import strawberry
from graphql.execution.values import VariableValues, get_argument_values
from pydantic import TypeAdapter
from strawberry.types.nodes import get_variable_values

from crm_api.core import idempotency
from crm_api.core.db import Connection
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, parse_id

T = TypeVar("T")

IdempotencyKey = Annotated[
    str | None,
    strawberry.argument(
        description="Makes the mutation safe to retry: the same key with the same arguments "
        "answers the first result again (for 24 h by default) without a second effect; with "
        "other arguments it is an error, code idempotency-key-reused. Keys are per API key "
        "and shared with REST's Idempotency-Key; 1-255 printable ASCII characters."
    ),
]
_ARGUMENT = "idempotencyKey"
# Never a REST method, so no REST request shares a fingerprint with a mutation.
_TRANSPORT = "GRAPHQL"


async def idempotent(
    info: Info, key: str | None, result: Any, write: Callable[[Connection], Awaitable[T]]
) -> T:
    """Run ``write`` in a transaction of its own, at most once per ``key``.

    ``result`` is the type ``write`` answers (a pydantic model, a tuple of them, None ...),
    in which a stored answer is kept and read back.
    """
    ctx = info.context
    async with ctx.db.connection() as conn:
        owned = None
        if key is not None:
            ttl = timedelta(hours=ctx.settings.idempotency_ttl_hours)
            outcome = await idempotency.claim(
                conn,
                ctx.principal.key_id,
                key,
                _fingerprint(info),
                ttl,
                field=_ARGUMENT,
                location="body",
            )
            if isinstance(outcome, idempotency.StoredResponse):
                return _adapter(result).validate_json(outcome.body)  # type: ignore[no-any-return]
            owned = outcome
        try:
            async with conn.transaction():
                answer = await write(conn)
                if owned is not None:
                    stored = idempotency.StoredResponse(200, _adapter(result).dump_json(answer), {})
                    await idempotency.complete(conn, owned, stored)
        except BaseException:
            if owned is not None:  # rolled back: the key is free for a retry
                await idempotency.release(conn, owned)
            raise
    return answer


Delete = Callable[[Connection, uuid.UUID, frozenset[int] | None], Awaitable[object]]


async def idempotent_delete(
    info: Info, id: strawberry.ID, if_match_version: int | None, key: str | None, delete: Delete
) -> strawberry.ID:
    """The body of a delete mutation: ``delete(conn, target, expected versions)`` run as
    ``idempotent`` runs a write; answers the deleted object's id."""
    target = parse_id(id)
    expected = expected_versions(if_match_version)
    await idempotent(info, key, None, lambda conn: delete(conn, target, expected))
    return strawberry.ID(str(target))


@cache
def _adapter(result: Any) -> TypeAdapter[Any]:
    return TypeAdapter(result)


def _fingerprint(info: Info) -> bytes:
    """The mutation field and its coerced arguments, the key itself left out."""
    raw = info._raw_info  # graphql-core's info: the field's definition and AST node
    arguments = get_argument_values(
        raw.parent_type.fields[raw.field_name],
        raw.field_nodes[0],
        VariableValues(sources={}, coerced=get_variable_values(raw)),
    )
    arguments.pop(_ARGUMENT, None)
    # Sorted keys, enums by value: the same arguments, inline or as variables, same bytes.
    canonical = orjson.dumps(arguments, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)
    return idempotency.fingerprint(_TRANSPORT, raw.field_name, "", canonical)
