from itertools import pairwise

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from scipy.special import hyp2f1

from crm_api.scoring.plugins import bgnbd
from crm_api.scoring.plugins.bgnbd import BGNBD, BGNBDConfig, BGNBDParameters, History
from crm_api.scoring.protocol import Features, TimeUnit
from scoring.data import cdnow_features, features_of

# Fader, Hardie & Lee (2005), CDNOW, 39 weeks: r, alpha, a, b and the log-likelihood.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LOG_LIKELIHOOD = -9582.4

CDNOW_FIT = BGNBDParameters(
    r=0.24259452228675854, alpha=4.4136020149564015, a=0.7929220214905928, b=2.425906794987383
)
# (x, t_x, T): published cases, and large ones where a naive formula overflows
HISTORIES = History(
    x=np.array([2.0, 0.0, 7.0, 26.0, 200.0, 1.0, 5000.0]),
    t_x=np.array([30.43, 0.0, 29.43, 30.86, 100.0, 1.0, 9990.0]),
    T=np.array([38.86, 38.86, 35.0, 31.0, 104.0, 1.0, 10000.0]),
)
# lifetimes 0.11.3's BetaGeoFitter with CDNOW_FIT's parameters, on HISTORIES
LIFETIMES_P_ALIVE = [0.72660916262034, 1.0, 0.77900070728659, 0.96891852212158, 0.12021568200607]
LIFETIMES_EXPECTED_39 = [1.22590683509766, 0.19478203646894, 4.36933506508103, 20.7502752233247]
LIFETIMES_EXPECTED_HEAVY_5200 = [0.06962955125035386, 0.2775302796030537]


def test_fit_reproduces_the_published_cdnow_parameters(cdnow: Features):
    scorer = BGNBD(BGNBDConfig())
    fitted = scorer.fit(cdnow)

    assert {k: round(v, 3) for k, v in fitted.parameters.items()} == PUBLISHED
    assert round(fitted.diagnostics["log_likelihood"], 1) == PUBLISHED_LOG_LIKELIHOOD
    assert fitted.diagnostics["converged"] is True
    assert fitted.diagnostics["customers"] == 2357


def test_p_alive_and_expected_purchases_match_the_reference_implementation():
    np.testing.assert_allclose(CDNOW_FIT.p_alive(HISTORIES)[:5], LIFETIMES_P_ALIVE, rtol=1e-10)
    expected = CDNOW_FIT.expected_purchases(HISTORIES, 39)
    np.testing.assert_allclose(expected[:4], LIFETIMES_EXPECTED_39, rtol=1e-10)
    # the paper's worked example: x = 2, t_x = 30.43, T = 38.86 -> 1.226 in the next 39 weeks
    assert round(expected[0], 3) == 1.226


def test_where_the_hypergeometric_series_overflows_the_transformed_one_takes_over():
    heavy = History(
        x=np.array([500.0, 300.0]), t_x=np.array([290.0, 95.0]), T=np.array([300.0, 100.0])
    )
    assert np.isinf(
        hyp2f1(CDNOW_FIT.r + 500, CDNOW_FIT.b + 500, CDNOW_FIT.a + CDNOW_FIT.b + 499, 0.94)
    )

    np.testing.assert_allclose(
        CDNOW_FIT.expected_purchases(heavy, 5200), LIFETIMES_EXPECTED_HEAVY_5200, rtol=1e-10
    )


def test_large_histories_stay_finite_and_sensible():
    p_alive = CDNOW_FIT.p_alive(HISTORIES)
    expected = CDNOW_FIT.expected_purchases(HISTORIES, 52)

    assert np.all((p_alive > 0) & (p_alive <= 1))
    assert np.all(np.isfinite(expected) & (expected > 0))
    # 5,000 purchases in 10,000 weeks, the last 10 weeks ago: alive, about 0.5 a week
    assert p_alive[-1] > 0.95
    assert expected[-1] == pytest.approx(0.5 * 52 * p_alive[-1], rel=0.05)


def test_discounting_weighs_later_purchases_less():
    plain = CDNOW_FIT.expected_purchases(HISTORIES, 52)
    no_discount = CDNOW_FIT.expected_purchases(HISTORIES, 52, discount_rate=1e-12)
    discounted = CDNOW_FIT.expected_purchases(HISTORIES, 52, discount_rate=0.01)

    np.testing.assert_allclose(no_discount, plain, rtol=1e-9)
    assert np.all(discounted < plain)
    assert np.all(discounted > plain / 1.01**52)


def test_the_analytic_gradient_is_the_likelihood_slope(cdnow: Features):
    history = History.of(cdnow, cdnow.purchases > 0)
    log_likelihood = bgnbd._LogLikelihood(history)
    point = np.array([0.3, 5.0, 0.9, 2.0])

    _, gradient = log_likelihood(point)
    numeric = approx_fprime(point, lambda p: log_likelihood(p)[0], 1e-7)

    np.testing.assert_allclose(gradient, numeric, rtol=1e-4)


def test_days_and_weeks_give_the_same_model():
    weeks = BGNBD(BGNBDConfig()).fit(cdnow_features(TimeUnit.WEEKS)).parameters
    days = BGNBD(BGNBDConfig()).fit(cdnow_features(TimeUnit.DAYS)).parameters

    assert days["alpha"] == pytest.approx(7 * weeks["alpha"], rel=1e-4)
    for shape in ("r", "a", "b"):
        assert days[shape] == pytest.approx(weeks[shape], rel=1e-4)


def test_the_penalizer_shrinks_the_parameters(cdnow: Features):
    plain = BGNBD(BGNBDConfig()).fit(cdnow)
    penalized = BGNBD(BGNBDConfig(penalizer=0.1)).fit(cdnow)

    def size(fitted):
        return sum(v**2 for v in fitted.parameters.values())

    assert size(penalized) < size(plain)
    assert penalized.diagnostics["log_likelihood"] < plain.diagnostics["log_likelihood"]


def test_scores_are_one_minus_p_alive_with_expected_purchases(cdnow: Features):
    scorer = BGNBD(BGNBDConfig(horizon=39))
    scorer.fit(cdnow)
    scores = scorer.score(cdnow)

    first = scores.details[0]
    assert first["p_alive"] == pytest.approx(LIFETIMES_P_ALIVE[0], rel=1e-4)
    assert first["expected_purchases"] == pytest.approx(1.226, abs=5e-4)
    assert scores.score[0] == pytest.approx(1 - first["p_alive"])
    # without a repeat purchase nobody can have left yet
    one_timers = cdnow.frequency == 0
    assert np.all(scores.score[one_timers] == 0)
    assert np.all(scores.score[~one_timers] > 0)


def test_fitting_without_purchasers_is_a_clear_error():
    nobody = features_of(frequency=[0, 0], recency=[0, 0], T=[0, 0], purchases=[0, 0])

    with pytest.raises(ValueError, match="at least one customer with a purchase"):
        BGNBD(BGNBDConfig()).fit(nobody)


def test_expected_purchases_grow_with_the_horizon():
    horizons = [1.0, 13.0, 52.0, 520.0]
    expected = [CDNOW_FIT.expected_purchases(HISTORIES, h) for h in horizons]

    assert all(np.all(later > earlier) for earlier, later in pairwise(expected))
