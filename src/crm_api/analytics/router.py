"""REST transport of analytics: KPIs, cohorts, affinities, recommendations, sentiment and the
customer profile."""

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.analytics import (
    affinities,
    cohorts,
    kpis,
    profile,
    profitability,
    recommendations,
    sentiment,
)
from crm_api.analytics.affinities import Affinities, AffinityQuery, Level
from crm_api.analytics.recommendations import Recommendations
from crm_api.analytics.schemas import (
    CohortMetric,
    CohortPeriod,
    CohortReport,
    CustomerProfitability,
    KpiReport,
)
from crm_api.core.auth import requires
from crm_api.core.channels import Channel
from crm_api.core.errors import responses
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.types import CurrencyCode, Timestamp
from crm_api.core.uow import reads
from crm_api.interactions.schemas import InteractionType

router = domain_router(tag="analytics")
customers_router = domain_router(prefix="/v1/customers", tag="customers")
Reader = requires(Scope.ANALYTICS_READ)


@router.get("/v1/analytics/sentiment", response_model=sentiment.SentimentTrend)
async def analytics_sentiment(
    principal: Reader,
    request: Request,
    period: sentiment.Period = sentiment.Period.WEEK,
    since: Annotated[
        Timestamp | None, Query(alias="from", description="occurred_at >= from.")
    ] = None,
    until: Annotated[Timestamp | None, Query(alias="to", description="occurred_at < to.")] = None,
    channel: Channel | None = None,
    type: InteractionType | None = None,
) -> sentiment.SentimentTrend:
    """The sentiment trend of feedback and support texts per period and channel.

    Feedback and support interactions with a subject or body carry VADER's compound score
    (-1 to 1), given when recorded. Per period (UTC; weeks start on Monday) and channel:
    `count` scored interactions, `mean` = sum(score) / count, and the shares by VADER's
    usual cut-offs: negative score <= -0.05, neutral -0.05 < score < 0.05, positive
    score >= 0.05 (each share = their number / count).
    """
    filters = sentiment.SentimentFilters(
        period=period, since=since, until=until, channel=channel, type=type
    )
    return await sentiment.trend(reads(request), principal, filters)


@router.get("/v1/analytics/affinities", response_model=Affinities)
async def analytics_affinities(
    principal: Reader, request: Request, query: Annotated[AffinityQuery, Query()]
) -> Affinities:
    """Association rules X -> Y over items bought together in one purchase (a basket: the
    distinct SKUs or categories of its lines), over N baskets:
    support = baskets with X and Y / N; confidence = baskets with X and Y / baskets with X;
    lift = confidence / (baskets with Y / N). Strongest (lift, then confidence) first.
    """
    return await affinities.affinities(reads(request), query)


@router.get(
    "/v1/customers/{customer_id}/recommendations",
    response_model=Recommendations,
    responses=responses(404),
)
async def analytics_recommendations(
    customer_id: Annotated[uuid.UUID, Path(description="The customer's id.")],
    principal: Reader,
    request: Request,
    level: Annotated[Level, Query(description="Suggest SKUs or categories.")] = Level.SKU,
    limit: Annotated[int, Query(ge=1, le=recommendations.MAX_SUGGESTIONS)] = 10,
) -> Recommendations:
    """Next products or categories: first from affinity rules X -> Y (lift above 1) whose X
    the customer bought, scored by the best rule's confidence; then the most popular items,
    scored by their share of all baskets. Left out: SKUs the customer bought, and anything
    in a category the customer avoids (see `avoided_categories`).

    Rules and popularity come from the set the worker mines from all purchases every
    `CRM_RECOMMENDATION_REFRESH_SECONDS` (`rules_computed_at` says when); the customer's
    own purchases are read live. Before the first refresh the first call mines the set.
    """
    return await recommendations.recommendations(
        reads(request), customer_id, level=level, limit=limit
    )


MoneyCurrency = Annotated[
    CurrencyCode | None,
    Query(description="Currency of the money figures; required when the data holds several."),
]


@router.get(
    "/v1/customers/{customer_id}/profitability",
    response_model=CustomerProfitability,
    responses=responses(404, 422),
)
async def analytics_profitability(
    customer_id: Annotated[uuid.UUID, Path(description="The customer's id.")],
    principal: Reader,
    request: Request,
    currency: MoneyCurrency = None,
) -> CustomerProfitability:
    """What the customer brought in over all their interactions, after the cost of goods
    and of serving them; each figure's formula is in its description.

    Money is in minor units of one currency (`currency`, or the only one the customer's
    purchases, refunds and service costs hold; several without `currency` is a 422 naming
    them). cost_coverage says how much of the revenue carries item costs, so how far to
    trust gross_margin and profit.
    """
    return await profitability.customer_profitability(reads(request), customer_id, currency)


@router.get("/v1/analytics/kpis", response_model=KpiReport, responses=responses(404, 422))
async def analytics_kpis(
    principal: Reader,
    request: Request,
    since: Annotated[Timestamp, Query(alias="from", description="Period start (inclusive).")],
    until: Annotated[Timestamp, Query(alias="to", description="Period end (exclusive).")],
    segment_id: Annotated[
        uuid.UUID | None, Query(description="Count only the segment's current members.")
    ] = None,
    currency: MoneyCurrency = None,
) -> KpiReport:
    """Customer KPIs for the period [from, to); each figure's formula is in its description.

    Money figures are integer minor units of one currency (`currency`, or the only one the
    period's purchases, refunds, service costs, acquisition costs and the costs of campaigns
    started in it hold; several without `currency` is a 422 naming them). A ratio with a zero
    denominator is null. Campaign figures take the campaigns started in the period, in
    `currency`; their revenue is what their performance attributes to them.
    """
    async with request.app.state.db.connection() as conn:
        return await kpis.kpis(
            conn, principal, start=since, end=until, segment_id=segment_id, currency=currency
        )


@router.get("/v1/analytics/cohorts", response_model=CohortReport, responses=responses(422))
async def analytics_cohorts(
    principal: Reader,
    request: Request,
    period: CohortPeriod = CohortPeriod.MONTH,
    metric: CohortMetric = CohortMetric.RETENTION,
    since: Annotated[
        Timestamp | None, Query(alias="from", description="Cohorts created from here.")
    ] = None,
    until: Annotated[
        Timestamp | None,
        Query(alias="to", description="Cohorts created and activity counted before; now."),
    ] = None,
    currency: MoneyCurrency = None,
) -> CohortReport:
    """Acquisition cohorts (customers by `created_at` truncated to the period, UTC, weeks
    from Monday) by periods since acquisition, k = 0 being the cohort's own period.

    retention[k] = cohort customers with a purchase in period k / cohort size;
    revenue[k] = purchases minus refunds in `currency` (minor units) of the cohort's
    customers in period k (`currency` as for the KPIs).
    """
    return await cohorts.cohorts(
        reads(request),
        period=period,
        metric=metric,
        start=since,
        end=until or datetime.now(UTC),
        currency=currency,
    )


@customers_router.get(
    "/{customer_id}/profile", response_model=profile.CustomerProfile, responses=responses(404)
)
async def customers_profile(
    customer_id: Annotated[uuid.UUID, Path(description="The customer's id.")],
    principal: requires(Scope.CUSTOMERS_READ),
    request: Request,
) -> Response:
    """Everything known about one customer in one call: the customer (personal fields
    redacted without `pii:read`), consent per channel, lifecycle stage and since when,
    lifetime purchases per currency, declared and observed preferred channel, category
    preferences, segments, latest scores, loyalty accounts and the latest interactions.

    `customers:read` is enough to call it. Each other section needs its domain's read scope
    (`lifecycle:read`, `interactions:read`, `analytics:read`, `segments:read`,
    `scoring:read`, `loyalty:read`): without it the section is null and `omitted` lists it
    with the scope it needs.
    """
    async with request.app.state.db.connection() as conn:
        found = await profile.customer_profile(
            conn,
            principal,
            customer_id,
            churn_risk_threshold=request.app.state.settings.churn_risk_threshold,
        )
    return Response(found.model_dump_json(), media_type="application/json")
