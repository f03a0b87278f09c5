"""RFM segmentation: recency, frequency and monetary quintile scores (1-5, 5 best) and
the customer's named segment on the R x F grid.

R ranks the time since the last purchase (shorter is better), F the purchase days, M the
total spend, over the purchasers. Quintiles go by rank, and equal values share the score
of the lowest rank they hold, so ties never split across scores: with heavy ties (most
customers buy once) some scores stay empty rather than separating equal customers.
"""

import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from crm_api.scoring.plugins import purchasers
from crm_api.scoring.protocol import Features, Fitted, ScorerKind, Scores

# The widely used R x F segment map: "<R><F>" patterns, each cell in exactly one.
SEGMENTS: dict[str, str] = {
    r"[1-2][1-2]": "Hibernating",
    r"[1-2][3-4]": "At Risk",
    r"[1-2]5": "Can't Lose Them",
    r"3[1-2]": "About to Sleep",
    r"33": "Need Attention",
    r"[3-4][4-5]": "Loyal",
    r"41": "Promising",
    r"51": "New Customers",
    r"[4-5][2-3]": "Potential Loyalists",
    r"5[4-5]": "Champions",
}


def segment(r: int, f: int) -> str:
    return next(name for pattern, name in SEGMENTS.items() if re.fullmatch(pattern, f"{r}{f}"))


# [r - 1][f - 1] -> segment name
_GRID = np.array([[segment(r, f) for f in range(1, 6)] for r in range(1, 6)], dtype=object)


@dataclass(frozen=True)
class Quintiles:
    """Four cut points: a value's score is 1 + the number of cuts strictly below it, which
    on the fitted values is quintile-by-rank with ties at their lowest rank."""

    cuts: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray) -> "Quintiles":
        n = len(values)
        if n == 0:
            return cls(np.empty(0))
        # the cut for scores above k is the value at rank ceil(k * n / 5)
        ranks = np.ceil(np.arange(1, 5) * n / 5).astype(np.intp)
        return cls(np.sort(values)[ranks - 1])

    def score(self, values: np.ndarray) -> np.ndarray:
        return 1 + np.searchsorted(self.cuts, values, side="left")


class RFMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class _Dimensions:
    # R is fitted on the negated time since the last purchase: shorter scores higher.
    recency: Quintiles
    frequency: Quintiles
    monetary: Quintiles


def _values(features: Features, who: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        -purchasers.time_since_last_purchase(features)[who],
        np.asarray(features.purchases, dtype=float)[who],
        np.asarray(features.total_spend, dtype=float)[who],
    )


class RFM:
    """RFM segments: recency, frequency and monetary quintile scores (1-5, 5 best) and the
    named R x F segment, from Champions to Hibernating.

    Customers without a purchase are not scored.
    """

    name: ClassVar[str] = "rfm"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[ScorerKind] = ScorerKind.SEGMENTATION
    Config: ClassVar[type[BaseModel]] = RFMConfig

    def __init__(self, config: RFMConfig) -> None:
        self.config = config
        self.dimensions: _Dimensions | None = None

    def fit(self, features: Features) -> Fitted:
        recency, frequency, monetary = _values(features, purchasers.mask(features))
        self.dimensions = _Dimensions(
            Quintiles.fit(recency), Quintiles.fit(frequency), Quintiles.fit(monetary)
        )
        return Fitted(
            parameters={
                "time_since_last_purchase_cuts": (-self.dimensions.recency.cuts).tolist(),
                "purchases_cuts": self.dimensions.frequency.cuts.tolist(),
                "total_spend_cuts": self.dimensions.monetary.cuts.tolist(),
            },
            diagnostics={"customers": len(recency)},
        )

    def score(self, features: Features) -> Scores:
        if self.dimensions is None:
            raise RuntimeError("score() needs fit() first.")
        who = purchasers.mask(features)
        recency, frequency, monetary = _values(features, who)
        r = self.dimensions.recency.score(recency)
        f = self.dimensions.frequency.score(frequency)
        m = self.dimensions.monetary.score(monetary)
        return Scores(
            score=purchasers.spread(who, r * 100 + f * 10 + m),
            labels=purchasers.labels(who, _GRID[r - 1, f - 1].tolist()),
            details=purchasers.details(who, r=r, f=f, m=m),
        )
