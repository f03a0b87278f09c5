"""Request and response models of the stage graph, its rules and customers' transitions."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from crm_api.core.types import bounded_text

# Every customer starts here (customers.lifecycle_stage's default), so every graph has it.
START = "prospect"

StageName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$"),
    Field(
        description="A slug: lower-case letters, digits and `_`, starting with a letter.",
        examples=["at_risk"],
    ),
]
Reason = bounded_text(2000)


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StageName
    description: bounded_text(2000) | None = None
    targets: list[StageName] = Field(
        default_factory=list,
        max_length=100,
        description="The stages a customer may move to from this one.",
    )


class StagesReplace(BaseModel):
    """The whole graph: stages in display order, each with the stages it leads to. It must
    contain `prospect` (where every customer starts), every stage must be reachable from
    it, and every stage some customer is in must stay."""

    model_config = ConfigDict(extra="forbid")

    stages: list[StageIn] = Field(min_length=1, max_length=100)


class Stage(BaseModel):
    name: str
    description: str | None
    targets: list[str] = Field(description="The stages a customer may move to from this one.")


class StageGraph(BaseModel):
    stages: list[Stage] = Field(description="In display order; `prospect` is where all start.")
    version: int = Field(description="Increments on every replacement; the ETag.")
    updated_at: datetime


class TransitionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: StageName = Field(description="The stage to move the customer to.")
    reason: Reason | None = Field(default=None, description="Why, for the history.")


class Transition(BaseModel):
    """One move of a customer from a stage to another; what `lifecycle.transitioned` carries."""

    id: uuid.UUID
    customer_id: uuid.UUID
    from_stage: str
    to_stage: str
    reason: str | None
    automatic: bool = Field(description="Made by a rule rather than by an API call.")
    rule: str | None = Field(description="The rule that made an automatic move.")
    actor_key_id: uuid.UUID | None = Field(
        description="The API key that made a manual move; null for automatic ones."
    )
    occurred_at: datetime


class CustomerStage(NamedTuple):
    """A live customer's stage and creation time, as read with the customer."""

    customer_id: uuid.UUID
    stage: str
    created_at: datetime


class CustomerLifecycle(BaseModel):
    customer_id: uuid.UUID
    stage: str
    since: datetime = Field(
        description="When the customer entered the stage (their creation, before any move)."
    )
    allowed: list[str] = Field(description="The stages the customer may move to now.")


class RuleName(StrEnum):
    FIRST_PURCHASE = "first_purchase"
    CHURN_RISK = "churn_risk"
    INACTIVITY = "inactivity"
    WIN_BACK = "win_back"


class FirstPurchaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Literal["onboarding", "active"] = Field(
        default="onboarding", description="Where a prospect's first purchase takes them."
    )


class ChurnRiskSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Churn probability from which a customer is at risk; null: the server's "
        "`churn_risk_threshold`.",
    )


class InactivitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(
        default=90, ge=1, le=3650, description="Days without an interaction from the customer."
    )


class WinBackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")


RuleSettings = FirstPurchaseSettings | ChurnRiskSettings | InactivitySettings | WinBackSettings
SETTINGS: dict[RuleName, type[RuleSettings]] = {
    RuleName.FIRST_PURCHASE: FirstPurchaseSettings,
    RuleName.CHURN_RISK: ChurnRiskSettings,
    RuleName.INACTIVITY: InactivitySettings,
    RuleName.WIN_BACK: WinBackSettings,
}


class LifecycleRule(BaseModel):
    """An automatic transition. It moves customers only along edges the graph allows."""

    name: RuleName
    description: str
    enabled: bool
    settings: dict[str, object] = Field(description="The rule's settings, defaults filled in.")
    from_stages: list[str] = Field(description="The stages it moves customers out of.")
    to_stage: str = Field(description="The stage it moves them to.")
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag.")


class RuleUpdate(BaseModel):
    """Fields left out stay as they are; `settings` are merged key by key."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    settings: dict[str, object] | None = Field(
        default=None,
        description="first_purchase: `target` (onboarding|active); churn_risk: `threshold` "
        "(0-1, null: the server's default); inactivity: `days`; win_back: none.",
    )
