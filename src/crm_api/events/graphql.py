"""GraphQL transport of the events feed: a live subscription (scope `events:read`)."""

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from crm_api.core.scopes import Scope
from crm_api.events import live, schemas
from crm_api.graphql.context import Info
from crm_api.graphql.convert import from_model, parse_id
from crm_api.graphql.pagination import after_argument
from crm_api.graphql.permissions import needs

# Values by name: CUSTOMER_CREATED for `customer.created`, ...
EventType = strawberry.enum(schemas.EventType, name="EventType")


@strawberry.type(description="Something that happened, as the REST feed and webhooks carry it.")
class Event:
    id: strawberry.ID
    type: EventType  # type: ignore[valid-type]
    occurred_at: datetime
    customer_id: strawberry.ID | None
    data: JSON = strawberry.field(description=schemas.Event.model_fields["data"].description)
    cursor: str = strawberry.field(
        description="Pass as `after` to resume right after this event (REST's feed takes it "
        "as `cursor`)."
    )

    @classmethod
    def of(cls, event: schemas.Event, cursor: str) -> "Event":
        return from_model(cls, event, type=schemas.EventType(event.type), cursor=cursor)


@strawberry.type
class EventSubscriptions:
    @strawberry.subscription(
        extensions=needs(Scope.EVENTS_READ),
        description="Events as they commit, oldest first, in the REST feed's order. Without "
        "`after`, those entering the feed from now on; with the `cursor` of the last event "
        "received, everything since, so a client that reconnects loses none. Customer "
        "payloads are redacted without `pii:read`.",
    )
    async def events(
        self,
        info: Info,
        types: Annotated[
            list[EventType] | None,  # type: ignore[valid-type]
            strawberry.argument(description="Any of these types; all when left out."),
        ] = None,
        customer_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this customer's events.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Resume after this: an event's `cursor`, or REST's `next_cursor`."
            ),
        ] = None,
    ) -> AsyncGenerator[Event, None]:
        context = info.context
        with after_argument():
            stream = live.subscribe(
                context.live_events,
                context.sign_in_again,
                types=frozenset(t.value for t in types or ()),
                customer_id=None if customer_id is None else parse_id(customer_id, "customerId"),
                after=after,
            )
            async for event, cursor in stream:
                yield Event.of(event, cursor)
