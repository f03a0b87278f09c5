"""The vendored CDNOW sample, and the feature conventions that reproduce Fader & Hardie's
per-customer summary of it (the input of every published CDNOW fit)."""

import numpy as np
import pytest

from crm_api.scoring.protocol import Features
from scoring.data import read_cdnow_sample, read_cdnow_summary


def test_the_sample_holds_2357_customers_and_6919_purchases():
    ids, days, amounts = read_cdnow_sample()

    assert len(ids) == len(days) == len(amounts) == 6919
    assert len(np.unique(ids)) == 2357
    assert days.min() == np.datetime64("1997-01-01").astype(np.int64)
    assert days.max() == np.datetime64("1998-06-30").astype(np.int64)


def test_features_reproduce_the_published_summary_for_every_customer(cdnow: Features):
    summary = read_cdnow_summary()

    assert len(cdnow) == len(summary["ID"]) == 2357
    np.testing.assert_array_equal(cdnow.frequency, summary["x"])
    # the summary rounds to 2 decimals (half up: 22.345 -> 22.35)
    for ours, theirs in [
        (cdnow.recency, summary["t_x"]),
        (cdnow.T, summary["T"]),
        (cdnow.monetary, summary["zbar"]),
    ]:
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=0.005 + 1e-9)


def test_calibration_period_counts(cdnow: Features):
    assert cdnow.frequency.sum() == 2457  # repeat purchase days in the 39 weeks
    assert np.count_nonzero(cdnow.frequency) == 946  # repeat buyers
    assert cdnow.purchases.sum() == 2357 + 2457


def test_rows_on_one_day_are_one_purchase_day_with_their_amounts_summed(cdnow: Features):
    # customer 26: $3.99 on 1997-01-02, then two rows on 01-13 ($166.89 + $60.25)
    assert cdnow.purchases[25] == 2
    assert cdnow.frequency[25] == 1
    assert cdnow.monetary[25] == 166.89 + 60.25
    assert cdnow.recency[25] == 11 / 7
    # customer 46: 14 rows in the period, two of them on 1997-08-28
    assert cdnow.frequency[45] == 12
    assert cdnow.total_spend[45] == pytest.approx(395.18)
    assert cdnow.monetary[45] == pytest.approx((395.18 - 40.70) / 12)


def test_only_purchases_up_to_the_observation_end_count(cdnow: Features):
    # customer 1: 1997-01-01, 01-18, 08-02 and 12-12; the last is after 1997-09-30
    assert cdnow.frequency[0] == 2
    assert cdnow.recency[0] == 213 / 7  # 1997-01-01 -> 08-02
    assert cdnow.T[0] == 272 / 7  # 1997-01-01 -> 09-30
