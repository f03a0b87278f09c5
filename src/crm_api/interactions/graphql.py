"""GraphQL transport of the interaction timeline."""

import uuid
from datetime import datetime
from functools import partial

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.channels import Channel
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Context, Info
from crm_api.graphql.convert import from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.pagination import after_argument, connection, page_size
from crm_api.graphql.permissions import needs
from crm_api.graphql.scalars import MinorUnits
from crm_api.interactions import schemas, service

strawberry.enum(schemas.InteractionType, name="InteractionType")
strawberry.enum(schemas.Direction, name="Direction")


@strawberry.type
class LineItem:
    sku: str
    name: str | None
    category: str | None
    quantity: int
    unit_price: MinorUnits = strawberry.field(description="Price of one unit.")


@strawberry.type(description="A fact on a customer's timeline; immutable once recorded.")
class Interaction:
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
    items: list[LineItem]
    nps: int | None
    csat: int | None
    refund_of: strawberry.ID | None = strawberry.field(description="Refunds: the purchase.")

    @classmethod
    def of(cls, model: schemas.Interaction) -> "Interaction":
        return from_model(cls, model, items=[from_model(LineItem, i) for i in model.items])


@strawberry.input
class LineItemInput:
    sku: str
    name: str | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    quantity: int
    unit_price: MinorUnits


@strawberry.input(description="Purchases and refunds need amount and currency and may have items.")
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
    items: list[LineItemInput] | None = strawberry.UNSET
    nps: int | None = strawberry.UNSET
    csat: int | None = strawberry.UNSET
    refund_of: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="Refunds: the id of the purchase refunded (same customer and currency).",
    )


def _cursor(interaction: schemas.Interaction) -> str:
    return service.TIMELINE.encode((interaction.occurred_at, interaction.id))


async def _latest(
    ctx: Context, limit: int, customer_ids: list[uuid.UUID]
) -> list[tuple[list[schemas.Interaction], str | None]]:
    async with ctx.db.connection() as conn:
        pages = await service.latest_by_customer(conn, ctx.principal, customer_ids, limit=limit)
    return [pages[customer_id] for customer_id in customer_ids]


async def timeline(
    info: Info, customer_id: uuid.UUID, *, first: int, after: str | None
) -> relay.Connection[Interaction]:
    """A customer's timeline page, newest first.

    First pages go through a per-request DataLoader, so the timelines of a whole page of
    customers cost one batch; a page after a cursor is one customer's own query.
    """
    ctx, limit = info.context, page_size(first)
    if after is None:
        loader = ctx.loader(("timelines", limit), partial(_latest, ctx, limit))
        page, next_cursor = await loader.load(customer_id)
    else:
        with after_argument():
            async with ctx.db.connection() as conn:
                page, next_cursor = await service.customer_timeline(
                    conn,
                    ctx.principal,
                    customer_id,
                    schemas.InteractionFilters(),
                    cursor=after,
                    limit=limit,
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


@strawberry.type
class InteractionMutations:
    @strawberry.mutation(
        extensions=needs(Scope.INTERACTIONS_WRITE),
        description="Record an interaction; an externalId already recorded is a conflict.",
    )
    async def record_interaction(self, info: Info, input: InteractionInput) -> Interaction:
        data = validated(schemas.InteractionCreate, plain(input))
        async with info.context.db.transaction() as conn:
            recorded = await service.record_interaction(conn, info.context.principal, data)
        return Interaction.of(recorded)
