"""Acquisition cohorts by periods since acquisition: one statement per report."""

from datetime import datetime
from itertools import groupby

import sqlalchemy as sa

from crm_api.analytics.figures import pick_currency
from crm_api.analytics.schemas import Cohort, CohortMetric, CohortPeriod, CohortReport
from crm_api.core.db import Compiled, Queryable
from crm_api.core.errors import ValidationFailed

# Whole periods from the cohort's start `s` to the period holding instant `t` (UTC session).
_OFFSET = {
    CohortPeriod.MONTH: "((extract(year FROM {t}) - extract(year FROM {s})) * 12"
    " + extract(month FROM {t}) - extract(month FROM {s}))::int",
    CohortPeriod.WEEK: "((date_trunc('week', {t})::date - {s}::date) / 7)",
}

_COHORT = """cohort AS (
    SELECT c.id, date_trunc('{period}', c.created_at) AS start
    FROM customers c
    WHERE c.deleted_at IS NULL
      AND c.created_at >= coalesce(:start, '-infinity') AND c.created_at < :end
)"""

_PARAMS = (
    sa.bindparam("start", type_=sa.DateTime(timezone=True)),
    sa.bindparam("end", type_=sa.DateTime(timezone=True)),
    sa.bindparam("currency", type_=sa.Text),
)


def _currencies(period: CohortPeriod) -> Compiled:
    return Compiled.of(
        sa.text(
            f"""WITH {_COHORT.format(period=period)}
            SELECT coalesce(array_agg(DISTINCT i.currency ORDER BY i.currency), '{{}}')
            FROM cohort k JOIN interactions i ON i.customer_id = k.id
            WHERE i.type IN ('purchase', 'refund')
              AND i.occurred_at >= k.start AND i.occurred_at < :end"""
        ).bindparams(*_PARAMS[:2])
    )


def _matrix(period: CohortPeriod) -> Compiled:
    offset = _OFFSET[period]
    return Compiled.of(
        sa.text(
            f"""WITH {_COHORT.format(period=period)},
            sizes AS (SELECT start, count(*) AS size FROM cohort GROUP BY start),
            cells AS (
                SELECT k.start, {offset.format(t="i.occurred_at", s="k.start")} AS k,
                    count(DISTINCT i.customer_id) FILTER (WHERE i.type = 'purchase') AS buyers,
                    sum(CASE i.type WHEN 'purchase' THEN i.amount ELSE -i.amount END)
                        FILTER (WHERE i.currency = :currency) AS revenue
                FROM cohort k JOIN interactions i ON i.customer_id = k.id
                WHERE i.type IN ('purchase', 'refund')
                  AND i.occurred_at >= k.start AND i.occurred_at < :end
                GROUP BY 1, 2
            )
            SELECT z.start, z.size, g.k,
                coalesce(cells.buyers, 0) AS buyers, coalesce(cells.revenue, 0) AS revenue
            FROM sizes z
            CROSS JOIN LATERAL generate_series(
                0, {offset.format(t="(:end - interval '1 microsecond')", s="z.start")}) AS g(k)
            LEFT JOIN cells ON cells.start = z.start AND cells.k = g.k
            ORDER BY z.start, g.k"""
        ).bindparams(*_PARAMS)
    )


_CURRENCIES = {p: _currencies(p) for p in CohortPeriod}
_MATRIX = {p: _matrix(p) for p in CohortPeriod}


async def cohorts(
    conn: Queryable,
    *,
    period: CohortPeriod,
    metric: CohortMetric,
    start: datetime | None,
    end: datetime,
    currency: str | None = None,
) -> CohortReport:
    if start is not None and end <= start:
        raise ValidationFailed.for_field("to", "must be after `from`", location="query")
    scope = {"start": start, "end": end}
    if metric == CohortMetric.REVENUE:
        currency = pick_currency(await _CURRENCIES[period].fetchval(conn, **scope), currency)
    else:
        currency = None
    rows = await _MATRIX[period].fetch(conn, **scope, currency=currency)
    report = []
    for (cohort_start, size), cells in groupby(rows, key=lambda row: (row["start"], row["size"])):
        cells = list(cells)
        by_retention = metric == CohortMetric.RETENTION
        report.append(
            Cohort(
                start=cohort_start,
                size=size,
                retention=[c["buyers"] / size for c in cells] if by_retention else None,
                revenue=None if by_retention else [int(c["revenue"]) for c in cells],
            )
        )
    return CohortReport(
        period=period, metric=metric, start=start, end=end, currency=currency, cohorts=report
    )
