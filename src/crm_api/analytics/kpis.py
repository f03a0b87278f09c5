"""Customer KPIs for a period: a fixed five set-based statements, ratios taken in Python."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crm_api.analytics import profitability
from crm_api.analytics.figures import minor_units, pick_currency, ratio
from crm_api.analytics.schemas import KpiReport
from crm_api.campaigns import service as campaigns
from crm_api.campaigns.schemas import CampaignTotals
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Queryable
from crm_api.core.errors import ValidationFailed
from crm_api.core.money import minor_per_major
from crm_api.customers.models import customers as c
from crm_api.interactions.models import interactions as i
from crm_api.scoring.models import customer_scores as s
from crm_api.scoring.models import scoring_runs as r
from crm_api.scoring.protocol import ScorerKind
from crm_api.scoring.service import latest_run
from crm_api.segments import service as segments
from crm_api.segments.models import segment_members as m

_PARAMS = (
    sa.bindparam("start", type_=sa.DateTime(timezone=True)),
    sa.bindparam("end", type_=sa.DateTime(timezone=True)),
    sa.bindparam("segment_id", type_=sa.Uuid),
    sa.bindparam("currency", type_=sa.Text),
)

# Live customers, restricted to a segment's current members when one is given.
_POPULATION = """population AS (
    SELECT c.id, c.created_at, c.acquisition_cost, c.acquisition_currency
    FROM customers c
    WHERE c.deleted_at IS NULL
      AND (CAST(:segment_id AS uuid) IS NULL OR c.id IN (
          SELECT m.customer_id FROM segment_members m
          WHERE m.segment_id = CAST(:segment_id AS uuid)))
)"""


def _statement(sql: str, *names: str) -> Compiled:
    return Compiled.of(sa.text(sql).bindparams(*(p for p in _PARAMS if p.key in names)))


_CURRENCIES = _statement(
    f"""WITH {_POPULATION}
    SELECT coalesce(array_agg(found.currency ORDER BY found.currency), '{{}}') FROM (
        SELECT i.currency FROM interactions i JOIN population p ON p.id = i.customer_id
        WHERE i.currency IS NOT NULL  -- purchases, refunds and service costs
          AND i.occurred_at >= :start AND i.occurred_at < :end
        UNION
        SELECT p.acquisition_currency FROM population p
        WHERE p.acquisition_currency IS NOT NULL
          AND p.created_at >= :start AND p.created_at < :end
    ) found""",
    "start",
    "end",
    "segment_id",
)

_FIGURES = _statement(
    f"""WITH {_POPULATION},
    timeline AS (
        SELECT i.customer_id,
            bool_or(i.occurred_at >= :start) AS active,
            count(*) FILTER (WHERE i.type = 'purchase' AND i.occurred_at >= :start) AS purchases,
            bool_or(i.type = 'purchase' AND i.occurred_at < :start) AS bought_before,
            count(*) FILTER (WHERE i.type = 'purchase' AND i.occurred_at >= :start
                             AND i.currency = :currency) AS orders,
            sum(i.amount) FILTER (WHERE i.type = 'purchase' AND i.occurred_at >= :start
                                  AND i.currency = :currency) AS sales,
            sum(i.amount) FILTER (WHERE i.type = 'refund' AND i.occurred_at >= :start
                                  AND i.currency = :currency) AS refunds,
            sum(CASE i.type WHEN 'purchase' THEN i.amount ELSE -i.amount END)
                FILTER (WHERE i.type IN ('purchase', 'refund')
                        AND i.currency = :currency) AS net_to_date,
            bool_or(i.type = 'purchase' AND i.currency = :currency) AS buyer_to_date,
            count(i.nps) FILTER (WHERE i.occurred_at >= :start) AS nps_answers,
            count(*) FILTER (WHERE i.nps >= 9 AND i.occurred_at >= :start) AS promoters,
            count(*) FILTER (WHERE i.nps <= 6 AND i.occurred_at >= :start) AS detractors,
            count(i.csat) FILTER (WHERE i.occurred_at >= :start) AS csat_answers,
            count(*) FILTER (WHERE i.csat >= 4 AND i.occurred_at >= :start) AS satisfied
        FROM interactions i JOIN population p ON p.id = i.customer_id
        WHERE i.occurred_at < :end
        GROUP BY i.customer_id
    ),
    stages AS (
        SELECT t.customer_id,
            bool_or(t.to_stage = 'churned' AND t.occurred_at >= :start) AS churned,
            (array_agg(t.to_stage ORDER BY t.occurred_at DESC, t.id DESC)
                FILTER (WHERE t.occurred_at < :start))[1] = 'churned' AS churned_at_start
        FROM lifecycle_transitions t JOIN population p ON p.id = t.customer_id
        WHERE t.occurred_at < :end
        GROUP BY t.customer_id
    ),
    facts AS (
        SELECT p.created_at >= :start AND p.created_at < :end AS is_new,
            p.created_at < :end AND NOT coalesce(x.bought_before, false) AS prospect,
            coalesce(x.bought_before, false)
                AND NOT coalesce(st.churned_at_start, false) AS at_start,
            p.acquisition_cost, p.acquisition_currency, x.*, st.churned
        FROM population p
        LEFT JOIN timeline x ON x.customer_id = p.id
        LEFT JOIN stages st ON st.customer_id = p.id
    )
    SELECT
        count(*) FILTER (WHERE is_new) AS new_customers,
        coalesce(sum(acquisition_cost) FILTER (
            WHERE is_new AND acquisition_currency = :currency), 0) AS acquisition_spend,
        count(*) FILTER (WHERE active) AS active_customers,
        count(*) FILTER (WHERE churned) AS churned_customers,
        count(*) FILTER (WHERE prospect) AS prospects,
        count(*) FILTER (WHERE prospect AND purchases > 0) AS converted,
        count(*) FILTER (WHERE at_start) AS customers_at_start,
        count(*) FILTER (WHERE at_start AND churned) AS lost,
        count(*) FILTER (WHERE at_start AND purchases > 0) AS retained,
        count(*) FILTER (WHERE purchases > 0) AS purchasers,
        count(*) FILTER (WHERE purchases > 1) AS repeat_purchasers,
        coalesce(sum(purchases), 0) AS purchases,
        coalesce(sum(orders), 0) AS orders,
        coalesce(sum(sales), 0) AS sales,
        coalesce(sum(refunds), 0) AS refunds,
        coalesce(sum(net_to_date), 0) AS net_to_date,
        count(*) FILTER (WHERE buyer_to_date) AS buyers_to_date,
        coalesce(sum(nps_answers), 0) AS nps_answers,
        coalesce(sum(promoters), 0) AS promoters,
        coalesce(sum(detractors), 0) AS detractors,
        coalesce(sum(csat_answers), 0) AS csat_answers,
        coalesce(sum(satisfied), 0) AS satisfied
    FROM facts""",
    "start",
    "end",
    "segment_id",
    "currency",
)

_segment_id = sa.bindparam("segment_id", type_=sa.Uuid)


def _counted(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the customer is live and, when a segment is given, one of its current members."""
    return sa.and_(
        sa.exists().where(c.c.id == customer_id, c.c.deleted_at.is_(None)),
        sa.or_(
            _segment_id.is_(None),
            customer_id.in_(sa.select(m.c.customer_id).where(m.c.segment_id == _segment_id)),
        ),
    )


_PREDICTED_CLV = Compiled.of(
    sa.select(
        r.c.id,
        r.c.currency,
        sa.func.avg(s.c.score).label("mean"),
        sa.func.percentile_cont(0.5).within_group(s.c.score).label("median"),
    )
    .join(r, r.c.id == s.c.run_id)
    .where(
        s.c.run_id == latest_run(ScorerKind.CLV),
        s.c.score.isnot(None),
        _counted(s.c.customer_id),
    )
    .group_by(r.c.id, r.c.currency)
)
_PROFITABILITY = Compiled.of(
    profitability.totals(
        _counted(i.c.customer_id),
        i.c.currency == sa.bindparam("currency", type_=sa.Text),
        i.c.occurred_at >= sa.bindparam("start", type_=sa.DateTime(timezone=True)),
        i.c.occurred_at < sa.bindparam("end", type_=sa.DateTime(timezone=True)),
    )
)


async def kpis(
    conn: Queryable,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    segment_id: uuid.UUID | None = None,
    currency: str | None = None,
) -> KpiReport:
    if end <= start:
        raise ValidationFailed.for_field("to", "must be after `from`", location="query")
    if segment_id is not None:
        await segments.get_segment(conn, principal, segment_id)  # 404 for an unknown one
    scope: dict[str, Any] = {"start": start, "end": end, "segment_id": segment_id}
    # The period's campaign costs are money of the period as much as its purchases are.
    spent = await campaigns.started_in(conn, start=start, end=end, segment_id=segment_id)
    found = await _CURRENCIES.fetchval(conn, **scope)
    currency = pick_currency(sorted({*found, *spent}), currency)
    f = await _FIGURES.fetchrow(conn, **scope, currency=currency)
    assert f is not None
    predicted = await _PREDICTED_CLV.fetchrow(conn, segment_id=segment_id)
    money = currency is not None
    sums = await _PROFITABILITY.fetchrow(conn, **scope, currency=currency) if money else None
    if predicted is not None and predicted["currency"] == currency:
        per_major = minor_per_major(predicted["currency"])
        clv_mean = minor_units(Decimal(predicted["mean"]) * per_major)
        clv_median = minor_units(Decimal(predicted["median"]) * per_major)
        run_id = predicted["id"]
    else:
        clv_mean = clv_median = run_id = None
    return KpiReport(
        start=start,
        end=end,
        segment_id=segment_id,
        currency=currency,
        new_customers=f["new_customers"],
        active_customers=f["active_customers"],
        churned_customers=f["churned_customers"],
        cac=minor_units(f["acquisition_spend"], f["new_customers"]) if money else None,
        prospects=f["prospects"],
        conversion_rate=ratio(f["converted"], f["prospects"]),
        customers_at_start=f["customers_at_start"],
        churn_rate=ratio(f["lost"], f["customers_at_start"]),
        retention_rate=ratio(f["retained"], f["customers_at_start"]),
        purchasers=f["purchasers"],
        repeat_purchase_rate=ratio(f["repeat_purchasers"], f["purchasers"]),
        purchase_frequency=ratio(f["purchases"], f["purchasers"]),
        orders=f["orders"],
        average_order_value=minor_units(f["sales"], f["orders"]) if money else None,
        revenue=int(f["sales"] - f["refunds"]) if money else None,
        **profitability.figures(sums),
        historical_clv=minor_units(f["net_to_date"], f["buyers_to_date"]) if money else None,
        predicted_clv_mean=clv_mean,
        predicted_clv_median=clv_median,
        predicted_clv_run_id=run_id,
        nps=ratio(100 * (f["promoters"] - f["detractors"]), f["nps_answers"]),
        csat=ratio(100 * f["satisfied"], f["csat_answers"]),
        **_campaign_figures(spent, currency),
    )


def _campaign_figures(spent: dict[str, CampaignTotals], currency: str | None) -> dict[str, Any]:
    if currency is None:
        return {"campaign_cost": None, "campaign_revenue": None, "campaign_roi": None}
    totals = spent.get(currency)
    if totals is None:  # no campaign started in the period in this currency
        return {"campaign_cost": 0, "campaign_revenue": 0, "campaign_roi": None}
    return {
        "campaign_cost": totals.cost,
        "campaign_revenue": totals.revenue,
        "campaign_roi": totals.roi,
    }
