"""GraphQL transport of the interaction timeline."""

import uuid
from datetime import datetime

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.channels import Channel
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, nested_page, page_size
from crm_api.graphql.permissions import needs
from crm_api.graphql.scalars import MinorUnits
from crm_api.interactions import schemas, service
from crm_api.interactions.models import interactions

strawberry.enum(schemas.InteractionType, name="InteractionType")
strawberry.enum(schemas.Direction, name="Direction")


@strawberry.type
class LineItem:
    sku: str
    name: str | None
    category: str | None
    quantity: int
    unit_price: MinorUnits = strawberry.field(description="Price of one unit.")
    unit_cost: MinorUnits | None = strawberry.field(
        description="What one unit cost; null when not known."
    )


@strawberry.type(description="A fact on a customer's timeline; immutable once recorded.")
class Interaction(Node):
    id: strawberry.ID
    customer_id: strawberry.ID
    type: schemas.InteractionType
    external_id: str | None
    channel: Channel | None
    direction: schemas.Direction | None
    occurred_at: datetime
    recorded_at: datetime
    subject: str | None
    body: str | None
    campaign: str | None
    metadata: JSON
    amount: MinorUnits | None
    currency: str | None
    service_cost: MinorUnits | None = strawberry.field(
        description="What serving the customer through this interaction cost, in `currency`."
    )
    items: list[LineItem]
    nps: int | None
    csat: int | None
    refund_of: strawberry.ID | None = strawberry.field(description="Refunds: the purchase.")
    sentiment: float | None = strawberry.field(
        description="Feedback and support texts: VADER's compound score, -1 to 1."
    )

    @classmethod
    def of(cls, model: schemas.Interaction) -> "Interaction":
        return from_model(cls, model, items=[from_model(LineItem, i) for i in model.items])


findable(
    Interaction,
    interactions.c.id,
    Scope.INTERACTIONS_READ,
    lambda conn, principal, id, parent: service.get_interaction(conn, principal, id),
)


@strawberry.input
class LineItemInput:
    sku: str
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    quantity: int
    unit_price: MinorUnits
    unit_cost: MinorUnits | None = strawberry.field(
        default=strawberry.UNSET, description="What one unit cost; left out when not known."
    )


@strawberry.input(
    description="Purchases and refunds need amount and currency and may have items; any "
    "interaction may carry a serviceCost, with its currency."
)
class InteractionInput:
    customer_id: strawberry.ID
    type: schemas.InteractionType
    external_id: str | None = strawberry.field(
        default=strawberry.UNSET, description="The source system's id; unique per customer."
    )
    channel: Channel | None = strawberry.UNSET
    direction: schemas.Direction | None = strawberry.UNSET
    occurred_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Defaults to now."
    )
    subject: str | None = strawberry.UNSET
    body: str | None = strawberry.UNSET
    campaign: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    amount: MinorUnits | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    service_cost: MinorUnits | None = strawberry.field(
        default=strawberry.UNSET,
        description="What serving the customer through this interaction cost (a support call, "
        "a visit); needs currency.",
    )
    items: list[LineItemInput] | None = strawberry.UNSET
    nps: int | None = strawberry.UNSET
    csat: int | None = strawberry.UNSET
    refund_of: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Refunds: the id of the purchase refunded (same customer and currency).",
    )


@strawberry.input
class InteractionFilter:
    customer_id: strawberry.ID | None = strawberry.UNSET
    types: list[schemas.InteractionType] | None = strawberry.field(
        default=strawberry.UNSET, description="Any of these types."
    )
    channels: list[Channel] | None = strawberry.field(
        default=strawberry.UNSET, description="Any of these channels."
    )
    since: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="occurredAt >= since."
    )
    until: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="occurredAt < until."
    )


def _cursor(interaction: schemas.Interaction) -> str:
    return service.TIMELINE.encode((interaction.occurred_at, interaction.id))


async def timeline(
    info: Info, customer_id: uuid.UUID, *, first: int, after: str | None
) -> relay.Connection[Interaction]:
    """A customer's timeline page, newest first."""
    principal, limit = info.context.principal, page_size(first)
    page, next_cursor = await nested_page(
        info,
        ("timelines", limit),
        customer_id,
        first_pages=lambda conn, ids: service.latest_by_customer(conn, principal, ids, limit=limit),
        after=after,
        page_after=lambda conn, cursor: service.customer_timeline(
            conn, principal, customer_id, schemas.InteractionFilters(), cursor=cursor, limit=limit
        ),
    )
    return connection(
        page, node=Interaction.of, cursor_of=_cursor, has_next_page=next_cursor is not None
    )


@strawberry.type
class InteractionQueries:
    @strawberry.field(extensions=needs(Scope.INTERACTIONS_READ), description="null if unknown.")
    async def interaction(self, info: Info, id: strawberry.ID) -> Interaction | None:
        async with info.context.db.connection() as conn:
            found = await or_none(
                service.get_interaction(conn, info.context.principal, parse_id(id))
            )
        return None if found is None else Interaction.of(found)

    @strawberry.field(
        extensions=needs(Scope.INTERACTIONS_READ),
        description="Interactions of every customer, newest first; cursors are REST's.",
    )
    async def interactions(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        filter: InteractionFilter | None = None,
    ) -> relay.Connection[Interaction]:
        limit = page_size(first)
        filters = validated(schemas.InteractionFilters, plain(filter) if filter else {})
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_interactions(
                    conn, info.context.principal, filters, cursor=after, limit=limit
                )
        return connection(
            page, node=Interaction.of, cursor_of=_cursor, has_next_page=next_cursor is not None
        )


@strawberry.type
class InteractionMutations:
    @strawberry.mutation(
        extensions=needs(Scope.INTERACTIONS_WRITE),
        description="Record an interaction; an externalId already recorded is a conflict.",
    )
    async def record_interaction(
        self, info: Info, input: InteractionInput, idempotency_key: IdempotencyKey = None
    ) -> Interaction:
        data = validated(schemas.InteractionCreate, plain(input))
        negative_below = info.context.settings.sentiment_negative_threshold
        recorded = None
        if idempotency_key is None:  # no key to commit with it: it may share a statement
            assert info.context.request is not None
            recorder: service.Recorder = info.context.request.app.state.interaction_recorder
            recorded = await recorder.record(data, negative_below=negative_below)
        if recorded is None:
            recorded = await idempotent(
                info,
                idempotency_key,
                schemas.Interaction,
                lambda conn: service.record_interaction(
                    conn, info.context.principal, data, negative_below=negative_below
                ),
            )
        return Interaction.of(recorded)
