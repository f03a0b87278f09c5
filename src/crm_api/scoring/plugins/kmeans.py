"""k-means segmentation of purchasers on standardised log-RFM features: time since the last
purchase, purchase days and total spend, each as log(1 + v) then z-scored.

k-means++ seeding from the configured seed, the best of ``restarts`` runs of Lloyd's
algorithm (lowest within-cluster sum of squares; on large sets the runs compete on a
sample and the winner is refined on everyone). Clusters are numbered by descending mean
total spend, ``cluster-1`` spending most, so a label means the same in every run.
"""

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.cluster.vq import vq

from crm_api.scoring.plugins import purchasers
from crm_api.scoring.protocol import Features, Fitted, ScorerKind, Scores

FEATURES = ("time_since_last_purchase", "purchases", "total_spend")
_MAX_ITERATIONS = 300
# Centres moving less than this in all (squared, in standard deviations) have settled, as
# in scikit-learn: waiting for no assignment to change takes hundreds of iterations on
# large sets for no visible gain.
_SETTLED = 1e-4
_SAMPLE = 50_000


def _rfm(features: Features, who: np.ndarray) -> np.ndarray:
    columns = (
        purchasers.time_since_last_purchase(features),
        np.asarray(features.purchases, dtype=float),
        np.asarray(features.total_spend, dtype=float),
    )
    # refunds can take a total below zero; the log scale starts at zero
    return np.log1p(np.maximum(np.column_stack(columns)[who], 0))


def _seed_centres(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each next centre drawn with probability proportional to the squared
    distance from the nearest centre so far; fewer than k when fewer points are distinct."""
    centres = [points[rng.integers(len(points))]]
    nearest = ((points - centres[0]) ** 2).sum(1)
    while len(centres) < k and (total := nearest.sum()) > 0:
        pick = min(np.searchsorted(np.cumsum(nearest), rng.random() * total), len(points) - 1)
        centres.append(points[pick])
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(1))
    return np.array(centres)


def _lloyd(points: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's iterations until the centres settle; a cluster left empty keeps its centre.
    Returns the centres, each point's cluster and the within-cluster sum of squares."""
    k = len(centres)
    for _ in range(_MAX_ITERATIONS):
        assigned, _ = vq(points, centres, check_finite=False)
        sizes = np.bincount(assigned, minlength=k)
        sums = np.column_stack(
            [np.bincount(assigned, weights=column, minlength=k) for column in points.T]
        )
        filled = sizes > 0
        moved = centres.copy()
        moved[filled] = sums[filled] / sizes[filled, None]
        shift = ((moved - centres) ** 2).sum()
        centres = moved
        if shift <= _SETTLED:
            break
    assigned, distance = vq(points, centres, check_finite=False)
    return centres, assigned, float((distance**2).sum())


def _cluster(
    points: np.ndarray, k: int, restarts: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """The best of ``restarts`` seeded runs, compared on a sample of at most _SAMPLE points
    (a run on a million costs seconds), then refined on all of them."""
    sample = points
    if len(points) > _SAMPLE:
        sample = points[rng.choice(len(points), _SAMPLE, replace=False)]
    runs = [_lloyd(sample, _seed_centres(sample, k, rng)) for _ in range(restarts)]
    best, _, _ = min(runs, key=lambda run: run[2])
    return _lloyd(points, best)


@dataclass(frozen=True)
class _Clustering:
    mean: np.ndarray
    scale: np.ndarray
    centres: np.ndarray  # standardised, in label order

    def standardise(self, rfm: np.ndarray) -> np.ndarray:
        return (rfm - self.mean) / self.scale

    def assign(self, rfm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row's cluster index and distance to its centre (standardised units)."""
        if len(rfm) == 0:
            return np.empty(0, dtype=np.intp), np.empty(0)
        return vq(self.standardise(rfm), self.centres, check_finite=False)


def _describe(
    clustering: _Clustering, sizes: np.ndarray, mean_spend: np.ndarray
) -> list[dict[str, Any]]:
    # centres back in natural units: the cluster's typical (geometric-mean-like) customer
    natural = np.expm1(clustering.centres * clustering.scale + clustering.mean)
    return [
        {
            "label": f"cluster-{number}",
            "customers": int(size),
            "mean_total_spend": float(spend) if size else None,
            "centre": dict(zip(FEATURES, centre.tolist(), strict=True)),
        }
        for number, (size, spend, centre) in enumerate(
            zip(sizes, mean_spend, natural, strict=True), start=1
        )
    ]


class KMeansConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=4, ge=2, le=20, description="Number of clusters.")
    seed: int = Field(default=0, ge=0, description="Seed of the k-means++ draws.")
    restarts: int = Field(
        default=4, ge=1, le=50, description="k-means++ starts; the tightest clustering wins."
    )


class KMeansClusters:
    """k-means clusters of purchasers on log recency, frequency and spend, numbered by
    descending mean spend (cluster-1 spends most).

    Customers without a purchase are not scored.
    """

    name: ClassVar[str] = "kmeans"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[ScorerKind] = ScorerKind.SEGMENTATION
    Config: ClassVar[type[BaseModel]] = KMeansConfig

    def __init__(self, config: KMeansConfig) -> None:
        self.config = config
        self.clustering: _Clustering | None = None

    def fit(self, features: Features) -> Fitted:
        who = purchasers.mask(features)
        rfm = _rfm(features, who)
        if len(rfm) == 0:
            self.clustering = _Clustering(np.zeros(3), np.ones(3), np.empty((0, 3)))
            return Fitted({"clusters": []}, {"customers": 0, "inertia": 0.0})
        mean, spread = rfm.mean(0), rfm.std(0)
        scale = np.where(spread > 0, spread, 1)  # a constant feature stays at 0
        points = (rfm - mean) / scale
        rng = np.random.default_rng(self.config.seed)
        centres, assigned, inertia = _cluster(points, self.config.k, self.config.restarts, rng)

        spend = np.asarray(features.total_spend, dtype=float)[who]
        sizes = np.bincount(assigned, minlength=len(centres))
        total = np.bincount(assigned, weights=spend, minlength=len(centres))
        mean_spend = np.divide(total, sizes, out=np.full(len(centres), -np.inf), where=sizes > 0)
        order = np.argsort(-mean_spend, kind="stable")
        self.clustering = _Clustering(mean, scale, centres[order])
        return Fitted(
            {"clusters": _describe(self.clustering, sizes[order], mean_spend[order])},
            {"customers": len(rfm), "inertia": inertia},
        )

    def score(self, features: Features) -> Scores:
        if self.clustering is None:
            raise RuntimeError("score() needs fit() first.")
        # fitted without purchasers, there is no cluster to put anyone in
        who = purchasers.mask(features) & (len(self.clustering.centres) > 0)
        cluster, distance = self.clustering.assign(_rfm(features, who))
        number = cluster + 1
        return Scores(
            score=purchasers.spread(who, number),
            labels=purchasers.labels(who, [f"cluster-{n}" for n in number.tolist()]),
            details=purchasers.details(who, distance=distance),
        )
