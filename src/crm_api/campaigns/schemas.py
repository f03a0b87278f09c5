"""Request and response models of campaigns and their performance."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from crm_api.core.channels import Channel
from crm_api.core.types import CurrencyCode, Label, MinorUnits, ShortText, Timestamp, bounded_text

Description = bounded_text(2000)
Code = Annotated[
    Label,
    Field(
        description="The label interactions carry in their `campaign` field (a partner tags "
        "an email or an order with it); unique among live campaigns, compared exactly."
    ),
]
AttributionWindow = Annotated[
    int,
    Field(
        ge=0,
        le=90,
        description="Days after a touch in which an unlabelled purchase of the customer is "
        "attributed to the campaign (last touch wins); 0: labelled purchases only.",
    ),
]
Cost = Annotated[MinorUnits, Field(description="What the campaign cost, in minor units.")]
StartsAt = Annotated[Timestamp, Field(description="When the campaign starts.")]
EndsAt = Annotated[
    Timestamp, Field(description="When it ends, after `starts_at`; null: open-ended.")
]
TargetSegment = Annotated[uuid.UUID, Field(description="The segment the campaign targets.")]


class CampaignStatus(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    ENDED = "ended"


ENDS_BEFORE_START = "must be after starts_at"


class CampaignCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: ShortText
    description: Description | None = None
    channel: Channel = Field(description="The channel the campaign reaches customers on.")
    segment_id: TargetSegment | None = None
    cost: Cost = 0
    currency: CurrencyCode = Field(description="Currency of `cost` and of the revenue counted.")
    starts_at: StartsAt
    ends_at: EndsAt | None = None
    attribution_window_days: AttributionWindow = 7

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: datetime | None, info: ValidationInfo) -> datetime | None:
        starts_at = info.data.get("starts_at")
        if ends_at is not None and starts_at is not None and ends_at <= starts_at:
            raise ValueError(ENDS_BEFORE_START)
        return ends_at


class CampaignUpdate(BaseModel):
    """Fields left out stay as they are; `null` clears the description, the segment or the
    end."""

    model_config = ConfigDict(extra="forbid")

    code: Code | None = None
    name: ShortText | None = None
    description: Description | None = None
    channel: Channel | None = None
    segment_id: TargetSegment | None = None
    cost: Cost | None = None
    currency: CurrencyCode | None = None
    starts_at: StartsAt | None = None
    ends_at: EndsAt | None = None
    attribution_window_days: AttributionWindow | None = None


# Fields a patch may not set to null.
REQUIRED = ("code", "name", "channel", "cost", "currency", "starts_at", "attribution_window_days")


class Campaign(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    channel: Channel
    segment_id: uuid.UUID | None = Field(
        description="The target segment; null when none, or when it was deleted."
    )
    cost: int = Field(description="What the campaign cost, in minor units of `currency`.")
    currency: str
    starts_at: datetime
    ends_at: datetime | None
    attribution_window_days: int
    status: CampaignStatus = Field(
        description="From the time now: `planned` before `starts_at`, `ended` from `ends_at` "
        "on, `running` between."
    )
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag.")


class CampaignFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel | None = None
    segment_id: uuid.UUID | None = None
    status: CampaignStatus | None = None
    active_at: Timestamp | None = None


class CampaignPerformance(BaseModel):
    """How a campaign did. A touch is an outbound interaction labelled with the campaign's
    code, occurring in [`touches_from`, `touches_until`]. A purchase is the campaign's when it
    is labelled with the code (at or after `starts_at`), or, unlabelled, when the customer's
    latest touch before it that is still within its campaign's attribution window (touch <
    purchase <= touch + attribution_window_days, over the touches of every live campaign) is
    this campaign's: last touch wins, so a later campaign's touch takes the attribution."""

    campaign_id: uuid.UUID
    currency: str = Field(description="The campaign's currency: of revenue and cost.")
    touches_from: datetime = Field(description="Touches count from here (starts_at).")
    touches_until: datetime = Field(
        description="Touches count up to here, inclusive: ends_at, or now while open-ended."
    )
    reach: int = Field(description="Distinct customers touched (deleted customers included).")
    responses: int = Field(
        description="Distinct customers with an inbound interaction labelled with the code "
        "(at or after starts_at), or with a purchase of the campaign."
    )
    response_rate: float | None = Field(
        description="responses / reach; above 1 when customers never touched answer (a "
        "shared code)."
    )
    conversions: int = Field(
        description="Distinct customers with a purchase of the campaign (in any currency)."
    )
    conversion_rate: float | None = Field(description="conversions / reach.")
    orders: int = Field(description="Purchases of the campaign in `currency`.")
    revenue: int = Field(
        description="Amounts of the campaign's purchases in `currency` minus the amounts of "
        "refunds whose `refund_of` names one of them; minor units."
    )
    cost: int = Field(description="The campaign's cost, minor units of `currency`.")
    roi: float | None = Field(
        description="Return on investment = (revenue - cost) / cost; null when cost is 0."
    )


class CampaignTotals(BaseModel):
    """Campaigns of one currency taken together (the KPIs' campaign figures)."""

    currency: str
    cost: int = Field(description="Their costs summed.")
    revenue: int = Field(description="Their revenues summed (see CampaignPerformance).")
    roi: float | None = Field(description="(revenue - cost) / cost; null when cost is 0.")
