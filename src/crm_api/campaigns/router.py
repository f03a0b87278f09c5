"""REST transport of campaigns and their performance."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.campaigns import service
from crm_api.campaigns.schemas import (
    Campaign,
    CampaignCreate,
    CampaignFilters,
    CampaignPerformance,
    CampaignStatus,
    CampaignUpdate,
)
from crm_api.core.auth import requires
from crm_api.core.channels import Channel
from crm_api.core.errors import responses
from crm_api.core.http import IfMatch, etag, expected_versions
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.types import Timestamp
from crm_api.core.uow import reads, unit_of_work

CAMPAIGNS = "/v1/campaigns"
router = domain_router(prefix=CAMPAIGNS, tag="campaigns")
Reader = requires(Scope.CAMPAIGNS_READ)
Writing = unit_of_work(Scope.CAMPAIGNS_WRITE)
CampaignId = Annotated[uuid.UUID, Path(description="The campaign's id.")]


def _headers(campaign: Campaign) -> dict[str, str]:
    return {"ETag": etag(campaign.version), "Location": f"{CAMPAIGNS}/{campaign.id}"}


@router.post("", status_code=201, response_model=Campaign, responses=responses(409))
async def campaigns_create(body: CampaignCreate, uow: Writing) -> Response:
    """Register a campaign. Interactions are matched to it by `code`, the label partners put
    in an interaction's `campaign` field; they may have been recorded before. An unknown
    `segment_id` is a 422, a code a live campaign has a 409. Emits `campaign.created`."""
    async with uow:
        campaign = await service.create_campaign(uow.conn, body)
        return await uow.commit(campaign, status_code=201, headers=_headers(campaign))


@router.get("", response_model=Page[Campaign])
async def campaigns_list(
    principal: Reader,
    request: Request,
    channel: Channel | None = None,
    segment_id: Annotated[
        uuid.UUID | None, Query(description="Campaigns targeting this segment.")
    ] = None,
    status: Annotated[CampaignStatus | None, Query(description="Status now.")] = None,
    active_at: Annotated[
        Timestamp | None,
        Query(description="Campaigns running at this instant: starts_at <= it < ends_at."),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Campaign]:
    """List live campaigns, oldest first."""
    filters = CampaignFilters(
        channel=channel, segment_id=segment_id, status=status, active_at=active_at
    )
    data, next_cursor = await service.list_campaigns(
        reads(request), filters, cursor=cursor, limit=limit
    )
    return Page[Campaign](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.get("/{campaign_id}", response_model=Campaign, responses=responses(404))
async def campaigns_get(campaign_id: CampaignId, principal: Reader, request: Request) -> Response:
    """Get one campaign."""
    campaign = await service.get_campaign(reads(request), campaign_id)
    return Response(
        campaign.model_dump_json(), media_type="application/json", headers=_headers(campaign)
    )


@router.patch("/{campaign_id}", response_model=Campaign, responses=responses(404, 409, 412))
async def campaigns_update(
    campaign_id: CampaignId, body: CampaignUpdate, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Change some fields; those left out stay, `null` clears description, segment_id or
    ends_at. Honours `If-Match`. Emits `campaign.updated` when anything changed."""
    async with uow:
        campaign = await service.update_campaign(
            uow.conn, campaign_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(campaign, headers=_headers(campaign))


@router.delete("/{campaign_id}", status_code=204, responses=responses(404, 412))
async def campaigns_delete(
    campaign_id: CampaignId, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Delete a campaign: it leaves every read, and its code may be registered again. The
    interactions labelled with it stay. Honours `If-Match`. Emits `campaign.deleted`."""
    async with uow:
        await service.delete_campaign(uow.conn, campaign_id, expected=expected_versions(if_match))
        return await uow.commit(status_code=204)


@router.get(
    "/{campaign_id}/performance", response_model=CampaignPerformance, responses=responses(404)
)
async def campaigns_performance(
    campaign_id: CampaignId, principal: Reader, request: Request
) -> CampaignPerformance:
    """Reach, responses, conversions, revenue and ROI of a campaign, computed now from the
    interactions labelled with its code (one statement); each figure's formula is in its
    description.

    A touch is an outbound interaction labelled with the code in [starts_at, ends_at or
    now]. A purchase labelled with the code (at or after starts_at) is the campaign's; an
    unlabelled purchase is attributed, last touch, to the campaign of the customer's latest
    touch before it that is still within that campaign's attribution window. Revenue counts
    the campaign's currency only, minus refunds naming (`refund_of`) one of its purchases.
    """
    return await service.campaign_performance(reads(request), campaign_id)
