"""Customer KPIs for a period: a fixed few set-based statements on one snapshot, ratios taken
in Python."""

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
from crm_api.core.db import Compiled, Connection
from crm_api.core.errors import ValidationFailed
from crm_api.core.money import minor_per_major
from crm_api.customers.models import customers as c
from crm_api.interactions.models import interactions as i
from crm_api.interactions.schemas import InteractionType
from crm_api.scoring.models import customer_scores as s
from crm_api.scoring.models import scoring_runs as r
from crm_api.scoring.protocol import ScorerKind
from crm_api.scoring.service import latest_run
from crm_api.segments import service as segments
from crm_api.segments.models import segment_members as m

# The parameters every statement here draws on, in SQL text and in expressions alike.
_start = sa.bindparam("start", type_=sa.DateTime(timezone=True))
_end = sa.bindparam("end", type_=sa.DateTime(timezone=True))
_segment_id = sa.bindparam("segment_id", type_=sa.Uuid)
_PARAMS = (_start, _end, _segment_id, sa.bindparam("currency", type_=sa.Text))

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


# Who each customer was in the period: one pass over the timeline up to its end, grouped
# per customer with only the per-customer facts the counts need (money is summed apart, in
# ``_money``: every aggregate here runs once per row of ~all history).
_FIGURES = _statement(
    f"""WITH {_POPULATION},
    timeline AS (
        SELECT i.customer_id,
            bool_or(i.occurred_at >= :start) AS active,
            count(*) FILTER (WHERE i.type = 'purchase' AND i.occurred_at >= :start) AS purchases,
            bool_or(i.type = 'purchase' AND i.occurred_at < :start) AS bought_before,
            bool_or(i.type = 'purchase' AND i.currency = :currency) AS buyer_to_date
        FROM interactions i
        WHERE i.occurred_at < :end AND (i.occurred_at >= :start OR i.type = 'purchase')
        GROUP BY i.customer_id
    ),
    stages AS (
        SELECT t.customer_id,
            bool_or(t.to_stage = 'churned' AND t.occurred_at >= :start) AS churned,
            (array_agg(t.to_stage ORDER BY t.occurred_at DESC, t.id DESC)
                FILTER (WHERE t.occurred_at < :start))[1] = 'churned' AS churned_at_start
        FROM lifecycle_transitions t
        WHERE t.occurred_at < :end
        GROUP BY t.customer_id
    ),
    facts AS (
        SELECT p.created_at >= :start AND p.created_at < :end AS is_new,
            p.created_at < :end AND NOT coalesce(x.bought_before, false) AS prospect,
            coalesce(x.bought_before, false)
                AND NOT coalesce(st.churned_at_start, false) AS at_start,
            x.active, x.purchases, x.buyer_to_date, st.churned
        FROM population p
        LEFT JOIN timeline x ON x.customer_id = p.id
        LEFT JOIN stages st ON st.customer_id = p.id
    )
    SELECT
        count(*) FILTER (WHERE is_new) AS new_customers,
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
        count(*) FILTER (WHERE buyer_to_date) AS buyers_to_date
    FROM facts""",
    "start",
    "end",
    "segment_id",
    "currency",
)

# New customers' acquisition spend per currency.
_ACQUISITION = _statement(
    f"""WITH {_POPULATION}
    SELECT p.acquisition_currency AS currency, sum(p.acquisition_cost) AS spend
    FROM population p
    WHERE p.acquisition_currency IS NOT NULL
      AND p.created_at >= :start AND p.created_at < :end
    GROUP BY p.acquisition_currency""",
    "start",
    "end",
    "segment_id",
)

_MONETARY = (InteractionType.PURCHASE.value, InteractionType.REFUND.value)


def _counted(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the customer is live and, when a segment is given, one of its current members."""
    return sa.and_(
        sa.exists().where(c.c.id == customer_id, c.c.deleted_at.is_(None)),
        sa.or_(
            _segment_id.is_(None),
            customer_id.in_(sa.select(m.c.customer_id).where(m.c.segment_id == _segment_id)),
        ),
    )


def _money() -> sa.Select[Any]:
    """SQL: per currency (null for facts without money, such as most feedback), the sums
    over the population's interactions: the period's orders, sales, refunds, feedback
    answers and profitability, and the net revenue up to the period's end. One parallel
    pass with no per-customer grouping; a currency with period facts is one the period
    holds."""
    rows = (
        sa.select(
            i.c.currency,
            i.c.type,
            i.c.amount,
            i.c.nps,
            i.c.csat,
            (i.c.occurred_at >= _start).label("in_period"),
            *profitability.signed_figures(),
        )
        .where(
            i.c.occurred_at < _end,
            sa.or_(i.c.currency.isnot(None), i.c.nps.isnot(None), i.c.csat.isnot(None)),
            # Before the period only the net revenue to date counts.
            sa.or_(i.c.occurred_at >= _start, *(i.c.type == kind for kind in _MONETARY)),
            _counted(i.c.customer_id),
        )
        .subquery("facts")
    )
    f = rows.c
    purchase = f.type == InteractionType.PURCHASE.value
    refund = f.type == InteractionType.REFUND.value

    def count(*when: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.func.count().filter(sa.and_(*when))

    def total(column: sa.ColumnElement[Any], *when: sa.ColumnElement[bool]) -> Any:
        return sa.func.coalesce(sa.func.sum(column).filter(sa.and_(*when)), 0)

    return sa.select(
        f.currency,
        count(f.in_period).label("period_facts"),
        count(f.in_period, purchase).label("orders"),
        total(f.amount, f.in_period, purchase).label("sales"),
        total(f.amount, f.in_period, refund).label("refunds"),
        total(sa.case((refund, -f.amount), else_=f.amount), purchase | refund).label("net_to_date"),
        sa.func.count(f.nps).filter(f.in_period).label("nps_answers"),
        count(f.in_period, f.nps >= 9).label("promoters"),
        count(f.in_period, f.nps <= 6).label("detractors"),
        sa.func.count(f.csat).filter(f.in_period).label("csat_answers"),
        count(f.in_period, f.csat >= 4).label("satisfied"),
        *profitability.sums(rows, when=f.in_period),
    ).group_by(f.currency)


_money_select = _money()
_MONEY = Compiled.of(_money_select)
_MONEY_FIGURES = tuple(_money_select.selected_columns.keys())[1:]  # all but the currency
_FEEDBACK = ("nps_answers", "promoters", "detractors", "csat_answers", "satisfied")
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


async def kpis(
    conn: Connection,
    principal: Principal,
    *,
    start: datetime,
    end: datetime,
    segment_id: uuid.UUID | None = None,
    currency: str | None = None,
) -> KpiReport:
    if end <= start:
        raise ValidationFailed.for_field("to", "must be after `from`", location="query")
    scope: dict[str, Any] = {"start": start, "end": end, "segment_id": segment_id}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # Every figure from one snapshot. The passes group ~all history in memory rather
        # than on disk, and JIT compilation costs more than it saves on a query run once.
        await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off")
        if segment_id is not None:
            await segments.get_segment(conn, principal, segment_id)  # 404 for an unknown one
        # The period's campaign costs are money of the period as much as its purchases are.
        spent = await campaigns.started_in(conn, start=start, end=end, segment_id=segment_id)
        money = {r["currency"]: r for r in await _MONEY.fetch(conn, **scope)}
        acquired = {r["currency"]: r["spend"] for r in await _ACQUISITION.fetch(conn, **scope)}
        held = {code for code, r in money.items() if code is not None and r["period_facts"]}
        currency = pick_currency(sorted(held | acquired.keys() | spent.keys()), currency)
        f = await _FIGURES.fetchrow(conn, **scope, currency=currency)
        predicted = await _PREDICTED_CLV.fetchrow(conn, segment_id=segment_id)
    assert f is not None
    rows = money.values()
    # Feedback counts in every currency, or none.
    feedback = {name: sum(r[name] for r in rows) for name in _FEEDBACK}
    # The chosen currency's sums; zeros when only acquisition or campaigns hold it.
    sums = None if currency is None else money.get(currency, dict.fromkeys(_MONEY_FIGURES, 0))
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
        cac=None if sums is None else minor_units(acquired.get(currency, 0), f["new_customers"]),
        prospects=f["prospects"],
        conversion_rate=ratio(f["converted"], f["prospects"]),
        customers_at_start=f["customers_at_start"],
        churn_rate=ratio(f["lost"], f["customers_at_start"]),
        retention_rate=ratio(f["retained"], f["customers_at_start"]),
        purchasers=f["purchasers"],
        repeat_purchase_rate=ratio(f["repeat_purchasers"], f["purchasers"]),
        purchase_frequency=ratio(f["purchases"], f["purchasers"]),
        orders=0 if sums is None else sums["orders"],
        average_order_value=None if sums is None else minor_units(sums["sales"], sums["orders"]),
        revenue=None if sums is None else int(sums["sales"] - sums["refunds"]),
        **profitability.figures(sums),
        historical_clv=(
            None if sums is None else minor_units(sums["net_to_date"], f["buyers_to_date"])
        ),
        predicted_clv_mean=clv_mean,
        predicted_clv_median=clv_median,
        predicted_clv_run_id=run_id,
        nps=ratio(100 * (feedback["promoters"] - feedback["detractors"]), feedback["nps_answers"]),
        csat=ratio(100 * feedback["satisfied"], feedback["csat_answers"]),
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
