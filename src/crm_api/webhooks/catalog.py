"""What each event type delivers, for the OpenAPI document's ``webhooks`` section."""

import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from crm_api.campaigns.schemas import Campaign
from crm_api.customers.schemas import Customer
from crm_api.events.schemas import EventType
from crm_api.interactions.schemas import Interaction
from crm_api.lifecycle.schemas import Transition
from crm_api.loyalty.schemas import Entry, RewardRedemption, TierChange
from crm_api.scoring.schemas import ChurnRiskChanged, Run
from crm_api.segments.schemas import MembershipChange, Segment
from crm_api.webhooks.schemas import WebhookEndpoint, WebhookMessage


class WebhookTest(BaseModel):
    endpoint_id: uuid.UUID
    message: str


PAYLOADS: dict[EventType, type[BaseModel]] = {
    EventType.CUSTOMER_CREATED: Customer,
    EventType.CUSTOMER_UPDATED: Customer,
    EventType.CUSTOMER_DELETED: Customer,
    EventType.CUSTOMER_ERASED: Customer,
    EventType.INTERACTION_CREATED: Interaction,
    EventType.FEEDBACK_NEGATIVE: Interaction,
    EventType.SEGMENT_CREATED: Segment,
    EventType.SEGMENT_UPDATED: Segment,
    EventType.SEGMENT_DELETED: Segment,
    EventType.SEGMENT_ENTERED: MembershipChange,
    EventType.SEGMENT_EXITED: MembershipChange,
    EventType.WEBHOOK_ENDPOINT_CREATED: WebhookEndpoint,
    EventType.WEBHOOK_ENDPOINT_UPDATED: WebhookEndpoint,
    EventType.WEBHOOK_ENDPOINT_DELETED: WebhookEndpoint,
    EventType.WEBHOOK_ENDPOINT_DISABLED: WebhookEndpoint,
    EventType.WEBHOOK_TEST: WebhookTest,
    EventType.SCORING_RUN_COMPLETED: Run,
    EventType.CUSTOMER_CHURN_RISK_CHANGED: ChurnRiskChanged,
    EventType.LIFECYCLE_TRANSITIONED: Transition,
    EventType.LOYALTY_POINTS_EARNED: Entry,
    EventType.LOYALTY_POINTS_REDEEMED: Entry,
    EventType.LOYALTY_POINTS_EXPIRED: Entry,
    EventType.LOYALTY_POINTS_ADJUSTED: Entry,
    EventType.LOYALTY_POINTS_REVERSED: Entry,
    EventType.LOYALTY_TIER_CHANGED: TierChange,
    EventType.LOYALTY_REWARD_REDEEMED: RewardRedemption,
    EventType.CAMPAIGN_CREATED: Campaign,
    EventType.CAMPAIGN_UPDATED: Campaign,
    EventType.CAMPAIGN_DELETED: Campaign,
}

DELIVERY_HEADERS = """
Every delivery is a `POST` with a JSON body `{"type", "timestamp", "data"}`, signed as
[Standard Webhooks](https://www.standardwebhooks.com/) describes:

- `webhook-id`: the delivery's id, the same on every attempt: use it to drop duplicates;
- `webhook-timestamp`: seconds since the epoch when this attempt was signed;
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with
  the endpoint's secret (base64 after `whsec_`); two space-separated signatures while a
  rotated-out secret is in its grace period.

Answer 2xx within the time limit. Other answers and timeouts are retried on a schedule
(about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h); `Retry-After` on 429 and 503
is honoured; 410 Gone disables the endpoint. Customer payloads are redacted unless the
endpoint was created by a key holding `pii:read`.
"""


def document(app: FastAPI) -> None:
    for event_type, payload in PAYLOADS.items():
        app.webhooks.add_api_route(
            str(event_type),
            _receiver(payload),
            methods=["POST"],
            name=f"webhook_{event_type.replace('.', '_')}",
            summary=f"`{event_type}`",
            description=DELIVERY_HEADERS,
        )


def _receiver(payload: type[BaseModel]) -> Any:
    message = WebhookMessage[payload]  # type: ignore[valid-type]

    async def receive(body: message) -> None:  # type: ignore[valid-type]
        """Documentation only: what a subscriber's URL receives."""

    return receive
