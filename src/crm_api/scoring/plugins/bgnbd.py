"""BG/NBD churn: the score is 1 - P(alive) (Fader, Hardie & Lee 2005, "Counting Your
Customers the Easy Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2)).

While alive a customer buys at a Poisson rate lambda ~ Gamma(r, alpha); after each repeat
purchase they leave for good with probability p ~ Beta(a, b). The four parameters are
fitted by maximum likelihood on the purchasers' (x, t_x, T) = (frequency, recency, T).
"""

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import digamma, expit, gammaln, hyp2f1

from crm_api.scoring.plugins import purchasers
from crm_api.scoring.plugins.mle import Estimate, dot, maximise
from crm_api.scoring.protocol import Features, Fitted, ScorerKind, Scores


@dataclass(frozen=True)
class History:
    """The purchasers' histories in the paper's notation, as float arrays."""

    x: np.ndarray  # repeat purchases
    t_x: np.ndarray  # time of the last one, from the first purchase
    T: np.ndarray  # time observed, from the first purchase

    @classmethod
    def of(cls, features: Features, who: np.ndarray) -> "History":
        def column(values: np.ndarray) -> np.ndarray:
            return np.asarray(values, dtype=float)[who]

        return cls(column(features.frequency), column(features.recency), column(features.T))


@dataclass(frozen=True)
class BGNBDParameters:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def p_alive(self, history: History) -> np.ndarray:
        """P(alive | x, t_x, T); 1 for customers without a repeat purchase (they cannot
        have left yet)."""
        repeat = history.x > 0
        log_odds = _log_odds_inactive(
            self,
            history.x[repeat],
            np.log(self.alpha + history.t_x[repeat]),
            np.log(self.alpha + history.T[repeat]),
        )
        p = np.ones(len(history.x))
        p[repeat] = expit(-log_odds)
        return p

    def expected_purchases(
        self, history: History, horizon: float, discount_rate: float = 0.0
    ) -> np.ndarray:
        """Expected repeat purchases in the next ``horizon`` time units (eq. 10).

        With a discount rate, the purchases expected in each unit period k (the last one
        possibly partial) count (1 + discount_rate) ** -k: the discounted cash-flow sum
        that lifetimes' ``customer_lifetime_value`` takes month by month.
        """
        ends = np.append(np.arange(1, math.ceil(horizon)), horizon) if discount_rate else [horizon]
        # the hypergeometric term depends on x and T only
        (x, T), inverse, _ = _distinct(history.x, history.T)
        total, before = np.zeros(len(x)), np.zeros(len(x))
        for end in ends:
            cumulative = self._expected_if_alive(float(end), x, T)
            total += (cumulative - before) * (1 + discount_rate) ** -end
            before = cumulative
        return total[inverse] * self.p_alive(history)

    def _expected_if_alive(self, t: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Eq. 10 without its P(alive) factor: purchases in (T, T + t] if still alive."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        c = a + b + x - 1
        z = t / (alpha + T + t)
        with np.errstate(divide="ignore", over="ignore"):
            log_hyp = np.log(hyp2f1(r + x, b + x, c, z))
        overflow = ~np.isfinite(log_hyp)
        if overflow.any():
            # Euler's transformation, 2F1(a', b'; c; z) = (1 - z)^(c - a' - b')
            # 2F1(c - a', c - b'; c; z), stays finite for large x with z near 1.
            xo, zo, co = x[overflow], z[overflow], c[overflow]
            log_hyp[overflow] = np.log(hyp2f1(a + b - 1 - r, a - 1, co, zo)) + (
                a - 1 - r - xo
            ) * np.log1p(-zo)
        return c / (a - 1) * -np.expm1(log_hyp - (r + x) * np.log1p(t / (alpha + T)))


def _log_odds_inactive(
    params: BGNBDParameters, x: np.ndarray, log_alpha_t_x: np.ndarray, log_alpha_T: np.ndarray
) -> np.ndarray:
    """log(P(left) / P(alive)) of repeat buyers: the paper's A4 - A3, in log space so that
    large x and T neither overflow nor lose precision."""
    return np.log(params.a / (params.b + x - 1)) + (params.r + x) * (log_alpha_T - log_alpha_t_x)


def _distinct(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The distinct rows of the columns, each row's index into them, and their counts.
    Whole-day durations make distinct histories far fewer than customers, and every
    per-history computation can run on these instead."""
    order = np.lexsort(columns[::-1])
    ordered = [column[order] for column in columns]
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any([np.diff(column) != 0 for column in ordered], axis=0)
    inverse = np.empty(len(order), dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    counts = np.diff(np.append(np.flatnonzero(first), len(order)))
    return [column[first] for column in ordered], inverse, counts


class _LogLikelihood:
    """Eq. 6 of the paper summed over customers, and its gradient in (r, alpha, a, b).

    Terms in x alone (the gamma functions) are evaluated once per distinct repeat count,
    terms in T alone once per distinct T, and the rest once per distinct repeat buyer's
    history, each weighted by its customers.
    """

    def __init__(self, history: History) -> None:
        self.customers = len(history.x)
        self.counts, self.customers_with_count = np.unique(history.x, return_counts=True)
        self.ages, age_of = np.unique(history.T, return_inverse=True)
        self.customers_with_age = np.bincount(age_of).astype(float)
        self.purchases_at_age = np.bincount(age_of, weights=history.x)
        repeat = history.x > 0
        (self.x_repeat, self.t_x_repeat, self.T_repeat), _, customers = _distinct(
            history.x[repeat], history.t_x[repeat], history.T[repeat]
        )
        self.customers_with_history = customers.astype(float)

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = params
        u, n, N = self.counts, self.customers_with_count, self.customers

        # A1 + A2: the gamma and beta functions
        ll = dot(n, gammaln(r + u) + gammaln(b + u) - gammaln(a + b + u)) + N * (
            r * np.log(alpha) - gammaln(r) + gammaln(a + b) - gammaln(b)
        )
        d_a = N * digamma(a + b) - dot(n, digamma(a + b + u))
        d_b = d_a + dot(n, digamma(b + u)) - N * digamma(b)
        d_r = dot(n, digamma(r + u)) + N * (np.log(alpha) - digamma(r))
        d_alpha = N * r / alpha

        # A3 = -(r + x) log(alpha + T), for everyone
        weight = r * self.customers_with_age + self.purchases_at_age
        log_alpha_age = np.log(alpha + self.ages)
        ll -= dot(weight, log_alpha_age)
        d_r -= dot(self.customers_with_age, log_alpha_age)
        d_alpha -= dot(weight, 1 / (alpha + self.ages))

        # log(1 + exp(A4 - A3)), for repeat buyers only
        x = self.x_repeat
        log_alpha_t_x = np.log(alpha + self.t_x_repeat)
        log_alpha_T = np.log(alpha + self.T_repeat)
        log_odds = _log_odds_inactive(
            BGNBDParameters(r, alpha, a, b), x, log_alpha_t_x, log_alpha_T
        )
        softplus, p_inactive = _softplus_and_sigmoid(log_odds)
        ll += dot(self.customers_with_history, softplus)
        inactive = self.customers_with_history * p_inactive  # expected leavers per history
        d_r += dot(inactive, log_alpha_T - log_alpha_t_x)
        d_alpha += dot(
            inactive * (r + x), 1 / (alpha + self.T_repeat) - 1 / (alpha + self.t_x_repeat)
        )
        d_a += inactive.sum() / a
        d_b -= dot(inactive, 1 / (b + x - 1))
        return float(ll), np.array([d_r, d_alpha, d_a, d_b])


def _softplus_and_sigmoid(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + e^z) and its derivative e^z / (1 + e^z), stable for any z, sharing one exp."""
    e = np.exp(-np.abs(z))
    return np.maximum(z, 0) + np.log1p(e), np.where(z >= 0, 1, e) / (1 + e)


def fit(history: History, *, penalizer: float = 0.0) -> tuple[BGNBDParameters, Estimate]:
    if len(history.x) == 0:
        raise ValueError("BG/NBD needs at least one customer with a purchase; there is none.")
    # Start where the mean purchase rate r / alpha matches the data's, with a = b = 2 (not
    # a = 1: eq. 10 is 0/0 there, and a flat likelihood in a, b would leave them put).
    exposure = history.T.sum()
    alpha = exposure / history.x.sum() if history.x.sum() > 0 and exposure > 0 else 1.0
    start = np.array([1.0, alpha, 2.0, 2.0])
    estimate = maximise(
        _LogLikelihood(history), start, customers=len(history.x), penalizer=penalizer
    )
    return BGNBDParameters(*map(float, estimate.parameters)), estimate


class BGNBDConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    horizon: float = Field(
        default=52.0,
        gt=0,
        description="How far ahead expected purchases are counted, in the run's time unit.",
    )
    penalizer: float = Field(
        default=0.0,
        ge=0,
        description="L2 penalty on r, alpha, a and b; 0 is plain maximum likelihood.",
    )


class BGNBD:
    """Churn risk from the BG/NBD model: 1 - P(alive) given each purchaser's frequency,
    recency and age, with the purchases expected over the horizon.

    Customers without a purchase are not scored.
    """

    name: ClassVar[str] = "bgnbd"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[ScorerKind] = ScorerKind.CHURN
    Config: ClassVar[type[BaseModel]] = BGNBDConfig

    def __init__(self, config: BGNBDConfig) -> None:
        self.config = config
        self.parameters: BGNBDParameters | None = None

    def fit(self, features: Features) -> Fitted:
        history = History.of(features, purchasers.mask(features))
        self.parameters, estimate = fit(history, penalizer=self.config.penalizer)
        return Fitted(self.parameters.as_dict(), estimate.diagnostics())

    def score(self, features: Features) -> Scores:
        if self.parameters is None:
            raise RuntimeError("score() needs fit() first.")
        who = purchasers.mask(features)
        history = History.of(features, who)
        p_alive = self.parameters.p_alive(history)
        expected = self.parameters.expected_purchases(history, self.config.horizon)
        return Scores(
            score=purchasers.spread(who, 1 - p_alive),
            details=purchasers.details(who, p_alive=p_alive, expected_purchases=expected),
        )
