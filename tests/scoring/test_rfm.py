import re
from collections import Counter

import numpy as np
import pytest

from crm_api.scoring.plugins.rfm import RFM, SEGMENTS, RFMConfig, segment
from crm_api.scoring.protocol import Features
from scoring.data import features_of

TEN_SEGMENTS = {
    "Champions",
    "Loyal",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
}


def scored(features: Features):
    scorer = RFM(RFMConfig())
    scorer.fit(features)
    scores = scorer.score(features)
    r, f, m = (np.array([d.get(k, 0) for d in scores.details]) for k in "rfm")
    return scores, r, f, m


def distinct_customers(n: int, seed: int = 1) -> Features:
    """n purchasers with all-distinct recency, purchase counts and spend."""
    rng = np.random.default_rng(seed)
    T = np.full(n, 1000.0)
    since_last = rng.permutation(n) * 0.5
    return features_of(
        frequency=rng.permutation(n),
        recency=T - since_last,
        T=T,
        total_spend=rng.permutation(n) * 3.0 + 1,
    )


def test_every_r_f_cell_is_in_exactly_one_of_the_ten_segments():
    for r in range(1, 6):
        for f in range(1, 6):
            matching = [p for p in SEGMENTS if re.fullmatch(p, f"{r}{f}")]
            assert len(matching) == 1, (r, f, matching)
    assert set(SEGMENTS.values()) == TEN_SEGMENTS
    assert {segment(r, f) for r in range(1, 6) for f in range(1, 6)} == TEN_SEGMENTS


@pytest.mark.parametrize(
    ("r", "f", "name"),
    [
        (5, 5, "Champions"),
        (5, 1, "New Customers"),
        (4, 1, "Promising"),
        (3, 3, "Need Attention"),
        (1, 5, "Can't Lose Them"),
        (1, 1, "Hibernating"),
        (2, 4, "At Risk"),
        (4, 2, "Potential Loyalists"),
    ],
)
def test_segment_map(r, f, name):
    assert segment(r, f) == name


def test_quintiles_are_balanced_without_ties():
    _, r, f, m = scored(distinct_customers(1000))

    for scores in (r, f, m):
        assert Counter(scores.tolist()) == {1: 200, 2: 200, 3: 200, 4: 200, 5: 200}


def test_five_is_best_in_every_dimension():
    features = distinct_customers(100)
    _, r, f, m = scored(features)
    since_last = features.T - features.recency

    assert r[np.argmin(since_last)] == 5 and r[np.argmax(since_last)] == 1
    assert f[np.argmax(features.purchases)] == 5 and f[np.argmin(features.purchases)] == 1
    assert m[np.argmax(features.total_spend)] == 5 and m[np.argmin(features.total_spend)] == 1


def test_equal_values_get_equal_scores(cdnow: Features):
    _, r, f, m = scored(cdnow)

    for scores, values in [
        (r, cdnow.T - cdnow.recency),
        (f, cdnow.purchases),
        (m, cdnow.total_spend),
    ]:
        for value in np.unique(values):
            assert len(set(scores[values == value].tolist())) == 1
    # the 60 % who bought once share the lowest frequency score
    assert set(f[cdnow.purchases == 1].tolist()) == {1}


def test_cdnow_spend_quintiles_are_balanced_despite_a_few_ties(cdnow: Features):
    _, _, _, m = scored(cdnow)

    shares = np.bincount(m, minlength=6)[1:] / len(m)
    np.testing.assert_allclose(shares, 0.2, atol=0.01)


def test_score_labels_and_details_agree(cdnow: Features):
    scores, r, f, m = scored(cdnow)

    np.testing.assert_array_equal(scores.score, r * 100 + f * 10 + m)
    assert scores.labels == [segment(a, b) for a, b in zip(r, f, strict=True)]
    assert set(scores.labels) <= TEN_SEGMENTS


def test_fitted_cuts_score_new_customers_consistently(cdnow: Features):
    scorer = RFM(RFMConfig())
    fitted = scorer.fit(cdnow)
    newcomer = features_of(frequency=[20], recency=[38.0], T=[38.0], total_spend=[5000.0])

    assert len(fitted.parameters["total_spend_cuts"]) == 4
    assert scorer.score(newcomer).labels == ["Champions"]
    assert scorer.score(newcomer).details == [{"r": 5, "f": 5, "m": 5}]


def test_customers_without_a_purchase_are_not_scored():
    features = features_of(
        frequency=[0, 3, 0, 1], recency=[0, 10, 0, 2], T=[0, 20, 0, 9], purchases=[0, 4, 0, 2]
    )
    scores, *_ = scored(features)

    assert np.isnan(scores.score[[0, 2]]).all()
    assert not np.isnan(scores.score[[1, 3]]).any()
    assert scores.labels[0] is None and scores.labels[2] is None
    assert scores.details[0] == {} and scores.details[2] == {}
