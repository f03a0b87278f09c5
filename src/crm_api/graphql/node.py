"""The ``Node`` interface and ``node(id)``: any object with an id, found by its id alone.

Ids are REST's ids, not Relay's opaque "Type:id" ones: UUIDv7s, unique across every table,
so an id read over REST works here unchanged. Parity between the two transports matters
more to this API than Relay's convention, and the id alone still tells the type.

A domain makes a type findable with ``findable``: the column holding its ids (and the
parent's id, for objects REST addresses under a parent), the scope reading it takes, and
how to load it with the service call of its single-object query. ``node`` finds the type
with one statement (a UNION ALL over those columns), checks the scope and loads the object.
"""

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa
import strawberry

from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import parse_id
from crm_api.graphql.errors import or_none
from crm_api.graphql.permissions import HasScope


@strawberry.interface(
    description="An object with an id: the same id as in REST, unique across all types."
)
class Node:
    id: strawberry.ID


# (connection, caller, id, parent id or None) -> the service's model; NotFound when gone.
Get = Callable[[Connection, Principal, uuid.UUID, uuid.UUID | None], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Findable:
    permission: HasScope
    get: Get
    render: Callable[[Any], Node]
    where: sa.Select[Any]


_FINDABLE: dict[str, _Findable] = {}


def findable(
    cls: type[Node],
    id_column: sa.ColumnElement[uuid.UUID],
    scope: Scope,
    get: Get,
    *,
    parent: sa.ColumnElement[uuid.UUID] | None = None,
    render: Callable[[Any], Node] | None = None,
) -> None:
    """Let ``node(id)`` find objects of ``cls`` by ``id_column`` for keys holding ``scope``.

    ``get`` is the service call of the type's single-object query; ``render`` makes the
    GraphQL object of its answer (by default ``cls.of``).
    """
    name = cls.__strawberry_definition__.name  # type: ignore[attr-defined]
    where = sa.select(
        sa.literal_column(f"'{name}'", sa.Text).label("type"),
        (sa.cast(sa.null(), sa.Uuid) if parent is None else parent).label("parent"),
    ).where(id_column == sa.bindparam("id", type_=sa.Uuid))
    render = render or cls.of  # type: ignore[attr-defined]
    _FINDABLE[name] = _Findable(HasScope(scope), get, render, where)


def findable_types() -> frozenset[str]:
    return frozenset(_FINDABLE)


@cache
def _find() -> Compiled:
    # Built on first use, once every domain module has registered its types.
    return Compiled.of(sa.union_all(*(f.where for f in _FINDABLE.values())).limit(1))


@strawberry.type
class NodeQueries:
    @strawberry.field(
        description="The object with this id, whatever its type; null if unknown. Ids are "
        "REST's (UUIDv7, unique across types), not Relay's opaque ones, so an id from REST "
        "works unchanged. Reading an object takes the scope its type's own query takes: "
        "without it, a forbidden error."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        object_id = parse_id(id)
        async with info.context.db.connection() as conn:
            found = await _find().fetchrow(conn, id=object_id)
            if found is None:
                return None
            kind = _FINDABLE[found["type"]]
            if not kind.permission.has_permission(None, info):
                kind.permission.on_unauthorized()
            model = await or_none(
                kind.get(conn, info.context.principal, object_id, found["parent"])
            )
        return None if model is None else kind.render(model)
