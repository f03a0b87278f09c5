"""What every built-in scorer owes the runs: aligned, JSON-ready output for any input,
customers without a purchase left unscored, and a clear error where fitting is impossible."""

import json

import numpy as np
import pytest
from pydantic import ValidationError

from crm_api.scoring import registry
from crm_api.scoring.protocol import Features, Scorer, ScorerKind, Scores
from scoring.data import features_of

BUILT_INS = ["bgnbd", "gamma_gamma", "kmeans", "rfm"]
# fitting is impossible for these without purchases (or without repeat purchases)
NEEDS_PURCHASES = {"bgnbd", "gamma_gamma"}


@pytest.fixture(params=BUILT_INS)
def scorer_class(request) -> type[Scorer]:
    return registry.get(request.param)


def make(scorer_class: type[Scorer]) -> Scorer:
    return scorer_class(scorer_class.Config())


def assert_aligned(scores: Scores, features: Features) -> None:
    n = len(features)
    assert scores.score.shape == (n,)
    assert scores.details is None or len(scores.details) == n
    assert scores.labels is None or len(scores.labels) == n
    json.dumps(scores.details, allow_nan=False)


MIXED = features_of(
    frequency=[0, 3, 0, 1, 7, 2],
    recency=[0, 10, 0, 2, 30, 25],
    T=[0, 20, 0, 9, 31, 40],
    monetary=[0, 12.5, 0, 40.0, 9.99, 20.0],
    purchases=[0, 4, 0, 2, 8, 3],
)


def test_mixed_customers_score_purchasers_only(scorer_class):
    scorer = make(scorer_class)
    fitted = scorer.fit(MIXED)
    scores = scorer.score(MIXED)

    assert_aligned(scores, MIXED)
    json.dumps(fitted.parameters, allow_nan=False)
    json.dumps(fitted.diagnostics, allow_nan=False)
    bought = MIXED.purchases > 0
    assert np.isnan(scores.score[~bought]).all()
    assert np.isfinite(scores.score[bought]).all()
    assert [d == {} for d in scores.details] == (~bought).tolist()
    if scorer_class.kind is ScorerKind.SEGMENTATION:
        assert [label is None for label in scores.labels] == (~bought).tolist()
    if scorer_class.kind is ScorerKind.CHURN:
        assert ((scores.score[bought] >= 0) & (scores.score[bought] <= 1)).all()


@pytest.mark.parametrize(
    "features",
    [
        features_of(frequency=[], recency=[], T=[]),
        features_of(frequency=[0, 0], recency=[0, 0], T=[0, 0], purchases=[0, 0]),
    ],
    ids=["no customers", "no purchasers"],
)
def test_no_purchasers_is_survived_or_a_clear_error(scorer_class, features: Features):
    scorer = make(scorer_class)
    if scorer_class.name in NEEDS_PURCHASES:
        with pytest.raises(ValueError, match="needs at least one"):
            scorer.fit(features)
        return

    scorer.fit(features)
    scores = scorer.score(features)

    assert_aligned(scores, features)
    assert np.isnan(scores.score).all()


def test_one_time_buyers_only(scorer_class):
    one_timers = features_of(frequency=[0, 0, 0], recency=[0, 0, 0], T=[1, 5, 30])
    scorer = make(scorer_class)
    if scorer_class.name == "gamma_gamma":
        with pytest.raises(ValueError, match="repeat buyer"):
            scorer.fit(one_timers)
        return

    scorer.fit(one_timers)

    assert np.isfinite(scorer.score(one_timers).score).all()


def test_scoring_needs_a_fit_first(scorer_class):
    with pytest.raises(RuntimeError, match="fit"):
        make(scorer_class).score(MIXED)


def test_configs_have_defaults_and_refuse_unknown_settings(scorer_class):
    assert scorer_class.Config().model_dump() == scorer_class.Config.model_validate({}).model_dump()
    with pytest.raises(ValidationError):
        scorer_class.Config.model_validate({"no_such_setting": 1})


def test_fit_and_score_are_pure_functions_of_their_input(scorer_class, cdnow: Features):
    first, second = make(scorer_class), make(scorer_class)

    assert first.fit(cdnow) == second.fit(cdnow)
    np.testing.assert_array_equal(first.score(cdnow).score, second.score(cdnow).score)
