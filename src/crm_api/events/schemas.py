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


class Event(BaseModel):
    id: uuid.UUID
    type: str = Field(description="What happened, `<resource>.<verb>`, e.g. `customer.created`.")
    occurred_at: datetime
    customer_id: uuid.UUID | None
    data: dict[str, Any] = Field(description="The resource as it was right after the change.")
