"""Profitability: what customers bring in after the cost of goods and of serving them.

One set-based statement shape sums whatever interactions the caller selects (a period, a
currency, a segment's members, one customer): ``totals`` in one row for the per-customer
read, ``by_customer`` per customer for segment conditions to compare, and ``sums`` inside
a caller's own aggregate (the KPIs take them per currency beside their other sums). Figures
are in minor units of one currency (analytics/schemas.py's rule); the formulas are in the
field descriptions of analytics/schemas.py. The cost of goods comes from the interactions
alone: each carries its items' figures, computed when it was written.
"""

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from crm_api.analytics.figures import pick_currency, ratio
from crm_api.analytics.schemas import CustomerProfitability
from crm_api.core.db import Compiled, Queryable
from crm_api.core.errors import NotFound
from crm_api.customers.service import is_live
from crm_api.interactions.models import interactions
from crm_api.interactions.schemas import InteractionType

_COSTS = ("cost_of_goods", "gross_margin", "service_cost", "profit")


def signed_figures() -> list[sa.ColumnElement[Any]]:
    """SQL, per interaction: its signed `revenue` and `cogs`, its signed `covered` revenue
    (its amount times the share of its item value that carries a cost) and its
    `service_cost`: the item figures as stored on the row when it was written
    (interactions/models.py), so no line item is read."""
    i = interactions.c
    sign = sa.case(
        (i.type == InteractionType.PURCHASE.value, 1),
        (i.type == InteractionType.REFUND.value, -1),
        else_=0,
    )
    return [
        (sign * i.amount).label("revenue"),
        (sign * i.items_cost).label("cogs"),
        (sign * i.costed_amount).label("covered"),
        i.service_cost,
    ]


def _per_interaction(*where: sa.ColumnElement[bool]) -> sa.Subquery:
    """SQL: each interaction meeting ``where``, its customer and its ``signed_figures``."""
    return (
        sa.select(interactions.c.customer_id, *signed_figures())
        .where(*where)
        .subquery("per_interaction")
    )


def sums(
    per_interaction: sa.Subquery, when: sa.ColumnElement[bool] | None = None
) -> list[sa.ColumnElement[Any]]:
    """SQL: the aggregates `revenue`, `cost_of_goods`, `gross_margin`, `service_cost`,
    `profit` and `covered_revenue` (the revenue whose items carry a cost) of the
    ``per_interaction`` rows (``signed_figures`` columns) meeting ``when``, numeric and
    never null."""
    p = per_interaction.c

    def total(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        summed = sa.func.sum(column)
        return sa.func.coalesce(summed if when is None else summed.filter(when), 0)

    revenue, cogs, service = total(p.revenue), total(p.cogs), total(p.service_cost)
    return [
        revenue.label("revenue"),
        cogs.label("cost_of_goods"),
        (revenue - cogs).label("gross_margin"),
        service.label("service_cost"),
        (revenue - cogs - service).label("profit"),
        total(p.covered).label("covered_revenue"),
    ]


def by_customer(*where: sa.ColumnElement[bool]) -> sa.Subquery:
    """SQL: per customer with interactions meeting ``where``, the sums of ``totals``.

    Give ``where`` a currency: sums over several currencies mean nothing.
    """
    per_interaction = _per_interaction(*where)
    return (
        sa.select(per_interaction.c.customer_id, *sums(per_interaction))
        .group_by(per_interaction.c.customer_id)
        .subquery("profitability")
    )


def totals(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """SQL: one row, the sums over every interaction meeting ``where`` (zeros when none):
    `revenue`, `cost_of_goods`, `gross_margin`, `service_cost`, `profit` and
    `covered_revenue`. Same figures as ``by_customer``, without grouping by customer."""
    return sa.select(*sums(_per_interaction(*where)))


def figures(row: Mapping[str, Any] | None) -> dict[str, Any]:
    """The figures beyond revenue from a row of ``sums``; all null without one (no
    currency)."""
    if row is None:
        return dict.fromkeys((*_COSTS, "margin_rate", "cost_coverage"))
    return {
        **{name: int(row[name]) for name in _COSTS},
        "margin_rate": ratio(row["gross_margin"], row["revenue"]),
        "cost_coverage": ratio(row["covered_revenue"], row["revenue"]),
    }


_customer_id = sa.bindparam("customer_id", type_=sa.Uuid)
_i = interactions.c
_CUSTOMER_MONEY = Compiled.of(
    sa.select(
        is_live(_customer_id).label("live"),
        sa.select(sa.func.array_agg(sa.distinct(_i.currency)))
        .where(_i.customer_id == _customer_id, _i.currency.isnot(None))
        .scalar_subquery()
        .label("currencies"),
    )
)
_CUSTOMER_TOTALS = Compiled.of(
    totals(_i.customer_id == _customer_id, _i.currency == sa.bindparam("currency", sa.Text))
)


async def customer_profitability(
    conn: Queryable, customer_id: uuid.UUID, currency: str | None = None
) -> CustomerProfitability:
    """A live customer's profitability over all their interactions, in ``currency`` (or
    the only currency of their purchases, refunds and service costs; 422 when several).
    404 for an unknown or erased customer."""
    found = await _CUSTOMER_MONEY.fetchrow(conn, customer_id=customer_id)
    assert found is not None  # a SELECT without FROM answers one row
    if not found["live"]:
        raise NotFound(f"No customer with id {customer_id}.")
    currency = pick_currency(found["currencies"] or [], currency)
    sums = None
    if currency is not None:
        sums = await _CUSTOMER_TOTALS.fetchrow(conn, customer_id=customer_id, currency=currency)
    return CustomerProfitability(
        customer_id=customer_id,
        currency=currency,
        revenue=None if sums is None else int(sums["revenue"]),
        **figures(sums),
    )
