"""GraphQL transport of the customer profile: `customerProfile(id)`, as GET
/v1/customers/{id}/profile answers it, section by section."""

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

import strawberry
from pydantic import BaseModel

from crm_api.analytics import profile
from crm_api.analytics.graphql import CategoryPurchases
from crm_api.core.channels import Channel
from crm_api.core.scopes import Scope
from crm_api.customers.graphql import Customer
from crm_api.graphql.context import Info
from crm_api.graphql.convert import from_model, parse_id
from crm_api.graphql.errors import or_none
from crm_api.graphql.permissions import needs
from crm_api.graphql.scalars import MinorUnits
from crm_api.interactions.graphql import Interaction
from crm_api.lifecycle.graphql import CustomerLifecycle
from crm_api.loyalty.graphql import LoyaltyAccount
from crm_api.scoring.graphql import ChurnRisk, CustomerScore, LifetimeValue

T = TypeVar("T")
strawberry.enum(profile.Section, name="ProfileSection")


@strawberry.type(description="A profile section left null: the API key lacks its scope.")
class OmittedSection:
    section: profile.Section
    scope: str = strawberry.field(description="The scope the section needs.")


@strawberry.type(description="Consent on one channel; granted is null if never asked.")
class ChannelConsent:
    channel: Channel
    granted: bool | None
    at: datetime | None
    source: str | None


@strawberry.type(description="A customer's purchases and refunds in one currency, ever.")
class LifetimeTotals:
    currency: str
    orders: int
    sales: MinorUnits
    refunds: int
    refunded: MinorUnits
    revenue: MinorUnits = strawberry.field(description="sales - refunded.")
    average_order_value: MinorUnits | None = strawberry.field(
        description="sales / orders, rounded half away from zero; null without orders."
    )
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None


@strawberry.type(description="Inbound interactions on one channel.")
class ChannelUse:
    channel: Channel
    interactions: int
    last_at: datetime


@strawberry.type(description="The declared preferred channel and the one observed.")
class PreferredChannels:
    declared: Channel | None
    observed: Channel | None = strawberry.field(
        description="The channel of most inbound interactions (ties: the most recently used)."
    )
    inbound: list[ChannelUse]


@strawberry.type(description="Bought and avoided categories, as recommendations use them.")
class CategoryPreferences:
    bought_categories: list[CategoryPurchases]
    avoided_categories: list[str]


@strawberry.type(description="A segment the customer is in, and since when.")
class ProfileSegment:
    id: strawberry.ID
    name: str
    since: datetime


@strawberry.type(description="The customer's latest scores.")
class ProfileScores:
    latest: list[CustomerScore]
    churn: ChurnRisk | None
    churn_at_risk: bool | None = strawberry.field(
        description="churnProbability >= the churn risk threshold; null before a churn run."
    )
    clv: LifetimeValue | None


@strawberry.type(
    description="Everything known about a customer. Sections other than customer and "
    "consents need their domain's read scope; without it they are null and listed in omitted."
)
class CustomerProfile:
    customer: Customer
    consents: list[ChannelConsent]
    lifecycle: CustomerLifecycle | None
    lifetime: list[LifetimeTotals] | None
    channels: PreferredChannels | None
    categories: CategoryPreferences | None
    segments: list[ProfileSegment] | None
    scores: ProfileScores | None
    loyalty: list[LoyaltyAccount] | None
    interactions: list[Interaction] | None
    omitted: list[OmittedSection]

    @classmethod
    def of(cls, model: profile.CustomerProfile) -> "CustomerProfile":
        channels, categories, scores = model.channels, model.categories, model.scores
        return cls(
            customer=Customer.of(model.customer),
            consents=[
                from_model(ChannelConsent, consent, channel=channel)
                for channel, consent in model.consents.items()
            ],
            lifecycle=model.lifecycle and from_model(CustomerLifecycle, model.lifecycle),
            lifetime=_each(LifetimeTotals, model.lifetime),
            channels=channels
            and from_model(
                PreferredChannels,
                channels,
                inbound=[from_model(ChannelUse, use) for use in channels.inbound],
            ),
            categories=categories
            and from_model(
                CategoryPreferences,
                categories,
                bought_categories=[
                    from_model(CategoryPurchases, c) for c in categories.bought_categories
                ],
            ),
            segments=_each(ProfileSegment, model.segments),
            scores=scores
            and ProfileScores(
                latest=[from_model(CustomerScore, s) for s in scores.latest],
                churn=scores.churn and from_model(ChurnRisk, scores.churn),
                churn_at_risk=scores.churn_at_risk,
                clv=scores.clv and from_model(LifetimeValue, scores.clv),
            ),
            loyalty=None
            if model.loyalty is None
            else [LoyaltyAccount.of(a) for a in model.loyalty],
            interactions=None
            if model.interactions is None
            else [Interaction.of(i) for i in model.interactions],
            omitted=[OmittedSection(section=o.section, scope=str(o.scope)) for o in model.omitted],
        )


def _each(cls: type[T], models: Sequence[BaseModel] | None) -> list[T] | None:
    return None if models is None else [from_model(cls, m) for m in models]


@strawberry.type
class ProfileQueries:
    @strawberry.field(
        extensions=needs(Scope.CUSTOMERS_READ),
        description="The customer's 360-degree profile, as GET /v1/customers/{id}/profile; "
        "null if unknown.",
    )
    async def customer_profile(self, info: Info, id: strawberry.ID) -> CustomerProfile | None:
        async with info.context.db.connection() as conn:
            found = await or_none(
                profile.customer_profile(
                    conn,
                    info.context.principal,
                    parse_id(id),
                    churn_risk_threshold=info.context.settings.churn_risk_threshold,
                )
            )
        return None if found is None else CustomerProfile.of(found)
