"""Request and response models of the customers resource."""

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from crm_api.core.channels import Channel
from crm_api.core.email import Email
from crm_api.core.types import (
    CountryCode,
    CurrencyCode,
    Identifier,
    JsonObject,
    Label,
    MinorUnits,
    ShortText,
    Timestamp,
    bounded_text,
)


class CustomerKind(StrEnum):
    CONSUMER = "consumer"
    INDUSTRIAL = "industrial"
    INSTITUTIONAL = "institutional"
    GOVERNMENT = "government"


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    NON_BINARY = "non_binary"
    OTHER = "other"
    UNDISCLOSED = "undisclosed"


Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\+[1-9][0-9]{6,14}$"),
    Field(description="E.164 phone number.", examples=["+4930123456"]),
]
ExternalId = Annotated[
    Identifier,
    Field(
        description="The partner's own identifier for this customer; unique among live customers."
    ),
]
Labels = Annotated[list[Label], Field(max_length=50)]
EARLIEST_BIRTH_DATE = date(1900, 1, 1)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(Strict):
    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    region: ShortText | None = None
    postal_code: Label | None = None
    country: CountryCode | None = None


class Consent(Strict):
    granted: bool
    at: Timestamp | None = Field(
        default=None, description="When consent was given or withdrawn; defaults to now."
    )
    source: ShortText | None = Field(
        default=None, description="Where it was captured, e.g. `signup-form`."
    )

    @model_validator(mode="after")
    def _default_time(self) -> Self:
        if self.at is None:
            self.at = datetime.now(UTC)
        return self


class Acquisition(Strict):
    source: ShortText | None = None
    channel: Label | None = None
    campaign: ShortText | None = None
    cost: MinorUnits | None = None
    currency: CurrencyCode | None = None

    @model_validator(mode="after")
    def _money_has_currency(self) -> Self:
        if (self.cost is None) != (self.currency is None):
            raise ValueError("cost and currency go together")
        return self


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_birth_date(value: date | None) -> date | None:
    if value is not None and not EARLIEST_BIRTH_DATE <= value <= date.today():
        raise ValueError(f"must be between {EARLIEST_BIRTH_DATE} and today")
    return value


def _unique_or_none(values: list[str] | None) -> list[str] | None:
    return None if values is None else _unique(values)


class _CustomerScalars(Strict):
    """The optional single-valued fields, alike in a full customer and in a patch."""

    external_id: ExternalId | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    industry: Label | None = None
    birth_date: date | None = None
    gender: Gender | None = None
    income_band: Label | None = None
    education: Label | None = None
    occupation: Label | None = None
    lifestyle: Label | None = None
    preferred_channel: Channel | None = None
    acquisition: Acquisition | None = None

    _birth_date = field_validator("birth_date")(_check_birth_date)


class CustomerCreate(_CustomerScalars):
    """A customer as a client writes it. On PUT and import, fields left out are reset."""

    kind: CustomerKind = CustomerKind.CONSUMER
    company_name: ShortText | None = Field(
        default=None,
        validate_default=True,
        description="Required for industrial, institutional and government customers.",
    )
    address: Address | None = None
    interests: Labels = Field(default_factory=list)
    values: Labels = Field(default_factory=list)
    consents: dict[Channel, Consent] = Field(default_factory=dict)
    tags: Labels = Field(default_factory=list)
    attributes: JsonObject = Field(default_factory=dict)

    _unique_lists = field_validator("interests", "values", "tags")(_unique)

    @field_validator("company_name")
    @classmethod
    def _organisations_have_names(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if kind is not None and kind != CustomerKind.CONSUMER and not value:
            raise ValueError(f"is required for {kind} customers")
        return value


class CustomerUpdate(_CustomerScalars):
    """A JSON merge patch (RFC 7396): fields sent replace, `null` clears, omitted are kept.

    `address` and `attributes` merge key by key; `consents` merge per channel
    (a channel set to `null` is removed).
    """

    kind: CustomerKind | SkipJsonSchema[None] = None  # may be left out, never null
    company_name: ShortText | None = None
    address: Address | None = None
    interests: Labels | None = None
    values: Labels | None = None
    consents: dict[Channel, Consent | None] | None = None
    tags: Labels | None = None
    attributes: JsonObject | None = None

    _unique_lists = field_validator("interests", "values", "tags")(_unique_or_none)

    @model_validator(mode="after")
    def _kind_not_null(self) -> Self:
        if "kind" in self.model_fields_set and self.kind is None:
            raise ValueError("kind cannot be null")
        return self


class Customer(BaseModel):
    id: uuid.UUID
    external_id: str | None
    kind: CustomerKind
    first_name: str | None
    last_name: str | None
    company_name: str | None
    email: str | None
    phone: str | None
    industry: str | None
    birth_date: date | None
    gender: Gender | None
    income_band: str | None
    education: str | None
    occupation: str | None
    address: Address | None
    interests: list[str]
    values: list[str]
    lifestyle: str | None
    preferred_channel: Channel | None
    consents: dict[Channel, Consent]
    tags: list[str]
    attributes: dict[str, Any]
    acquisition: Acquisition | None
    lifecycle_stage: str = Field(
        description="Read-only here; changed through lifecycle transitions."
    )
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag.")
    erased_at: datetime | None = Field(description="Set once personal data has been erased.")
    redacted_fields: list[str] = Field(
        default_factory=list,
        description="Personal fields withheld because the API key lacks `pii:read`.",
    )


CustomerSort = Literal["created_at", "-created_at", "updated_at", "-updated_at"]


class CustomerFilters(BaseModel):
    """List filters, shared by REST (as query parameters) and GraphQL (as an input)."""

    model_config = ConfigDict(populate_by_name=True)

    email: bounded_text(320, 1) | None = Field(
        default=None, description="Exact match, case-insensitive. Needs `pii:read`."
    )
    external_id: Identifier | None = None
    kind: CustomerKind | None = None
    tags: list[bounded_text(64, 1)] = Field(
        default_factory=list,
        alias="tag",
        max_length=20,
        description="Customers carrying every tag given (repeatable).",
    )
    lifecycle_stage: bounded_text(64, 1) | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2."
    )
    created_after: Timestamp | None = Field(default=None, description="Inclusive.")
    created_before: Timestamp | None = Field(default=None, description="Exclusive.")
    q: bounded_text(100, 1) | None = Field(
        default=None,
        description=(
            "Prefix search over email, first name, last name and company name; "
            "without `pii:read`, over company name only."
        ),
    )
