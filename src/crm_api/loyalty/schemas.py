"""Request and response models of loyalty programmes, rewards, accounts and the ledger."""

import itertools
import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from crm_api.core.types import CurrencyCode, Label, MinorUnits, ShortText, bounded_text

Description = bounded_text(2000)
Reason = bounded_text(500, min_length=1)
Reference = bounded_text(200, min_length=1)
MAX_POINTS = 10**12
Points = Annotated[int, Field(ge=1, le=MAX_POINTS)]
# Exact decimals in, JSON numbers out (a rate of 2.5 is shown as 2.5, not "2.5").
Rate = Annotated[
    Decimal,
    Field(gt=0, le=1_000_000, max_digits=16, decimal_places=6),
    PlainSerializer(float, return_type=float, when_used="json"),
]


class Rounding(StrEnum):
    FLOOR = "floor"
    NEAREST = "nearest"  # half up
    CEIL = "ceil"


class Downgrade(StrEnum):
    NEVER = "never"
    REEVALUATE = "reevaluate"


class EntryKind(StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    EXPIRE = "expire"
    ADJUST = "adjust"
    REVERSE = "reverse"


class Tier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Label
    threshold: int = Field(
        ge=0, le=MAX_POINTS, description="Qualifying points earned in the window to reach it."
    )
    multiplier: Rate = Field(
        default=Decimal(1), description="Applied to points earned from purchase amounts."
    )


def tier_problem(tiers: list[Tier]) -> str | None:
    """Why a tier list is unusable, or None."""
    names = [t.name.casefold() for t in tiers]
    if len(set(names)) != len(names):
        return "tier names must be unique"
    if any(a.threshold >= b.threshold for a, b in itertools.pairwise(tiers)):
        return "thresholds must be strictly increasing"
    return None


def downgrade_problem(downgrade: Downgrade, every_days: int | None) -> str | None:
    if (downgrade is Downgrade.REEVALUATE) != (every_days is not None):
        return "is required with downgrade `reevaluate` and refused otherwise"
    return None


Tiers = Annotated[list[Tier], Field(max_length=20)]
Days = Annotated[int, Field(ge=1, le=36_600)]


class ProgramCreate(BaseModel):
    """A loyalty programme: how points are earned, when they lock and expire, its tiers."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText = Field(description="Unique, case-insensitively.")
    description: Description | None = None
    currency: CurrencyCode = Field(description="Purchases in this currency earn points.")
    points_per_unit: Rate = Field(description="Points per major unit (1 EUR), e.g. 1, 2.5, 0.1.")
    rounding: Rounding = Rounding.FLOOR
    auto_earn: bool = Field(
        default=False,
        description="Purchase interactions in the currency earn points by themselves "
        "(enrolling the customer), and refunds naming them (`refund_of`) take them back.",
    )
    expiry_days: Days | None = Field(
        default=None, description="Points expire this many days after earning; null: never."
    )
    lock_days: int = Field(
        default=0, ge=0, le=3660, description="Earned points are pending this many days."
    )
    tiers: Tiers = Field(default_factory=list, description="Ordered by increasing threshold.")
    tier_window_days: Days = Field(
        default=365, description="Tiers qualify on points earned in this rolling window."
    )
    downgrade: Downgrade = Field(
        default=Downgrade.NEVER,
        description="`never`: tiers only go up; `reevaluate`: re-computed every "
        "`downgrade_every_days` (down or up).",
    )
    downgrade_every_days: Days | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if problem := tier_problem(self.tiers):
            raise ValueError(problem)
        if problem := downgrade_problem(self.downgrade, self.downgrade_every_days):
            raise ValueError(f"downgrade_every_days {problem}")
        return self


class ProgramUpdate(BaseModel):
    """Fields left out stay as they are. New rules apply from now on; the currency is fixed
    once the programme has accounts."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    description: Description | None = None
    currency: CurrencyCode | None = None
    points_per_unit: Rate | None = None
    rounding: Rounding | None = None
    auto_earn: bool | None = None
    expiry_days: Days | None = None
    lock_days: int | None = Field(default=None, ge=0, le=3660)
    tiers: Tiers | None = None
    tier_window_days: Days | None = None
    downgrade: Downgrade | None = None
    downgrade_every_days: Days | None = None


class Program(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    currency: str
    points_per_unit: Rate
    rounding: Rounding
    auto_earn: bool
    expiry_days: int | None
    lock_days: int
    tiers: list[Tier]
    tier_window_days: int
    downgrade: Downgrade
    downgrade_every_days: int | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Increments on every change; the ETag.")


class RewardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    description: Description | None = None
    cost: Points = Field(description="Points per unit.")
    stock: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Units left; null: unlimited."
    )
    active: bool = True


class RewardUpdate(BaseModel):
    """Fields left out stay as they are. `stock` sets the stock (null: unlimited);
    `add_stock` tops it up relative to what is left, safe against concurrent redemptions."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    description: Description | None = None
    cost: Points | None = None
    stock: int | None = Field(default=None, ge=0, le=2**31 - 1)
    add_stock: int | None = Field(default=None, ge=1, le=2**31 - 1)
    active: bool | None = None

    @model_validator(mode="after")
    def _one_stock_change(self) -> Self:
        if "stock" in self.model_fields_set and self.add_stock is not None:
            raise ValueError("give stock or add_stock, not both")
        return self


class Reward(BaseModel):
    id: uuid.UUID
    program_id: uuid.UUID
    name: str
    description: str | None
    cost: int
    stock: int | None
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


class Enrolment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: uuid.UUID
    program_id: uuid.UUID


class NextTier(BaseModel):
    name: str
    threshold: int
    qualifying_points: int = Field(description="Earned in the programme's window.")
    points_needed: int


class Account(BaseModel):
    id: uuid.UUID
    customer_id: uuid.UUID
    program_id: uuid.UUID
    balance: int = Field(description="The ledger's sum: available + locked (+ due to expire).")
    available: int = Field(description="Spendable now.")
    locked: int = Field(description="Earned but still in the programme's lock period.")
    lifetime_earned: int
    tier: str | None
    tier_since: datetime | None
    qualifying_points: int = Field(description="Points earned in the tier window.")
    next_tier: NextTier | None = Field(description="Null at the top tier or without tiers.")
    created_at: datetime
    updated_at: datetime
    version: int


class Entry(BaseModel):
    """One line of the ledger; entries are never changed or removed."""

    id: uuid.UUID
    account_id: uuid.UUID
    customer_id: uuid.UUID
    program_id: uuid.UUID
    seq: int = Field(description="1, 2, 3... per account: the ledger's order.")
    kind: EntryKind
    points: int = Field(description="Signed: credits > 0, debits < 0.")
    balance_after: int
    qualifying_points: int = Field(description="What counts towards tiers.")
    reference: str | None
    reason: str | None
    reward_id: uuid.UUID | None
    reward_quantity: int | None
    reverses_id: uuid.UUID | None = Field(description="The entry this one reverses.")
    interaction_id: uuid.UUID | None = Field(description="The purchase or refund behind it.")
    amount: int | None = Field(description="The purchase amount it was earned on (minor units).")
    currency: str | None
    multiplier: Rate | None = Field(description="The tier multiplier applied.")
    uncovered_points: int | None = Field(
        description="A refund's reversal: points it could not take back (already spent)."
    )
    actor_key_id: uuid.UUID | None = Field(description="The API key; null for system jobs.")
    idempotency_key: str | None
    occurred_at: datetime


class EarnRequest(BaseModel):
    """Exactly one of `points` (exact, no multiplier) or `amount` + `currency` (converted by
    the programme's rate, rounding and the account's tier multiplier)."""

    model_config = ConfigDict(extra="forbid")

    points: Points | None = None
    amount: MinorUnits | None = None
    currency: CurrencyCode | None = None
    reference: Reference | None = Field(default=None, description="Order id or similar.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.points is None) == (self.amount is None):
            raise ValueError("give either points or amount (with currency)")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency go together")
        return self


class RedeemRequest(BaseModel):
    """Exactly one of `points` or `reward_id` (+ `quantity`: points = cost x quantity)."""

    model_config = ConfigDict(extra="forbid")

    points: Points | None = None
    reward_id: uuid.UUID | None = None
    quantity: int = Field(default=1, ge=1, le=10_000)
    reference: Reference | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        if (self.points is None) == (self.reward_id is None):
            raise ValueError("give either points or reward_id")
        if self.points is not None and "quantity" in self.model_fields_set:
            raise ValueError("quantity goes with reward_id")
        return self


class AdjustRequest(BaseModel):
    """A correction: positive points are available at once (and expire per the programme),
    negative ones are taken from the oldest available lots."""

    model_config = ConfigDict(extra="forbid")

    points: int = Field(ge=-MAX_POINTS, le=MAX_POINTS, description="Signed, not zero.")
    reason: Reason
    reference: Reference | None = None

    @model_validator(mode="after")
    def _not_zero(self) -> Self:
        if self.points == 0:
            raise ValueError("points must not be zero")
        return self


class ReverseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason
    points: Points | None = Field(
        default=None, description="A partial reversal; default: all not yet reversed."
    )
    reference: Reference | None = None


class TierChange(BaseModel):
    """What `loyalty.tier_changed` carries."""

    account_id: uuid.UUID
    customer_id: uuid.UUID
    program_id: uuid.UUID
    from_tier: str | None
    to_tier: str | None
    qualifying_points: int


class RewardRedemption(BaseModel):
    """What `loyalty.reward_redeemed` carries."""

    entry_id: uuid.UUID
    account_id: uuid.UUID
    customer_id: uuid.UUID
    reward_id: uuid.UUID
    reward_name: str
    quantity: int
    points: int
    stock_left: int | None
