"""Relay connections over the services' keyset pages (the cursors REST hands out)."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from strawberry import relay

from crm_api.core.errors import ValidationFailed
from crm_api.core.pagination import MAX_LIMIT

M = TypeVar("M")
N = TypeVar("N")


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
