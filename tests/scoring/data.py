"""Features for the model tests: the CDNOW sample, and small hand-made sets.

``cdnow_features`` is a Python twin of the SQL feature query, for these tests only. It
follows the conventions ``Features`` documents, which are the ones Fader, Hardie & Lee
used for their published CDNOW fits: a purchase day is a calendar day with at least one
purchase (several rows on one day are one purchase, amounts summed, zero amounts
included); purchases on the observation end's own day count; durations are whole-day
differences between those days, in weeks as days / 7.
"""

import csv
import uuid
from datetime import date
from pathlib import Path

import numpy as np

from crm_api.scoring.protocol import Features, TimeUnit

CDNOW = Path(__file__).parents[1] / "fixtures" / "cdnow"
CDNOW_SAMPLE = CDNOW / "CDNOW_sample.txt"
CDNOW_SUMMARY = CDNOW / "cdnow_customers_summary_with_transactions.csv"
# The last day of the 39-week calibration period of the published fits.
OBSERVATION_END = date(1997, 9, 30)
_DAYS_PER_UNIT = {TimeUnit.DAYS: 1.0, TimeUnit.WEEKS: 7.0}


def read_cdnow_sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows as (sample customer id 1..2357, day number, dollars)."""
    # columns: master customer id, sample customer id, yyyymmdd, CDs bought, dollars
    table = np.loadtxt(CDNOW_SAMPLE, dtype=str)
    days = np.array(
        [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in table[:, 2]], dtype="datetime64[D]"
    ).astype(np.int64)
    return table[:, 1].astype(np.int64), days, table[:, 4].astype(float)


def cdnow_features(time_unit: TimeUnit = TimeUnit.WEEKS) -> Features:
    ids, days, amounts = read_cdnow_sample()
    end = np.datetime64(OBSERVATION_END, "D").astype(np.int64)
    customers, customer = np.unique(ids, return_inverse=True)
    observed = days <= end
    customer, days, amounts = customer[observed], days[observed], amounts[observed]

    # one entry per (customer, purchase day), each customer's days one run in day order
    order = np.lexsort((days, customer))
    customer, days, amounts = customer[order], days[order], amounts[order]
    new_day = np.ones(len(days), dtype=bool)
    new_day[1:] = (np.diff(customer) != 0) | (np.diff(days) != 0)
    starts = np.flatnonzero(new_day)
    day_customer, day, day_spend = customer[starts], days[starts], np.add.reduceat(amounts, starts)
    runs = np.flatnonzero(np.diff(day_customer, prepend=-1) != 0)
    run_ends = np.append(runs[1:], len(day)) - 1

    n = len(customers)
    purchases = np.bincount(day_customer, minlength=n)
    total_spend = np.bincount(day_customer, weights=day_spend, minlength=n)
    first_day, last_day, first_spend = np.full(n, end), np.full(n, end), np.zeros(n)
    first_day[day_customer[runs]] = day[runs]
    first_spend[day_customer[runs]] = day_spend[runs]
    last_day[day_customer[run_ends]] = day[run_ends]
    frequency = np.maximum(purchases - 1, 0)
    unit = _DAYS_PER_UNIT[time_unit]
    return features_of(
        frequency=frequency,
        recency=(last_day - first_day) / unit,
        T=(end - first_day) / unit,
        monetary=np.divide(
            total_spend - first_spend, frequency, out=np.zeros(n), where=frequency > 0
        ),
        purchases=purchases,
        total_spend=total_spend,
        time_unit=time_unit,
        ids=customers,
    )


def read_cdnow_summary() -> dict[str, np.ndarray]:
    """Fader & Hardie's per-customer summary (x, t_x, T, zbar; rounded to 2 decimals)."""
    with CDNOW_SUMMARY.open(newline="") as file:
        rows = list(csv.DictReader(file))
    return {column: np.array([float(row[column]) for row in rows]) for column in rows[0]}


def features_of(
    *,
    frequency,
    recency,
    T,
    monetary=None,
    purchases=None,
    total_spend=None,
    time_unit: TimeUnit = TimeUnit.WEEKS,
    ids=None,
) -> Features:
    """Features from purchase histories; by default everyone has bought (purchases =
    frequency + 1), ``monetary`` is 10 and the total spend follows from both."""
    frequency = np.asarray(frequency, dtype=float)
    n = len(frequency)
    monetary = np.full(n, 10.0) if monetary is None else np.asarray(monetary, dtype=float)
    purchases = frequency + 1 if purchases is None else np.asarray(purchases, dtype=float)
    if total_spend is None:
        total_spend = np.where(purchases > 0, monetary * np.maximum(purchases, 1), 0.0)
    ids = np.arange(1, n + 1) if ids is None else ids
    unit_days = _DAYS_PER_UNIT[time_unit]
    recency, T = np.asarray(recency, dtype=float), np.asarray(T, dtype=float)
    bought = purchases > 0
    return Features(
        customer_ids=np.array([uuid.UUID(int=int(i)) for i in ids], dtype=object),
        frequency=np.where(bought, frequency, 0.0),
        recency=np.where(bought, recency, 0.0),
        T=np.where(bought, T, 0.0),
        monetary=np.where(bought, monetary, 0.0),
        purchases=purchases,
        total_spend=np.asarray(total_spend, dtype=float),
        days_since_last_activity=np.where(bought, (T - recency) * unit_days, np.nan),
        interactions=purchases.copy(),
        nps_mean=np.full(n, np.nan),
        csat_mean=np.full(n, np.nan),
        time_unit=time_unit,
        currency="USD",
    )
