"""What a scorer is: a named, versioned model that fits on per-customer feature arrays
and scores every customer. Third parties add one by installing a package that declares it
in the ``crm_api.scorers`` entry-point group; the built-ins register the same way.

A scorer class is instantiated per run with its validated config, so no state outlives a
run and nothing is shared between concurrent runs.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel


class ScorerKind(StrEnum):
    CHURN = "churn"  # score: probability the customer has left (0-1)
    CLV = "clv"  # score: expected value over a horizon, in major currency units
    SEGMENTATION = "segmentation"  # label: the customer's segment (score optional)


class TimeUnit(StrEnum):
    DAYS = "days"
    WEEKS = "weeks"


@dataclass(frozen=True)
class Features:
    """Per-customer features as of ``observation_end``, one array element per customer,
    all arrays aligned with ``customer_ids``. Durations are in ``time_unit``s (fractional),
    money in major units of ``currency``. Computed by one SQL query (``features.py``).

    Purchase-based features follow Fader, Hardie & Lee: purchases are counted on distinct
    days; ``frequency`` is the number of repeat purchase days (days with a purchase after
    the first one), ``recency`` the time from the first to the last purchase day, ``T`` the
    time from the first purchase day to ``observation_end``, ``monetary`` the mean spend of
    the repeat purchase days (0 without repeats). Customers without a purchase have
    frequency 0, recency 0 and T 0.

    Precisely (these reproduce their published CDNOW summary for every customer): a
    purchase day is a UTC calendar date with at least one purchase, its spend the sum of
    that date's amounts (zero amounts included); purchases on ``observation_end``'s own
    date count; ``recency`` and ``T`` are whole-day differences between those dates,
    converted to the unit (weeks = days / 7), so they are multiples of 1/7 week.
    """

    customer_ids: np.ndarray  # of uuid.UUID
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary: np.ndarray
    purchases: np.ndarray  # purchase days in all, the first included
    total_spend: np.ndarray
    days_since_last_activity: np.ndarray  # any interaction; nan if none
    interactions: np.ndarray  # interactions of any type
    nps_mean: np.ndarray  # nan if no NPS answer
    csat_mean: np.ndarray  # nan if no CSAT answer
    time_unit: TimeUnit
    currency: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # counts by channel and type

    def __len__(self) -> int:
        return len(self.customer_ids)


@dataclass(frozen=True)
class Fitted:
    """What fitting learned: JSON-serialisable parameters and diagnostics for the run."""

    parameters: dict[str, Any]
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scores:
    """One entry per customer, aligned with ``Features.customer_ids``. ``score`` is nan and
    ``labels`` None where a customer cannot be scored; ``details`` are JSON-serialisable
    per-customer extras (e.g. p_alive and expected purchases)."""

    score: np.ndarray
    labels: list[str | None] | None = None
    details: list[dict[str, Any]] | None = None


@runtime_checkable
class Scorer(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[ScorerKind]
    Config: ClassVar[type[BaseModel]]  # its settings, with defaults; served as JSON schema

    def __init__(self, config: BaseModel) -> None: ...

    def fit(self, features: Features) -> Fitted: ...

    def score(self, features: Features) -> Scores: ...
