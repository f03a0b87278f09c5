"""Request and response models of scorers, scoring runs and customers' scores."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from crm_api.core.types import CurrencyCode, JsonObject, storable
from crm_api.scoring.protocol import ScorerKind, TimeUnit

RunStatus = Literal["queued", "running", "succeeded", "failed"]


class ScorerInfo(BaseModel):
    name: str
    version: str
    kind: ScorerKind
    description: str
    config_schema: dict[str, Any] = Field(description="JSON Schema of the run's `config`.")


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scorer: str = Field(min_length=1, max_length=64, description="A name from GET /v1/scorers.")
    config: JsonObject = Field(
        default_factory=dict, description="The scorer's settings; see its `config_schema`."
    )
    observation_end: date | None = Field(
        default=None, description="Features as of the end of this day (UTC); default today."
    )
    time_unit: TimeUnit = TimeUnit.WEEKS
    currency: CurrencyCode | None = Field(
        default=None,
        description="Only purchases in this currency count; default the most used one.",
    )


class RunFilters(BaseModel):
    """Run list filters, shared by REST (as query parameters) and GraphQL."""

    scorer: Annotated[str, StringConstraints(max_length=64), AfterValidator(storable)] | None = None


class Run(BaseModel):
    id: uuid.UUID
    scorer: str
    scorer_version: str
    kind: ScorerKind
    config: dict[str, Any]
    observation_end: date
    time_unit: TimeUnit
    currency: str | None
    status: RunStatus
    progress: float = Field(description="0 to 1.")
    parameters: dict[str, Any] | None = Field(description="What the model learned.")
    diagnostics: dict[str, Any] | None = Field(description="Fit quality and counts.")
    customers_scored: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CustomerScore(BaseModel):
    customer_id: uuid.UUID
    scorer: str
    kind: ScorerKind
    run_id: uuid.UUID
    scored_at: datetime = Field(description="When the run that wrote it finished.")
    score: float | None
    label: str | None
    details: dict[str, Any]


class ChurnRisk(BaseModel):
    customer_id: uuid.UUID
    churn_probability: float = Field(description="1 - P(alive) from the latest churn run.")
    p_alive: float | None
    expected_purchases: float | None = Field(description="Within the run's horizon.")
    scorer: str
    run_id: uuid.UUID
    scored_at: datetime


class LifetimeValue(BaseModel):
    customer_id: uuid.UUID
    clv: float = Field(description="Expected value over the run's horizon, major units.")
    currency: str | None
    details: dict[str, Any]
    scorer: str
    run_id: uuid.UUID
    scored_at: datetime


class ChurnRiskChanged(BaseModel):
    """The payload of `customer.churn_risk_changed`."""

    customer_id: uuid.UUID
    scorer: str
    run_id: uuid.UUID
    churn_probability: float
    previous_probability: float | None = Field(description="From the scorer's previous run.")
    threshold: float
    at_risk: bool = Field(description="Whether the customer is now at or above the threshold.")
