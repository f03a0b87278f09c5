"""Customer KPIs for a period: a fixed few set-based statements on one snapshot, ratios taken
in Python."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from crm_api.analytics import daily_totals, profitability
from crm_api.analytics.figures import minor_units, pick_currency, ratio
from crm_api.analytics.models import DAILY_COUNTS, interaction_daily_totals
from crm_api.analytics.schemas import KpiReport
from crm_api.campaigns import service as campaigns
from crm_api.campaigns.schemas import CampaignTotals
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection, Record
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


def _in_segment(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: no segment is given, or the customer is one of its current members."""
    return sa.or_(
        _segment_id.is_(None),
        customer_id.in_(sa.select(m.c.customer_id).where(m.c.segment_id == _segment_id)),
    )


def _deleted(customer_id: sa.ColumnElement[Any]) -> sa.Exists:
    """SQL: the customer is deleted (found among the few that are, by their index)."""
    return sa.exists().where(c.c.id == customer_id, c.c.deleted_at.isnot(None))


def _counted(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the customer is not deleted and is in the segment when one is given."""
    return sa.and_(~_deleted(customer_id), _in_segment(customer_id))


def _sql(condition: sa.ColumnElement[bool], customer_id: str) -> str:
    """``condition`` on the customer id ``customer_id`` as text for the statements written
    in SQL; the generic compiler keeps its parameters as ``:name``, as sa.text has them."""
    return f"({condition(sa.literal_column(customer_id)).compile()})"


def _statement(sql: str, *names: str) -> Compiled:
    return Compiled.of(sa.text(sql).bindparams(*(p for p in _PARAMS if p.key in names)))


# Who each customer was in the period: one pass over the timeline up to its end, grouped
# per customer with only the per-customer facts the counts need (money is summed apart:
# every aggregate here runs once per row of most of history). Three of the facts are bits
# of one aggregate, which costs far less than three. The pass starts from the timeline,
# not from the customers, so the customers without interactions or transitions (and what
# the period's start and end say of them, `_JOINED`) are counted apart; a customer's
# creation only matters for telling prospects, whose purchases before the period are
# searched among the customers created after it.
_ACTIVE, _BOUGHT_BEFORE, _BUYER_TO_DATE = 1, 2, 4
_FIGURES = _statement(
    f"""WITH timeline AS (
        SELECT i.customer_id,
            bit_or(CASE WHEN i.occurred_at >= :start THEN {_ACTIVE} ELSE 0 END
                | CASE WHEN i.type <> 'purchase' THEN 0
                       WHEN i.occurred_at < :start THEN {_BOUGHT_BEFORE} ELSE 0 END
                | CASE WHEN i.type = 'purchase' AND i.currency = :currency
                       THEN {_BUYER_TO_DATE} ELSE 0 END) AS seen,
            count(*) FILTER (WHERE i.type = 'purchase' AND i.occurred_at >= :start) AS purchases
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
        SELECT coalesce(x.seen, 0) AS seen, coalesce(x.purchases, 0) AS purchases,
            coalesce(x.seen & {_BOUGHT_BEFORE} <> 0, false)
                AND NOT coalesce(st.churned_at_start, false) AS at_start,
            coalesce(st.churned, false) AS churned,
            coalesce(x.customer_id, st.customer_id) IN (
                SELECT c.id FROM customers c WHERE c.created_at >= :end) AS created_after
        FROM timeline x
        FULL JOIN stages st ON st.customer_id = x.customer_id
        WHERE {_sql(_counted, "coalesce(x.customer_id, st.customer_id)")}
    )
    SELECT
        count(*) FILTER (WHERE seen & {_ACTIVE} <> 0) AS active_customers,
        count(*) FILTER (WHERE churned) AS churned_customers,
        count(*) FILTER (WHERE seen & {_BOUGHT_BEFORE} <> 0 AND NOT created_after)
            AS bought_before_created,
        count(*) FILTER (WHERE seen & {_BOUGHT_BEFORE} = 0 AND NOT created_after
            AND purchases > 0) AS converted,
        count(*) FILTER (WHERE at_start) AS customers_at_start,
        count(*) FILTER (WHERE at_start AND churned) AS lost,
        count(*) FILTER (WHERE at_start AND purchases > 0) AS retained,
        count(*) FILTER (WHERE purchases > 0) AS purchasers,
        count(*) FILTER (WHERE purchases > 1) AS repeat_purchasers,
        coalesce(sum(purchases), 0) AS purchases,
        count(*) FILTER (WHERE seen & {_BUYER_TO_DATE} <> 0) AS buyers_to_date
    FROM facts""",
    "start",
    "end",
    "segment_id",
    "currency",
)

# Per acquisition currency (null for none), the live customers created in the period, and
# before its end, and the new ones' acquisition spend.
_JOINED = _statement(
    f"""SELECT c.acquisition_currency AS currency,
        count(*) FILTER (WHERE c.created_at >= :start AND c.created_at < :end) AS new_customers,
        count(*) FILTER (WHERE c.created_at < :end) AS created_before_end,
        sum(c.acquisition_cost) FILTER (WHERE c.created_at >= :start AND c.created_at < :end)
            AS spend
    FROM customers c
    WHERE c.deleted_at IS NULL AND {_sql(_in_segment, "c.id")}
    GROUP BY c.acquisition_currency""",
    "start",
    "end",
    "segment_id",
)

_MONETARY = (InteractionType.PURCHASE.value, InteractionType.REFUND.value)


def _interactions(*where: sa.ColumnElement[bool], sign: int = 1) -> sa.Select[Any]:
    """SQL: the daily totals' figures of each counted interaction up to the period's end
    meeting ``where``; before the period only purchases and refunds (the net revenue to
    date is all that counts there)."""
    return sa.select(
        i.c.currency, (i.c.occurred_at >= _start).label("in_period"), *daily_totals.figures(sign)
    ).where(
        i.c.occurred_at < _end,
        daily_totals.WITH_FIGURES,
        sa.or_(i.c.occurred_at >= _start, *(i.c.type == kind for kind in _MONETARY)),
        *where,
    )


# The split of a period for the daily totals: whole UTC days from `whole_from` to
# `whole_to` come from the totals, as do the days before `edge_from` (for the net revenue
# to date); the partial days in between and after are read raw.
_edge_from = sa.bindparam("edge_from", type_=sa.DateTime(timezone=True))
_whole_from = sa.bindparam("whole_from", type_=sa.DateTime(timezone=True))
_whole_to = sa.bindparam("whole_to", type_=sa.DateTime(timezone=True))
_watermark = sa.bindparam("watermark", type_=sa.BigInteger)


def _from_totals() -> sa.CompoundSelect:
    """SQL: the population's figures as the union of the daily totals of whole days, the
    interactions of the partial days and of those not rolled up yet, and, taken back out,
    the rolled-up interactions of deleted customers. Without a segment only: the totals
    are everyone's."""
    t = interaction_daily_totals.c

    def in_whole_days(moment: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.or_(moment < _edge_from, sa.and_(moment >= _whole_from, moment < _whole_to))

    def whole_day(day: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.or_(
            day < daily_totals.day_of(_edge_from),
            sa.and_(day >= daily_totals.day_of(_whole_from), day < daily_totals.day_of(_whole_to)),
        )

    rolled = daily_totals.rolled(_watermark)
    return sa.union_all(
        sa.select(
            t.currency,
            (t.day >= daily_totals.day_of(_whole_from)).label("in_period"),
            *(t[name] for name in daily_totals.FIGURES),
        ).where(whole_day(t.day)),
        _interactions(
            sa.or_(sa.not_(in_whole_days(i.c.occurred_at)), sa.not_(rolled)),
            _counted(i.c.customer_id),
        ),
        _interactions(
            in_whole_days(i.c.occurred_at),
            rolled,
            _deleted(i.c.customer_id),
            sign=-1,
        ),
    )


def _money(parts: sa.Select[Any] | sa.CompoundSelect) -> sa.Select[Any]:
    """SQL: per currency (null for facts without money, such as most feedback), the sums
    over ``parts`` (rows of the daily totals' figures): the period's orders, sales,
    refunds, feedback answers and profitability, and the net revenue up to the period's
    end. A currency with period facts is one the period holds."""
    part = parts.subquery("parts")
    f = sa.select(part, (part.c.sales - part.c.refunds).label("revenue")).subquery("facts")

    def total(column: sa.ColumnElement[Any], in_period: bool = True) -> Any:
        summed = sa.func.sum(column)
        return sa.func.coalesce(summed.filter(f.c.in_period) if in_period else summed, 0)

    return sa.select(
        f.c.currency,
        *(
            total(f.c[name]).cast(sa.BigInteger).label(_LABELS.get(name, name))
            for name in DAILY_COUNTS
        ),
        total(f.c.sales).label("sales"),
        total(f.c.refunds).label("refunds"),
        total(f.c.revenue, in_period=False).label("net_to_date"),
        *profitability.sums(f, when=f.c.in_period),
    ).group_by(f.c.currency)


_LABELS = {"facts": "period_facts"}  # the daily totals' names the report's formulas rename
_money_live = _money(_interactions(_counted(i.c.customer_id)))
_MONEY_LIVE = Compiled.of(_money_live)
_MONEY_FROM_TOTALS = Compiled.of(_money(_from_totals()))
_MONEY_FIGURES = tuple(_money_live.selected_columns.keys())[1:]  # all but the currency
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
        money = {r["currency"]: r for r in await _money_rows(conn, scope)}
        joined = await _JOINED.fetch(conn, **scope)
        acquired = {r["currency"]: r["spend"] for r in joined if r["spend"] is not None}
        held = {code for code, r in money.items() if code is not None and r["period_facts"]}
        currency = pick_currency(sorted(held | acquired.keys() | spent.keys()), currency)
        f = await _FIGURES.fetchrow(conn, **scope, currency=currency)
        predicted = await _PREDICTED_CLV.fetchrow(conn, segment_id=segment_id)
    assert f is not None
    new_customers = sum(r["new_customers"] for r in joined)
    prospects = sum(r["created_before_end"] for r in joined) - f["bought_before_created"]
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
        new_customers=new_customers,
        active_customers=f["active_customers"],
        churned_customers=f["churned_customers"],
        cac=None if sums is None else minor_units(acquired.get(currency, 0), new_customers),
        prospects=prospects,
        conversion_rate=ratio(f["converted"], prospects),
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


async def _money_rows(conn: Connection, scope: dict[str, Any]) -> list[Record]:
    """The money statement's rows: from the daily totals when they have been rolled up
    and no segment narrows the population, else from the interactions alone."""
    watermark = await daily_totals.watermark(conn)
    if watermark is None or scope["segment_id"] is not None:
        return await _MONEY_LIVE.fetch(conn, **scope)
    start, end = scope["start"].astimezone(UTC), scope["end"].astimezone(UTC)
    edge_from = start.replace(hour=0, minute=0, second=0, microsecond=0)
    whole_from = edge_from if edge_from == start else edge_from + timedelta(days=1)
    whole_to = max(end.replace(hour=0, minute=0, second=0, microsecond=0), whole_from)
    return await _MONEY_FROM_TOTALS.fetch(
        conn,
        **scope,
        watermark=watermark,
        edge_from=edge_from,
        whole_from=whole_from,
        whole_to=whole_to,
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
