"""Request and response models of webhook endpoints and their deliveries."""

import re
import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from crm_api.core.types import Label, PastDatetime, ShortText, Timestamp
from crm_api.events.schemas import EventType

_PATTERN = re.compile(r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$")


def _known(pattern: str) -> str:
    if not _PATTERN.match(pattern):
        raise ValueError("must be `*`, `<resource>.*` or an event type such as `customer.created`")
    prefix = pattern.removesuffix("*")
    if pattern != "*" and not any(
        t == pattern or (pattern.endswith("*") and t.startswith(prefix)) for t in EventType
    ):
        raise ValueError(f"matches no event type; known: {', '.join(sorted(EventType))}")
    return pattern


EventTypePattern = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known)]


def _unique(patterns: list[str]) -> list[str]:
    return list(dict.fromkeys(patterns))


EventTypes = Annotated[
    list[EventTypePattern],
    Field(
        min_length=1,
        max_length=50,
        description="Event types to receive; `customer.*` for a resource's, `*` for all.",
    ),
    AfterValidator(_unique),
]
WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, strip_whitespace=True),
    Field(
        description="Where deliveries are POSTed; `http` or `https`. Redirects are not followed."
    ),
]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    description: ShortText | None = None
    event_types: EventTypes = Field(default_factory=lambda: ["*"])
    enabled: bool = True


class WebhookEndpointUpdate(BaseModel):
    """Fields left out stay as they are. Enabling an endpoint clears its failure run."""

    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    description: ShortText | None = None
    event_types: EventTypes | None = None
    enabled: bool | None = None


class WebhookEndpoint(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(description="Why the service disabled it, if it did.")
    receives_pii: bool = Field(
        description="Whether payloads keep personal fields: only if a key with `pii:read` "
        "created it."
    )
    consecutive_failures: int
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the rotated-out secret still signs alongside the new one."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64). Shown only now; store it safely."
    )


DeliveryStatus = Literal["pending", "sending", "succeeded", "failed"]


class WebhookAttempt(BaseModel):
    id: uuid.UUID
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null when none came.")
    duration_ms: int
    response_body: str | None = Field(description="The start of the receiver's answer.")
    error: str | None


class WebhookDelivery(BaseModel):
    id: uuid.UUID = Field(description="Also the `webhook-id` header, the same on every attempt.")
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(
        description="Pending: when the next attempt is due. Sending: when an attempt that "
        "has not reported back by then is given up and retried."
    )
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class WebhookDeliveryDetail(WebhookDelivery):
    attempt_log: list[WebhookAttempt] = Field(description="Every attempt, oldest first.")


class DeliveryFilters(BaseModel):
    """Delivery list filters, shared by REST (as query parameters) and GraphQL."""

    status: DeliveryStatus | None = None
    event_type: Label | None = None
    since: Timestamp | None = Field(default=None, description="Created at or after.")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: PastDatetime = Field(description="Redeliver every matching event from this time on.")
    until: Timestamp | None = Field(default=None, description="... up to this time (default: now).")


class ReplayReport(BaseModel):
    scheduled: int = Field(description="Deliveries queued by this replay.")


T = TypeVar("T")


class WebhookMessage(BaseModel, Generic[T]):
    """What a receiver gets: the body every delivery POSTs."""

    type: str = Field(description="The event type.")
    timestamp: datetime = Field(description="When the event occurred.")
    data: T
