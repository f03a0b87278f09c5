import numpy as np
import pytest
from scipy.optimize import approx_fprime

from crm_api.scoring.plugins import gamma_gamma
from crm_api.scoring.plugins.bgnbd import BGNBD, BGNBDConfig
from crm_api.scoring.plugins.gamma_gamma import (
    GammaGammaCLV,
    GammaGammaConfig,
    GammaGammaParameters,
)
from crm_api.scoring.protocol import Features
from scoring.data import features_of

# Fader & Hardie, "The Gamma-Gamma Model of Monetary Value": CDNOW's 946 repeat buyers.
PUBLISHED = {"p": 6.25, "q": 3.74, "gamma": 15.44}

CDNOW_FIT = GammaGammaParameters(
    p=6.249574059303121, q=3.7442243894404243, gamma=15.443515044123695
)
# lifetimes 0.11.3's conditional_expected_average_profit with CDNOW_FIT's parameters
X = np.array([2.0, 0.0, 7.0, 26.0, 200.0, 1.0])
MEAN_SPEND = np.array([22.35, 0.0, 50.0, 10.0, 30.0, 5.0])
LIFETIMES_SPEND = [24.6580178537688, 35.1703714082555, 49.1246560424533, 10.418034438843]
# its customer_lifetime_value sum, one period a week at 1 % a week, 52 weeks, for the
# first four of the BG/NBD test's histories
LIFETIMES_CLV = [30.4036113911952, 6.95703219046231, 214.209057908355, 214.57782408093]


def test_fit_reproduces_the_published_cdnow_parameters(cdnow: Features):
    fitted = GammaGammaCLV(GammaGammaConfig()).fit(cdnow)

    spend = {k: round(fitted.parameters[k], 2) for k in PUBLISHED}
    assert spend == PUBLISHED
    assert fitted.diagnostics["customers"] == 946
    assert fitted.diagnostics["converged"] is True
    # the purchase model is the BG/NBD fit on the same features
    assert fitted.parameters["bgnbd"] == BGNBD(BGNBDConfig()).fit(cdnow).parameters


def test_expected_spend_matches_the_reference_implementation():
    np.testing.assert_allclose(
        CDNOW_FIT.expected_spend(X, MEAN_SPEND)[:4], LIFETIMES_SPEND, rtol=1e-10
    )


def test_expected_spend_moves_from_the_population_mean_to_the_customers_own():
    population = CDNOW_FIT.p * CDNOW_FIT.gamma / (CDNOW_FIT.q - 1)
    spend = CDNOW_FIT.expected_spend(np.array([0.0, 1.0, 10.0, 1000.0]), np.full(4, 100.0))

    assert spend[0] == pytest.approx(population)
    assert np.all(np.diff(spend) > 0)
    assert spend[-1] == pytest.approx(100.0, rel=1e-3)


def test_without_a_finite_population_mean_one_timers_get_no_spend():
    heavy_tailed = GammaGammaParameters(p=2.0, q=0.8, gamma=10.0)
    spend = heavy_tailed.expected_spend(np.array([0.0, 3.0]), np.array([0.0, 20.0]))

    assert np.isnan(spend[0])
    assert np.isfinite(spend[1])


def test_clv_matches_the_reference_discounted_cash_flow(cdnow: Features):
    features = features_of(
        frequency=[2, 0, 7, 26],
        recency=[30.43, 0.0, 29.43, 30.86],
        T=[38.86, 38.86, 35.0, 31.0],
        monetary=[22.35, 0.0, 50.0, 10.0],
    )
    scorer = GammaGammaCLV(GammaGammaConfig(horizon=52, discount_rate=0.01))
    scorer.fit(cdnow)

    scores = scorer.score(features)

    # the CDNOW fit agrees with the reference parameters to about 1e-6
    np.testing.assert_allclose(scores.score, LIFETIMES_CLV, rtol=1e-5)
    np.testing.assert_allclose(
        [d["expected_spend"] for d in scores.details], LIFETIMES_SPEND, rtol=1e-5
    )


def test_undiscounted_clv_is_expected_spend_times_expected_purchases(cdnow: Features):
    scorer = GammaGammaCLV(GammaGammaConfig(horizon=26))
    scorer.fit(cdnow)
    scores = scorer.score(cdnow)

    product = [d["expected_spend"] * d["expected_purchases"] for d in scores.details]
    np.testing.assert_allclose(scores.score, product, rtol=1e-12)
    discounted = GammaGammaCLV(GammaGammaConfig(horizon=26, discount_rate=0.02))
    discounted.fit(cdnow)
    assert np.all(discounted.score(cdnow).score < scores.score)


def test_the_analytic_gradient_is_the_likelihood_slope(cdnow: Features):
    repeat = cdnow.frequency > 0
    log_likelihood = gamma_gamma._LogLikelihood(cdnow.frequency[repeat], cdnow.monetary[repeat])
    point = np.array([5.0, 3.0, 12.0])

    _, gradient = log_likelihood(point)
    numeric = approx_fprime(point, lambda p: log_likelihood(p)[0], 1e-7)

    np.testing.assert_allclose(gradient, numeric, rtol=1e-4)


def test_fitting_without_repeat_buyers_is_a_clear_error():
    one_timers = features_of(frequency=[0, 0, 0], recency=[0, 0, 0], T=[5, 6, 7])

    with pytest.raises(ValueError, match="repeat buyer"):
        GammaGammaCLV(GammaGammaConfig()).fit(one_timers)
