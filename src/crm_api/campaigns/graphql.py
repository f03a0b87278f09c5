"""GraphQL transport of campaigns and their performance."""

import uuid
from datetime import datetime

import strawberry
from strawberry import relay

from crm_api.campaigns import schemas, service
from crm_api.campaigns.models import campaigns
from crm_api.core.channels import Channel
from crm_api.core.errors import NotFound
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent, idempotent_delete
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, page_size
from crm_api.graphql.permissions import needs
from crm_api.graphql.scalars import MinorUnits

strawberry.enum(schemas.CampaignStatus, name="CampaignStatus")


@strawberry.type(description="How a campaign did; see REST's campaigns_performance.")
class CampaignPerformance:
    campaign_id: strawberry.ID
    currency: str
    touches_from: datetime
    touches_until: datetime
    reach: int = strawberry.field(description="Distinct customers touched.")
    responses: int = strawberry.field(
        description="Distinct customers answering (labelled inbound) or buying."
    )
    response_rate: float | None = strawberry.field(description="responses / reach.")
    conversions: int = strawberry.field(description="Distinct customers buying.")
    conversion_rate: float | None = strawberry.field(description="conversions / reach.")
    orders: int = strawberry.field(description="The campaign's purchases in its currency.")
    revenue: MinorUnits = strawberry.field(
        description="Its purchases minus refunds of them, in its currency."
    )
    cost: MinorUnits
    roi: float | None = strawberry.field(description="(revenue - cost) / cost; null at 0 cost.")


@strawberry.type(description="A marketing campaign, matched to interactions by its code.")
class Campaign(Node):
    id: strawberry.ID
    code: str = strawberry.field(description="The label interactions carry in `campaign`.")
    name: str
    description: str | None
    channel: Channel
    segment_id: strawberry.ID | None = strawberry.field(description="The target segment.")
    cost: MinorUnits
    currency: str
    starts_at: datetime
    ends_at: datetime | None
    attribution_window_days: int
    status: schemas.CampaignStatus = strawberry.field(description="From the time now.")
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="Increments on every change; see ifMatchVersion.")

    @strawberry.field(description="Reach, responses, revenue and ROI, computed now.")
    async def performance(self, info: Info) -> CampaignPerformance:
        campaign_id = uuid.UUID(self.id)
        found = await info.context.batched(
            "campaign_performance", service.performances, campaign_id, None
        )
        if found is None:  # deleted since the campaign was read
            raise NotFound(f"No campaign with id {campaign_id}.")
        return from_model(CampaignPerformance, found)

    @classmethod
    def of(cls, model: schemas.Campaign) -> "Campaign":
        return from_model(cls, model)


findable(
    Campaign,
    campaigns.c.id,
    Scope.CAMPAIGNS_READ,
    lambda conn, principal, id, parent: service.get_campaign(conn, id),
)


@strawberry.input(description="A new campaign.")
class CampaignInput:
    code: str
    name: str
    description: str | None = strawberry.UNSET
    channel: Channel
    segment_id: strawberry.ID | None = strawberry.UNSET
    cost: MinorUnits | None = strawberry.field(default=strawberry.UNSET, description="Default 0.")
    currency: str
    starts_at: datetime
    ends_at: datetime | None = strawberry.UNSET
    attribution_window_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="0-90; default 7."
    )


@strawberry.input(description="Fields left out stay as they are; null clears.")
class CampaignPatchInput:
    code: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    channel: Channel | None = strawberry.UNSET
    segment_id: strawberry.ID | None = strawberry.UNSET
    cost: MinorUnits | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    starts_at: datetime | None = strawberry.UNSET
    ends_at: datetime | None = strawberry.UNSET
    attribution_window_days: int | None = strawberry.UNSET


@strawberry.input
class CampaignFilter:
    channel: Channel | None = strawberry.UNSET
    segment_id: strawberry.ID | None = strawberry.UNSET
    status: schemas.CampaignStatus | None = strawberry.UNSET
    active_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Running at this instant."
    )


@strawberry.type
class CampaignQueries:
    @strawberry.field(extensions=needs(Scope.CAMPAIGNS_READ), description="null if unknown.")
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_campaign(conn, parse_id(id)))
        return None if found is None else Campaign.of(found)

    @strawberry.field(
        extensions=needs(Scope.CAMPAIGNS_READ),
        description="Live campaigns, oldest first; cursors are REST's.",
    )
    async def campaigns(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        filter: CampaignFilter | None = None,
    ) -> relay.Connection[Campaign]:
        limit = page_size(first)
        filters = validated(schemas.CampaignFilters, plain(filter) if filter else {})
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_campaigns(
                    conn, filters, cursor=after, limit=limit
                )
        return connection(
            page,
            node=Campaign.of,
            cursor_of=lambda c: service.CAMPAIGNS.encode((c.created_at, c.id)),
            has_next_page=next_cursor is not None,
        )


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(
        extensions=needs(Scope.CAMPAIGNS_WRITE),
        description="Register a campaign; a code a live campaign has is a conflict.",
    )
    async def create_campaign(
        self, info: Info, input: CampaignInput, idempotency_key: IdempotencyKey = None
    ) -> Campaign:
        data = validated(schemas.CampaignCreate, plain(input))
        created = await idempotent(
            info,
            idempotency_key,
            schemas.Campaign,
            lambda conn: service.create_campaign(conn, data),
        )
        return Campaign.of(created)

    @strawberry.mutation(
        extensions=needs(Scope.CAMPAIGNS_WRITE),
        description="Change some fields; with ifMatchVersion, only if still at that version.",
    )
    async def update_campaign(
        self,
        info: Info,
        id: strawberry.ID,
        input: CampaignPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Campaign:
        campaign_id = parse_id(id)
        patch = validated(schemas.CampaignUpdate, plain(input))
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.Campaign,
            lambda conn: service.update_campaign(conn, campaign_id, patch, expected=expected),
        )
        return Campaign.of(updated)

    @strawberry.mutation(
        extensions=needs(Scope.CAMPAIGNS_WRITE),
        description="Delete a campaign (its labelled interactions stay); answers its id.",
    )
    async def delete_campaign(
        self,
        info: Info,
        id: strawberry.ID,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> strawberry.ID:
        return await idempotent_delete(
            info,
            id,
            if_match_version,
            idempotency_key,
            lambda conn, target, expected: service.delete_campaign(conn, target, expected=expected),
        )
