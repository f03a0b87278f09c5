"""Request and response models of segments, their members and condition searches."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from crm_api.core.types import ShortText, bounded_text
from crm_api.customers.schemas import Customer
from crm_api.segments.conditions import Condition, RootCondition, ScoreCondition

DAILY = 86_400


class SegmentKind(StrEnum):
    RULE = "rule"
    MODEL = "model"
    STATIC = "static"


RefreshInterval = Annotated[
    int,
    Field(
        ge=60,
        le=366 * DAILY,
        description="Seconds between scheduled refreshes; null: refreshed on request only.",
    ),
]
Description = bounded_text(2000)


def misfit(kind: SegmentKind, condition: Condition | None) -> str | None:
    """Why ``condition`` cannot define a segment of ``kind``, or None if it can."""
    if kind is SegmentKind.STATIC:
        return None if condition is None else "a static segment has no condition"
    if condition is None:
        return f"a {kind} segment needs a condition"
    if kind is SegmentKind.MODEL and not isinstance(condition, ScoreCondition):
        return "a model segment's condition is one score condition"
    return None


class SegmentCreate(BaseModel):
    """A new segment. Rule segments take any condition, model segments one score condition
    (a scorer's label or score band), static segments none: their members are added and
    removed by id."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText = Field(description="Unique, case-insensitively.")
    description: Description | None = None
    kind: SegmentKind = SegmentKind.RULE
    condition: RootCondition | None = Field(default=None, validate_default=True)
    refresh_interval: RefreshInterval | None = Field(
        default=None,
        description="Seconds between scheduled refreshes; daily when left out (rule and model "
        "segments); null: refreshed on request only. Static segments take none.",
    )

    @field_validator("condition")
    @classmethod
    def _fits_kind(cls, condition: Condition | None, info: ValidationInfo) -> Condition | None:
        reason = misfit(info.data["kind"], condition) if "kind" in info.data else None
        if reason:
            raise ValueError(reason)
        return condition

    @field_validator("refresh_interval")
    @classmethod
    def _not_static(cls, interval: int | None, info: ValidationInfo) -> int | None:
        if interval is not None and info.data.get("kind") is SegmentKind.STATIC:
            raise ValueError("a static segment is never refreshed; leave it out")
        return interval

    @model_validator(mode="after")
    def _daily_by_default(self) -> Self:
        if self.kind is not SegmentKind.STATIC and "refresh_interval" not in self.model_fields_set:
            self.refresh_interval = DAILY
        return self


class SegmentUpdate(BaseModel):
    """Fields left out stay as they are; `null` clears the description or the schedule.
    A changed condition is refreshed at once by the schedule (if the segment has one)."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    description: Description | None = None
    condition: RootCondition | None = None
    refresh_interval: RefreshInterval | None = None


class Segment(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    kind: SegmentKind
    condition: Condition | None
    refresh_interval: int | None = Field(description="Seconds between scheduled refreshes.")
    refreshed_at: datetime | None = Field(description="When membership was last computed.")
    next_refresh_at: datetime | None = Field(description="When the schedule refreshes it next.")
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag.")
    redacted_fields: list[str] = Field(
        default_factory=list,
        description="Values compared with personal fields, withheld because the API key "
        "lacks `pii:read`.",
    )


class SegmentCount(BaseModel):
    members: int = Field(description="Live customers in the segment as last refreshed.")
    refreshed_at: datetime | None


class RefreshReport(BaseModel):
    entered: int
    exited: int
    members: int
    refreshed_at: datetime


class ConditionSearch(BaseModel):
    """Customers matching a condition tree (see the segments API)."""

    model_config = ConfigDict(extra="forbid")

    condition: RootCondition


class PreviewRequest(ConditionSearch):
    sample: int = Field(default=10, ge=0, le=50, description="How many matches to show.")


class Preview(BaseModel):
    count: int = Field(description="Live customers matching now.")
    sample: list[Customer] = Field(description="The newest of them.")


class MembersAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=1000, description="Live customers; members already are kept."
    )


class MembersAdded(BaseModel):
    added: int = Field(description="Customers who were not members before.")
    members: int


class MembershipStay(BaseModel):
    """One stay of a customer in a segment."""

    customer_id: uuid.UUID
    entered_at: datetime
    exited_at: datetime | None = Field(description="Null while the customer is a member.")


class MembershipChange(BaseModel):
    """What `segment.entered` and `segment.exited` carry."""

    segment_id: uuid.UUID
    segment_name: str = Field(description="The segment's name at the time.")
    customer_id: uuid.UUID


class CustomerSegment(BaseModel):
    segment: Segment
    entered_at: datetime
