"""Customer lifetime value: Gamma-Gamma spend times BG/NBD purchases.

The Gamma-Gamma model (Fader, Hardie & Lee 2005, "RFM and CLV: Using Iso-Value Curves for
Customer Base Analysis", JMR 42(4); Fader & Hardie 2013, "The Gamma-Gamma Model of
Monetary Value") takes a customer's spend per purchase as Gamma(p, nu) around their own
mean, with nu ~ Gamma(q, gamma) across customers. It is fitted on repeat buyers (their
mean repeat spend is ``monetary``); it assumes spend independent of purchase frequency.

CLV = E[spend per purchase | history] x the BG/NBD's expected purchases over ``horizon``,
each unit period's purchases discounted by (1 + discount_rate) ** -k. That is lifetimes'
``customer_lifetime_value`` discounted cash flow, with the run's time unit as the period
instead of a month.
"""

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import digamma, gammaln

from crm_api.scoring.plugins import bgnbd, purchasers
from crm_api.scoring.plugins.mle import Estimate, dot, maximise
from crm_api.scoring.protocol import Features, Fitted, ScorerKind, Scores


@dataclass(frozen=True)
class GammaGammaParameters:
    p: float
    q: float
    gamma: float

    def expected_spend(self, x: np.ndarray, mean_spend: np.ndarray) -> np.ndarray:
        """E[spend per purchase | x repeat purchases of mean ``mean_spend``]: a weighted
        average of the population mean p * gamma / (q - 1) and the customer's own mean,
        nan where the population mean is infinite (q <= 1) and the customer has no repeat."""
        denominator = self.p * x + self.q - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            spend = (self.gamma + mean_spend * x) * self.p / denominator
        return np.where(denominator > 0, spend, np.nan)


class _LogLikelihood:
    """The density of a repeat buyer's mean spend m over x purchases, summed over buyers:
    Gamma(px + q) / (Gamma(px) Gamma(q)) gamma^q m^(px - 1) x^px / (gamma + m x)^(px + q),
    and its gradient in (p, q, gamma)."""

    def __init__(self, x: np.ndarray, mean_spend: np.ndarray) -> None:
        self.x, self.log_x = x, np.log(x)
        self.log_m = np.log(mean_spend)
        self.spent = mean_spend * x

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, gamma = params
        x, N = self.x, len(self.x)
        shape = p * x + q
        log_total = np.log(gamma + self.spent)
        ll = (
            np.sum(gammaln(shape) - gammaln(p * x) + (p * x - 1) * self.log_m)
            + p * dot(x, self.log_x)
            - dot(shape, log_total)
            + N * (q * np.log(gamma) - gammaln(q))
        )
        digamma_shape = digamma(shape)
        d_p = dot(x, digamma_shape - digamma(p * x) + self.log_m + self.log_x - log_total)
        d_q = np.sum(digamma_shape - log_total) + N * (np.log(gamma) - digamma(q))
        d_gamma = N * q / gamma - np.sum(shape / (gamma + self.spent))
        return float(ll), np.array([d_p, d_q, d_gamma])


def fit(
    x: np.ndarray, mean_spend: np.ndarray, *, penalizer: float = 0.0
) -> tuple[GammaGammaParameters, Estimate]:
    """Fit on the customers with at least one repeat purchase of positive spend."""
    repeat = (x > 0) & (mean_spend > 0)
    if not repeat.any():
        raise ValueError(
            "Gamma-Gamma needs at least one repeat buyer with a positive spend; there is none."
        )
    x, mean_spend = x[repeat], mean_spend[repeat]
    # Start where the population's mean spend, p * gamma / (q - 1), is the observed one.
    start = np.array([1.0, 2.0, float(np.mean(mean_spend))])
    estimate = maximise(_LogLikelihood(x, mean_spend), start, customers=len(x), penalizer=penalizer)
    return GammaGammaParameters(*map(float, estimate.parameters)), estimate


class GammaGammaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    horizon: float = Field(
        default=52.0, gt=0, description="The lifetime value's horizon, in the run's time unit."
    )
    discount_rate: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Discount rate per time unit (e.g. 0.0018 a week for about 10 % a year).",
    )
    penalizer: float = Field(
        default=0.0, ge=0, description="L2 penalty on both models' parameters; 0 is none."
    )


@dataclass(frozen=True)
class _Models:
    purchases: bgnbd.BGNBDParameters
    spend: GammaGammaParameters


class GammaGammaCLV:
    """Customer lifetime value over the horizon: Gamma-Gamma expected spend per purchase
    times BG/NBD expected purchases, discounted per time unit.

    Customers without a purchase are not scored.
    """

    name: ClassVar[str] = "gamma_gamma"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[ScorerKind] = ScorerKind.CLV
    Config: ClassVar[type[BaseModel]] = GammaGammaConfig

    def __init__(self, config: GammaGammaConfig) -> None:
        self.config = config
        self.models: _Models | None = None

    def fit(self, features: Features) -> Fitted:
        who = purchasers.mask(features)
        history = bgnbd.History.of(features, who)
        purchases, purchases_fit = bgnbd.fit(history, penalizer=self.config.penalizer)
        spend, spend_fit = fit(history.x, _monetary(features, who), penalizer=self.config.penalizer)
        self.models = _Models(purchases, spend)
        return Fitted(
            parameters={**asdict(spend), "bgnbd": purchases.as_dict()},
            diagnostics={**spend_fit.diagnostics(), "bgnbd": purchases_fit.diagnostics()},
        )

    def score(self, features: Features) -> Scores:
        if self.models is None:
            raise RuntimeError("score() needs fit() first.")
        who = purchasers.mask(features)
        history = bgnbd.History.of(features, who)
        horizon, rate = self.config.horizon, self.config.discount_rate
        spend = self.models.spend.expected_spend(history.x, _monetary(features, who))
        clv = spend * self.models.purchases.expected_purchases(history, horizon, rate)
        return Scores(
            score=purchasers.spread(who, clv),
            details=purchasers.details(
                who,
                expected_spend=spend,
                expected_purchases=self.models.purchases.expected_purchases(history, horizon),
                p_alive=self.models.purchases.p_alive(history),
            ),
        )


def _monetary(features: Features, who: np.ndarray) -> np.ndarray:
    return np.asarray(features.monetary, dtype=float)[who]
