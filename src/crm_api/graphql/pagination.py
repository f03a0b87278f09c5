"""Relay connections over the services' keyset pages (the cursors REST hands out)."""

from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TypeVar

from strawberry import relay

from crm_api.core.db import Connection
from crm_api.core.errors import ValidationFailed
from crm_api.core.pagination import MAX_LIMIT
from crm_api.graphql.context import Info

M = TypeVar("M")
N = TypeVar("N")
K = TypeVar("K", bound=Hashable)
Page = tuple[list[M], str | None]


def page_size(first: int) -> int:
    if not 1 <= first <= MAX_LIMIT:
        raise ValidationFailed.for_field("first", f"must be between 1 and {MAX_LIMIT}")
    return first


@contextmanager
def after_argument() -> Iterator[None]:
    """Errors about a list's cursor (``cursor`` in REST) name the GraphQL argument ``after``."""
    try:
        yield
    except ValidationFailed as exc:
        for error in exc.errors or ():
            if error.field == "cursor":
                error.field = "after"
        raise


async def nested_page(
    info: Info,
    key: Hashable,
    owner: K,
    *,
    first_pages: Callable[[Connection, list[K]], Awaitable[Mapping[K, Page[M]]]],
    after: str | None,
    page_after: Callable[[Connection, str], Awaitable[Page[M]]],
) -> Page[M]:
    """A page of one owner's nested list (a customer's timeline, an account's ledger).

    First pages go through the request's batch ``key``: ``first_pages`` answers those of
    all the owners asked together with one statement, so a page of customers costs the
    same whatever its size. A page after a cursor is ``page_after``, the owner's own query.
    """
    if after is None:
        return await info.context.batched(key, first_pages, owner, ([], None))
    with after_argument():
        async with info.context.db.connection() as conn:
            return await page_after(conn, after)


def connection(
    items: Sequence[M],
    *,
    node: Callable[[M], N],
    cursor_of: Callable[[M], str],
    has_next_page: bool,
) -> relay.Connection[N]:
    """A forward-only page of ``items``: each edge's cursor continues right after its item."""
    edges = [relay.Edge(cursor=cursor_of(item), node=node(item)) for item in items]
    return relay.Connection(
        edges=edges,
        page_info=relay.PageInfo(
            has_next_page=has_next_page,
            # Keyset pages only go forward; Relay allows false when that is costly to know.
            has_previous_page=False,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
    )
