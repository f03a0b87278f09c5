"""Per-customer features for scoring, from one set-based query over the timeline.

Purchases count on distinct days (several orders on one day are one purchase day, their
amounts summed), in one currency, up to and including the observation end's day (UTC).
"""

from datetime import date
from typing import Any

import numpy as np
import sqlalchemy as sa

from crm_api.core import db
from crm_api.core.channels import Channel
from crm_api.core.db import Connection, Queryable
from crm_api.core.money import minor_per_major
from crm_api.customers.models import customers as c
from crm_api.interactions.models import interactions as i
from crm_api.interactions.schemas import InteractionType
from crm_api.scoring.protocol import Features, TimeUnit

_DAYS_PER_UNIT = {TimeUnit.DAYS: 1.0, TimeUnit.WEEKS: 7.0}
_end = sa.bindparam("end", type_=sa.Date)
_day = sa.cast(sa.func.timezone("UTC", i.c.occurred_at), sa.Date)

_purchase_days = (
    sa.select(
        i.c.customer_id,
        _day.label("day"),
        sa.func.sum(i.c.amount).label("spend"),
    )
    .where(
        i.c.type == InteractionType.PURCHASE,
        i.c.currency == sa.bindparam("currency", type_=sa.Text),
        _day <= _end,
    )
    .group_by(i.c.customer_id, _day)
    .subquery("purchase_days")
)
_firsts = sa.select(
    _purchase_days,
    sa.func.min(_purchase_days.c.day)
    .over(partition_by=_purchase_days.c.customer_id)
    .label("first"),
).subquery("dated")
_purchases = (
    sa.select(
        _firsts.c.customer_id,
        sa.func.count().label("days"),
        (sa.func.max(_firsts.c.day) - sa.func.min(_firsts.c.day)).label("span"),
        (_end - sa.func.min(_firsts.c.day)).label("age"),
        sa.cast(sa.func.sum(_firsts.c.spend), sa.Float).label("total"),
        sa.cast(
            sa.func.coalesce(
                sa.func.sum(_firsts.c.spend).filter(_firsts.c.day > _firsts.c.first), 0
            ),
            sa.Float,
        ).label("repeat_total"),
    )
    .group_by(_firsts.c.customer_id)
    .subquery("purchases")
)
_COUNTED = {f"type_{t}": i.c.type == t for t in InteractionType} | {
    f"channel_{ch}": i.c.channel == ch for ch in Channel
}
_activity = (
    sa.select(
        i.c.customer_id,
        (_end - sa.cast(sa.func.timezone("UTC", sa.func.max(i.c.occurred_at)), sa.Date)).label(
            "idle"
        ),
        sa.func.count().label("interactions"),
        sa.func.avg(i.c.nps).label("nps"),
        sa.func.avg(i.c.csat).label("csat"),
        *(sa.func.count().filter(test).label(name) for name, test in _COUNTED.items()),
    )
    .where(_day <= _end)
    .group_by(i.c.customer_id)
    .subquery("activity")
)
_p, _a = _purchases, _activity
# One row of arrays, far cheaper to decode than a row per customer. The aggregates of one
# group see its rows in the same order, so the arrays line up without sorting each.
_COLUMNS: dict[str, Any] = {
    "customer_ids": c.c.id,
    "purchases": sa.func.coalesce(_p.c.days, 0),
    "span_days": sa.func.coalesce(_p.c.span, 0),
    "age_days": sa.func.coalesce(_p.c.age, 0),
    "total_minor": sa.func.coalesce(_p.c.total, 0),
    "repeat_minor": sa.func.coalesce(_p.c.repeat_total, 0),
    "idle_days": sa.cast(_a.c.idle, sa.Float),
    "interactions": sa.func.coalesce(_a.c.interactions, 0),
    "nps_mean": sa.cast(_a.c.nps, sa.Float),
    "csat_mean": sa.cast(_a.c.csat, sa.Float),
    **{name: sa.func.coalesce(_a.c[name], 0) for name in _COUNTED},
}
_FEATURES = db.Compiled.of(
    sa.select(*(sa.func.array_agg(col).label(name) for name, col in _COLUMNS.items()))
    .select_from(
        c.outerjoin(_p, _p.c.customer_id == c.c.id).outerjoin(_a, _a.c.customer_id == c.c.id)
    )
    .where(c.c.deleted_at.is_(None))
)  # fmt: skip


async def extract(conn: Connection, *, end: date, unit: TimeUnit, currency: str) -> Features:
    """Every live customer's features as of the end of day ``end``."""
    async with conn.transaction():
        # One large aggregation: sort in memory rather than on disk, and skip JIT
        # compilation, which costs more than it saves on a query run once.
        await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off")
        row = await _FEATURES.fetchrow(conn, end=end, currency=currency)
    assert row is not None
    if row["customer_ids"] is None:  # no customers at all
        return _arrays({name: [] for name in _COLUMNS}, unit, currency)
    return _arrays(dict(row), unit, currency)


def _arrays(raw: dict[str, Any], unit: TimeUnit, currency: str) -> Features:
    def floats(name: str) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in raw[name]], dtype=float)

    per_unit = _DAYS_PER_UNIT[unit]
    major = float(minor_per_major(currency))
    purchases = floats("purchases")
    repeats = np.maximum(purchases - 1, 0)
    repeat_spend = floats("repeat_minor") / major
    return Features(
        customer_ids=np.array(raw["customer_ids"], dtype=object),
        frequency=repeats,
        recency=floats("span_days") / per_unit,
        T=floats("age_days") / per_unit,
        monetary=np.divide(repeat_spend, repeats, out=np.zeros_like(repeats), where=repeats > 0),
        purchases=purchases,
        total_spend=floats("total_minor") / major,
        days_since_last_activity=floats("idle_days"),
        interactions=floats("interactions"),
        nps_mean=floats("nps_mean"),
        csat_mean=floats("csat_mean"),
        time_unit=unit,
        currency=currency,
        extra={name: floats(name) for name in _COUNTED},
    )


_MAIN_CURRENCY = db.Compiled.of(
    sa.select(i.c.currency)
    .where(i.c.type == InteractionType.PURCHASE)
    .group_by(i.c.currency)
    .order_by(sa.func.count().desc(), i.c.currency)
    .limit(1)
)


async def main_currency(conn: Queryable) -> str | None:
    """The currency most purchases were made in; None before the first purchase."""
    value = await _MAIN_CURRENCY.fetchval(conn)
    return None if value is None else str(value)
