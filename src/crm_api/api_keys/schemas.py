"""Request and response models of API key management."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from crm_api.core.scopes import Scope
from crm_api.core.types import FutureDatetime, ShortText

MAX_GRACE_SECONDS = 7 * 24 * 3600
RATE_LIMIT_DESCRIPTION = (
    "Requests per minute this key may make (a token bucket refilled continuously); "
    "null: the server's default, `CRM_RATE_LIMIT_PER_MINUTE`."
)
RateLimit = Annotated[int | None, Field(ge=1, le=1_000_000_000, description=RATE_LIMIT_DESCRIPTION)]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_at: FutureDatetime | None = Field(default=None, description="Never expires when null.")
    rate_limit_per_minute: RateLimit = None


class ApiKeyUpdate(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    rate_limit_per_minute: RateLimit = None


class ApiKeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period_seconds: int = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the previous secret keeps working, so clients can switch over.",
    )


class ApiKey(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it by.")
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None
    previous_valid_until: datetime | None
    last_used_at: datetime | None
    rate_limit_per_minute: int | None = Field(description=RATE_LIMIT_DESCRIPTION)


class ApiKeyWithSecret(ApiKey):
    key: str = Field(description="The secret. It is shown only now; store it safely.")
