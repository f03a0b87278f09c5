"""I/O models of analytics.

Money rule for every analytics figure: amounts are integer minor units of ONE currency,
never a sum over currencies. Money figures take a `currency`; without it the only currency
the data holds is used, and data in several currencies is refused (422 naming them).
Averages of money are rounded half away from zero to whole minor units. A ratio whose
denominator is 0 is null, not 0.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

# Profitability figures (analytics/profitability.py), shared by the KPIs and the
# per-customer read; each over the interactions counted, in minor units of `currency`.
CostOfGoods = Annotated[
    int | None,
    Field(
        description="Cost of goods = sum of quantity * unit_cost over purchases' line items "
        "with a unit_cost, minus the same over refunds' own line items."
    ),
]
GrossMargin = Annotated[
    int | None,
    Field(
        description="revenue - cost_of_goods (items without a unit_cost cost nothing here: "
        "read it with cost_coverage)."
    ),
]
MarginRate = Annotated[float | None, Field(description="gross_margin / revenue.")]
ServiceCost = Annotated[
    int | None,
    Field(description="Sum of the interactions' service_cost (support calls, visits, any type)."),
]
Profit = Annotated[int | None, Field(description="gross_margin - service_cost.")]
CostCoverage = Annotated[
    float | None,
    Field(
        description="Share of revenue whose items carry a cost = covered / revenue, where "
        "each purchase adds (each refund takes away) amount * costed value / value; value = "
        "sum of quantity * unit_price over its items, costed value the same over its items "
        "with a unit_cost (without items it covers nothing). 1: gross_margin is fully costed."
    ),
]


class CustomerProfitability(BaseModel):
    """What a customer brought in, all time, after the cost of goods and of serving them."""

    customer_id: uuid.UUID
    currency: str | None = Field(
        description="Currency of every figure; null when the customer has no money data."
    )
    revenue: int | None = Field(description="Purchase amounts minus refund amounts.")
    cost_of_goods: CostOfGoods
    gross_margin: GrossMargin
    margin_rate: MarginRate
    service_cost: ServiceCost
    profit: Profit
    cost_coverage: CostCoverage


class KpiReport(BaseModel):
    """Customer KPIs over the half-open period [`start`, `end`) for live customers (of the
    segment's current members when `segment_id` is given)."""

    start: datetime = Field(description="Period start (inclusive).")
    end: datetime = Field(description="Period end (exclusive).")
    segment_id: uuid.UUID | None = Field(description="The segment whose members are counted.")
    currency: str | None = Field(
        description="Currency of every money figure; null when the period has no money data."
    )
    new_customers: int = Field(description="Customers created in the period.")
    active_customers: int = Field(description="Customers with any interaction in the period.")
    churned_customers: int = Field(
        description="Customers moved to the `churned` lifecycle stage in the period."
    )
    cac: int | None = Field(
        description="Customer acquisition cost = acquisition_cost (in `currency`) summed over "
        "new customers / new_customers."
    )
    prospects: int = Field(
        description="Customers created before `end` without a purchase before `start` (every "
        "customer starts as a prospect, so these are the prospects of the period)."
    )
    conversion_rate: float | None = Field(
        description="Prospects whose first purchase falls in the period / prospects."
    )
    customers_at_start: int = Field(
        description="Customers active at period start: a purchase before `start` and not in "
        "the `churned` stage at `start` (their last transition before it)."
    )
    churn_rate: float | None = Field(
        description="customers_at_start moved to `churned` in the period / customers_at_start."
    )
    retention_rate: float | None = Field(
        description="customers_at_start with a purchase in the period / customers_at_start."
    )
    purchasers: int = Field(description="Customers with a purchase in the period.")
    repeat_purchase_rate: float | None = Field(
        description="Purchasers with 2 or more purchases in the period / purchasers."
    )
    purchase_frequency: float | None = Field(
        description="Purchases in the period (any currency) / purchasers."
    )
    orders: int = Field(description="Purchases in the period in `currency`.")
    average_order_value: int | None = Field(
        description="Sum of purchase amounts in the period in `currency` / orders."
    )
    revenue: int | None = Field(
        description="Purchase amounts minus refund amounts in the period, in `currency`."
    )
    cost_of_goods: CostOfGoods
    gross_margin: GrossMargin
    margin_rate: MarginRate
    service_cost: ServiceCost
    profit: Profit
    cost_coverage: CostCoverage
    historical_clv: int | None = Field(
        description="Historical customer lifetime value = purchases minus refunds in "
        "`currency` before `end` / customers with a purchase in `currency` before `end`."
    )
    predicted_clv_mean: int | None = Field(
        description="Mean predicted lifetime value of the customers scored by the latest CLV "
        "run (null without one, or when its currency is not `currency`)."
    )
    predicted_clv_median: int | None = Field(
        description="Median (interpolated) of the same predicted lifetime values."
    )
    predicted_clv_run_id: uuid.UUID | None = Field(
        description="The CLV scoring run the predicted values come from."
    )
    nps: float | None = Field(
        description="Net Promoter Score over feedback with an nps answer in the period = "
        "100 * (answers 9-10 - answers 0-6) / answers; from -100 to 100."
    )
    csat: float | None = Field(
        description="Customer satisfaction = 100 * csat answers of 4-5 / csat answers in the "
        "period; a percentage."
    )
    campaign_cost: int | None = Field(
        description="Costs summed over the campaigns in `currency` that started in the period "
        "(with `segment_id`: those targeting the segment)."
    )
    campaign_revenue: int | None = Field(
        description="The same campaigns' revenues summed (each campaign's attributed purchases "
        "minus their refunds, as GET /v1/campaigns/{id}/performance counts them, whenever "
        "they occurred)."
    )
    campaign_roi: float | None = Field(
        description="Campaign return on investment = (campaign_revenue - campaign_cost) / "
        "campaign_cost."
    )


class CohortPeriod(StrEnum):
    MONTH = "month"
    WEEK = "week"


class CohortMetric(StrEnum):
    RETENTION = "retention"
    REVENUE = "revenue"


class Cohort(BaseModel):
    start: datetime = Field(
        description="The cohort: customers created in the period (month, or ISO week from "
        "Monday, UTC) starting here."
    )
    size: int = Field(description="Customers in the cohort.")
    retention: list[float] | None = Field(
        description="metric=retention: item k = cohort customers with a purchase in the k-th "
        "period after the cohort's / size."
    )
    revenue: list[int] | None = Field(
        description="metric=revenue: item k = purchases minus refunds in `currency` of the "
        "cohort's customers in the k-th period after the cohort's."
    )


class CohortReport(BaseModel):
    """Acquisition cohorts of live customers created in [`start`, `end`); each cohort's row
    runs from period 0 (its own) to the period containing the instant before `end`."""

    period: CohortPeriod
    metric: CohortMetric
    start: datetime | None = Field(description="Cohorts created from here (inclusive).")
    end: datetime = Field(description="Cohorts created and activity counted before here.")
    currency: str | None = Field(description="metric=revenue: the currency of the amounts.")
    cohorts: list[Cohort] = Field(description="Oldest cohort first.")
