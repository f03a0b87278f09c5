"""REST transport of the events feed."""

import uuid
from typing import Annotated

from fastapi import Query, Request

from crm_api.core.auth import requires
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.types import Label, Timestamp
from crm_api.core.uow import reads
from crm_api.events import service
from crm_api.events.schemas import Event

router = domain_router(prefix="/v1/events", tag="events")
Reader = requires(Scope.EVENTS_READ)


@router.get("", response_model=Page[Event])
async def events_list(
    principal: Reader,
    request: Request,
    type: Annotated[list[Label], Query(description="Any of these event types (repeatable).")] = [],
    customer_id: uuid.UUID | None = None,
    since: Annotated[Timestamp | None, Query(description="occurred_at >= since.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Event]:
    """Committed events in commit-safe order, oldest first: poll with `next_cursor` to follow.

    An event appears once every write transaction that started before it has finished
    (anywhere on the database server), so a cursor never skips an event that commits
    later; a long write elsewhere delays the feed, it never reorders it. On the last page
    `next_cursor` still points past the newest event: keep it and poll again. Customer
    payloads are redacted without `pii:read`.
    """
    data, next_cursor, has_more = await service.list_events(
        reads(request),
        principal,
        types=type,
        customer_id=customer_id,
        since=since,
        cursor=cursor,
        limit=limit,
    )
    return Page[Event](data=data, next_cursor=next_cursor, has_more=has_more)
