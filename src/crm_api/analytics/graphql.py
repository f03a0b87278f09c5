"""GraphQL transport of analytics (scope `analytics:read`)."""

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from crm_api.analytics import affinities, cohorts, kpis, profitability, recommendations, sentiment
from crm_api.analytics.schemas import CohortMetric, CohortPeriod
from crm_api.core.channels import Channel
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import from_model, parse_id, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.permissions import needs
from crm_api.interactions.schemas import InteractionType

strawberry.enum(sentiment.Period, name="SentimentPeriod")


@strawberry.type(description="Sentiment of one period and channel (see `sentimentTrend`).")
class SentimentPoint:
    period_start: datetime
    channel: Channel | None
    count: int
    mean: float
    negative_share: float
    neutral_share: float
    positive_share: float


strawberry.enum(affinities.Level, name="AffinityLevel")
strawberry.enum(recommendations.Source, name="RecommendationSource")


@strawberry.type(description="An association rule X -> Y (see `productAffinities`).")
class AssociationRule:
    antecedent: str
    consequent: str
    baskets_with_both: int
    antecedent_baskets: int
    consequent_baskets: int
    support: float
    confidence: float
    lift: float


@strawberry.type
class ProductAffinities:
    level: affinities.Level
    baskets: int
    rules: list[AssociationRule]


@strawberry.type
class CategoryPurchases:
    category: str
    purchases: int


@strawberry.type
class Recommendation:
    item: str
    score: float
    source: recommendations.Source
    because_of: str | None
    lift: float | None
    reason: str


@strawberry.type(description="Suggestions for a customer (see `recommendations`).")
class CustomerRecommendations:
    customer_id: strawberry.ID
    level: affinities.Level
    bought_categories: list[CategoryPurchases]
    avoided_categories: list[str]
    recommendations: list[Recommendation]
    rules_computed_at: datetime = strawberry.field(
        description="When the rules and popularity used were mined from all purchases."
    )

    @classmethod
    def of(cls, model: recommendations.Recommendations) -> "CustomerRecommendations":
        return from_model(
            cls,
            model,
            bought_categories=[from_model(CategoryPurchases, c) for c in model.bought_categories],
            recommendations=[from_model(Recommendation, r) for r in model.recommendations],
        )


strawberry.enum(CohortPeriod, name="CohortPeriod")
strawberry.enum(CohortMetric, name="CohortMetric")


@strawberry.type(description="Customer KPIs for a period (see `analyticsKpis`).")
class Kpis:
    start: datetime
    end: datetime
    segment_id: strawberry.ID | None
    currency: str | None
    new_customers: int
    active_customers: int
    churned_customers: int
    cac: int | None
    prospects: int
    conversion_rate: float | None
    customers_at_start: int
    churn_rate: float | None
    retention_rate: float | None
    purchasers: int
    repeat_purchase_rate: float | None
    purchase_frequency: float | None
    orders: int
    average_order_value: int | None
    revenue: int | None
    cost_of_goods: int | None
    gross_margin: int | None
    margin_rate: float | None
    service_cost: int | None
    profit: int | None
    cost_coverage: float | None
    historical_clv: int | None
    predicted_clv_mean: int | None
    predicted_clv_median: int | None
    predicted_clv_run_id: strawberry.ID | None
    nps: float | None
    csat: float | None
    campaign_cost: int | None
    campaign_revenue: int | None
    campaign_roi: float | None


@strawberry.type(description="A customer's profitability (see `customerProfitability`).")
class CustomerProfitability:
    customer_id: strawberry.ID
    currency: str | None
    revenue: int | None
    cost_of_goods: int | None
    gross_margin: int | None
    margin_rate: float | None
    service_cost: int | None
    profit: int | None
    cost_coverage: float | None


@strawberry.type(description="One acquisition cohort's row (see `analyticsCohorts`).")
class Cohort:
    start: datetime
    size: int
    retention: list[float] | None
    revenue: list[int] | None


@strawberry.type
class Cohorts:
    period: CohortPeriod
    metric: CohortMetric
    start: datetime | None
    end: datetime
    currency: str | None
    cohorts: list[Cohort]


@strawberry.type
class AnalyticsQueries:
    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="Sentiment of feedback and support texts per period (UTC) and channel, "
        "oldest first: count, mean score, and the shares negative (score <= -0.05), neutral "
        "and positive (score >= 0.05).",
    )
    async def sentiment_trend(
        self,
        info: Info,
        period: sentiment.Period = sentiment.Period.WEEK,
        since: Annotated[
            datetime | None, strawberry.argument(name="from", description="occurred_at >= from.")
        ] = None,
        until: Annotated[
            datetime | None, strawberry.argument(name="to", description="occurred_at < to.")
        ] = None,
        channel: Channel | None = None,
        type: InteractionType | None = None,
    ) -> list[SentimentPoint]:
        filters = validated(
            sentiment.SentimentFilters,
            dict(period=period, since=since, until=until, channel=channel, type=type),
        )
        async with info.context.db.connection() as conn:
            found = await sentiment.trend(conn, info.context.principal, filters)
        return [from_model(SentimentPoint, point) for point in found.points]

    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="Association rules X -> Y over items bought together in one purchase, "
        "strongest (lift, then confidence) first. support = baskets with X and Y / baskets; "
        "confidence = baskets with X and Y / baskets with X; lift = confidence / share of "
        "baskets with Y.",
    )
    async def product_affinities(
        self,
        info: Info,
        level: affinities.Level = affinities.Level.SKU,
        min_support: float = affinities.DEFAULT_MIN_SUPPORT,
        min_confidence: float = affinities.DEFAULT_MIN_CONFIDENCE,
        min_lift: float = affinities.DEFAULT_MIN_LIFT,
        since: Annotated[
            datetime | None, strawberry.argument(name="from", description="Purchases at or after.")
        ] = None,
        until: Annotated[
            datetime | None, strawberry.argument(name="to", description="Purchases before.")
        ] = None,
        limit: int = 50,
    ) -> ProductAffinities:
        query = validated(
            affinities.AffinityQuery,
            dict(
                level=level,
                min_support=min_support,
                min_confidence=min_confidence,
                min_lift=min_lift,
                since=since,
                until=until,
                limit=limit,
            ),
        )
        async with info.context.db.connection() as conn:
            found = await affinities.affinities(conn, query)
        rules = [from_model(AssociationRule, rule) for rule in found.rules]
        return from_model(ProductAffinities, found, rules=rules)

    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="Next products or categories for a customer, with the reason for each, "
        "leaving out bought SKUs and avoided categories; null for an unknown customer.",
    )
    async def recommendations(
        self,
        info: Info,
        customer_id: strawberry.ID,
        level: affinities.Level = affinities.Level.SKU,
        limit: int = 10,
    ) -> CustomerRecommendations | None:
        async with info.context.db.connection() as conn:
            found = await or_none(
                recommendations.recommendations(
                    conn, parse_id(customer_id, "customerId"), level=level, limit=limit
                )
            )
        return None if found is None else CustomerRecommendations.of(found)

    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="Customer KPIs for the period [from, to), as GET /v1/analytics/kpis "
        "(formulas in its OpenAPI description); money in minor units of `currency`.",
    )
    async def analytics_kpis(
        self,
        info: Info,
        since: Annotated[datetime, strawberry.argument(name="from")],
        until: Annotated[datetime, strawberry.argument(name="to")],
        segment_id: strawberry.ID | None = None,
        currency: str | None = None,
    ) -> Kpis:
        async with info.context.db.connection() as conn:
            found = await kpis.kpis(
                conn,
                info.context.principal,
                start=since,
                end=until,
                segment_id=None if segment_id is None else parse_id(segment_id, "segmentId"),
                currency=currency,
            )
        return from_model(Kpis, found)

    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="A customer's revenue, cost of goods, margin, service cost and profit "
        "over all their interactions, as GET /v1/customers/{id}/profitability (formulas in "
        "its OpenAPI description); null for an unknown customer.",
    )
    async def customer_profitability(
        self, info: Info, customer_id: strawberry.ID, currency: str | None = None
    ) -> CustomerProfitability | None:
        async with info.context.db.connection() as conn:
            found = await or_none(
                profitability.customer_profitability(
                    conn, parse_id(customer_id, "customerId"), currency
                )
            )
        return None if found is None else from_model(CustomerProfitability, found)

    @strawberry.field(
        extensions=needs(Scope.ANALYTICS_READ),
        description="Acquisition cohorts by periods since acquisition, as GET "
        "/v1/analytics/cohorts; `to` defaults to now.",
    )
    async def analytics_cohorts(
        self,
        info: Info,
        period: CohortPeriod = CohortPeriod.MONTH,
        metric: CohortMetric = CohortMetric.RETENTION,
        since: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        until: Annotated[datetime | None, strawberry.argument(name="to")] = None,
        currency: str | None = None,
    ) -> Cohorts:
        async with info.context.db.connection() as conn:
            found = await cohorts.cohorts(
                conn,
                period=period,
                metric=metric,
                start=since,
                end=until or datetime.now(UTC),
                currency=currency,
            )
        return from_model(Cohorts, found, cohorts=[from_model(Cohort, c) for c in found.cohorts])
