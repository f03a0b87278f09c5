"""Wire shapes of the events feed."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EventType(StrEnum):
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_DELETED = "customer.deleted"
    CUSTOMER_ERASED = "customer.erased"
    INTERACTION_CREATED = "interaction.created"
    FEEDBACK_NEGATIVE = "feedback.negative"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_UPDATED = "webhook_endpoint.updated"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint.disabled"
    WEBHOOK_TEST = "webhook.test"
    SEGMENT_CREATED = "segment.created"
    SEGMENT_UPDATED = "segment.updated"
    SEGMENT_DELETED = "segment.deleted"
    SEGMENT_ENTERED = "segment.entered"
    SEGMENT_EXITED = "segment.exited"
    SCORING_RUN_COMPLETED = "scoring.run_completed"
    CUSTOMER_CHURN_RISK_CHANGED = "customer.churn_risk_changed"
    LOYALTY_POINTS_EARNED = "loyalty.points_earned"
    LOYALTY_POINTS_REDEEMED = "loyalty.points_redeemed"
    LOYALTY_POINTS_EXPIRED = "loyalty.points_expired"
    LOYALTY_POINTS_ADJUSTED = "loyalty.points_adjusted"
    LOYALTY_POINTS_REVERSED = "loyalty.points_reversed"
    LOYALTY_TIER_CHANGED = "loyalty.tier_changed"
    LOYALTY_REWARD_REDEEMED = "loyalty.reward_redeemed"
    LIFECYCLE_TRANSITIONED = "lifecycle.transitioned"
    CAMPAIGN_CREATED = "campaign.created"
    CAMPAIGN_UPDATED = "campaign.updated"
    CAMPAIGN_DELETED = "campaign.deleted"


class Event(BaseModel):
    id: uuid.UUID
    type: str = Field(description="What happened, `<resource>.<verb>`, e.g. `customer.created`.")
    occurred_at: datetime
    customer_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="The resource as it was right after the change.")
