"""Request and response models of the interaction timeline."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_api.core.channels import Channel
from crm_api.core.types import (
    CurrencyCode,
    Identifier,
    JsonObject,
    Label,
    LongText,
    MinorUnits,
    PastDatetime,
    ShortText,
)


class InteractionType(StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"
    EMAIL = "email"
    CALL = "call"
    SMS = "sms"
    CHAT = "chat"
    SOCIAL = "social"
    VISIT = "visit"
    WEB = "web"
    APP = "app"
    SUPPORT = "support"
    FEEDBACK = "feedback"
    NOTE = "note"


MONETARY_TYPES = frozenset({InteractionType.PURCHASE, InteractionType.REFUND})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Label
    name: ShortText | None = None
    category: Label | None = None
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: MinorUnits = Field(description="Price of one unit in the interaction's currency.")
    unit_cost: MinorUnits | None = Field(
        default=None,
        description="What one unit cost (cost of goods), in the interaction's currency; "
        "left out when not known, which lowers profitability's cost coverage.",
    )


ExternalId = Annotated[
    Identifier,
    Field(
        description="The source system's id (an order number, a ticket id); unique per customer."
    ),
]


class InteractionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: uuid.UUID
    type: InteractionType
    external_id: ExternalId | None = None
    channel: Channel | None = None
    direction: Direction | None = None
    occurred_at: PastDatetime | None = Field(default=None, description="Defaults to now.")
    subject: ShortText | None = None
    body: LongText | None = None
    campaign: Label | None = None
    metadata: JsonObject = Field(default_factory=dict)
    amount: MinorUnits | None = Field(
        default=None, description="Purchases and refunds: the total, in minor units."
    )
    currency: CurrencyCode | None = Field(
        default=None,
        description="Of `amount` and `service_cost`: purchases and refunds need it; other "
        "interactions carry it only together with a service_cost.",
    )
    service_cost: MinorUnits | None = Field(
        default=None,
        description="What serving the customer through this interaction cost (a support "
        "call, a visit), in minor units of `currency`.",
    )
    items: list[LineItem] = Field(default_factory=list, max_length=500)
    nps: int | None = Field(
        default=None, ge=0, le=10, description="Feedback: Net Promoter Score answer."
    )
    csat: int | None = Field(default=None, ge=1, le=5, description="Feedback: satisfaction rating.")
    refund_of: uuid.UUID | None = Field(
        default=None,
        description="Refunds: the id of the purchase refunded (the same customer's, in the same "
        "currency), so loyalty programmes take back the points it earned.",
    )

    @model_validator(mode="after")
    def _fits_its_type(self) -> Self:
        monetary = self.type in MONETARY_TYPES
        if monetary and (self.amount is None or self.currency is None):
            raise ValueError(f"a {self.type} needs amount and currency")
        if not monetary and (self.amount is not None or self.items):
            raise ValueError("only purchases and refunds carry amount and items")
        if self.service_cost is not None and self.currency is None:
            raise ValueError("a service_cost needs currency")
        if not monetary and self.currency is not None and self.service_cost is None:
            raise ValueError(
                "only purchases, refunds and interactions with a service_cost carry currency"
            )
        if self.type != InteractionType.FEEDBACK and (
            self.nps is not None or self.csat is not None
        ):
            raise ValueError("only feedback carries nps and csat")
        if self.type != InteractionType.REFUND and self.refund_of is not None:
            raise ValueError("only refunds carry refund_of")
        return self


class Interaction(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    type: InteractionType
    external_id: str | None
    channel: Channel | None
    direction: Direction | None
    occurred_at: datetime
    recorded_at: datetime
    subject: str | None
    body: str | None
    campaign: str | None
    metadata: dict[str, Any]
    amount: int | None
    currency: str | None
    service_cost: int | None = Field(
        description="What serving the customer through this interaction cost, in `currency`."
    )
    items: list[LineItem]
    nps: int | None
    csat: int | None
    refund_of: uuid.UUID | None = Field(description="Refunds: the purchase refunded.")
    sentiment: float | None = Field(
        description="Feedback and support with a subject or body: VADER's compound score of "
        "that text (its first 1,000 characters), from -1 (most negative) to 1 (most "
        "positive); null for other interactions."
    )


class InteractionFilters(BaseModel):
    customer_id: uuid.UUID | None = None
    types: list[InteractionType] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
