"""The 360-degree customer profile: what every domain knows about one customer, in one read.

Each section comes from its own domain's service, in that domain's representation, so the
profile cannot drift from the domain's own endpoints. A section of another domain needs
that domain's read scope: without it the section is null and `omitted` names it with the
scope it needs (the statements behind it are not even run).

Cost: a fixed number of statements on one connection (11 with every scope), however long
the customer's history; each reads that customer's rows through an index led by the
customer id (the timeline index for interactions), besides small lookup tables.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, Field

from crm_api.analytics import recommendations
from crm_api.analytics.figures import minor_units
from crm_api.analytics.recommendations import CategoryPreferences
from crm_api.core.auth import Principal
from crm_api.core.channels import Channel
from crm_api.core.db import Compiled, Connection
from crm_api.core.scopes import Scope
from crm_api.customers import service as customers
from crm_api.customers.schemas import Customer
from crm_api.interactions import service as interactions
from crm_api.interactions.models import interactions as i
from crm_api.interactions.schemas import Interaction
from crm_api.lifecycle import service as lifecycle
from crm_api.lifecycle.schemas import CustomerLifecycle, CustomerStage
from crm_api.loyalty import service as loyalty
from crm_api.loyalty.schemas import Account
from crm_api.scoring import service as scoring
from crm_api.scoring.schemas import ChurnRisk, CustomerScore, LifetimeValue
from crm_api.segments import service as segments

LATEST_INTERACTIONS = 10
MOST_SEGMENTS = 100


class Section(StrEnum):
    LIFECYCLE = "lifecycle"
    LIFETIME = "lifetime"
    CHANNELS = "channels"
    CATEGORIES = "categories"
    SEGMENTS = "segments"
    SCORES = "scores"
    LOYALTY = "loyalty"
    INTERACTIONS = "interactions"


# The scope each section needs besides `customers:read`: its domain's read scope.
SECTION_SCOPES = {
    Section.LIFECYCLE: Scope.LIFECYCLE_READ,
    Section.LIFETIME: Scope.INTERACTIONS_READ,
    Section.CHANNELS: Scope.INTERACTIONS_READ,
    Section.CATEGORIES: Scope.ANALYTICS_READ,
    Section.SEGMENTS: Scope.SEGMENTS_READ,
    Section.SCORES: Scope.SCORING_READ,
    Section.LOYALTY: Scope.LOYALTY_READ,
    Section.INTERACTIONS: Scope.INTERACTIONS_READ,
}


class Omitted(BaseModel):
    section: Section = Field(description="The section left null.")
    scope: Scope = Field(description="The scope the API key lacks for it.")


class ChannelConsent(BaseModel):
    # Defaults: rows written by other means than the API may leave out `at` or `source`.
    granted: bool | None = Field(description="null: consent never given nor withdrawn here.")
    at: datetime | None = Field(default=None, description="When it was given or withdrawn.")
    source: str | None = Field(default=None, description="Where it was captured.")


class LifetimeTotals(BaseModel):
    """The customer's purchases and refunds in one currency, over their whole history."""

    currency: str
    orders: int = Field(description="Purchases in `currency`.")
    sales: int = Field(description="Sum of purchase amounts (minor units).")
    refunds: int = Field(description="Refunds in `currency`.")
    refunded: int = Field(description="Sum of refund amounts (minor units).")
    revenue: int = Field(description="sales - refunded (minor units).")
    average_order_value: int | None = Field(
        description="sales / orders, rounded half away from zero to minor units; null "
        "without orders."
    )
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None


class ChannelUse(BaseModel):
    channel: Channel
    interactions: int = Field(description="Inbound interactions on the channel.")
    last_at: datetime = Field(description="The latest of them.")


class Channels(BaseModel):
    declared: Channel | None = Field(description="The customer's `preferred_channel`.")
    observed: Channel | None = Field(
        description="The channel of most inbound interactions (ties: the most recently used); "
        "null without any."
    )
    inbound: list[ChannelUse] = Field(description="Inbound use per channel, most used first.")


class ProfileSegment(BaseModel):
    id: uuid.UUID
    name: str
    since: datetime = Field(description="When the customer entered the segment.")


class Scores(BaseModel):
    latest: list[CustomerScore] = Field(
        description="The latest score of every scorer that scored the customer (RFM's label "
        "is its segment), by scorer name."
    )
    churn: ChurnRisk | None = Field(description="From the latest churn run; null before one.")
    churn_at_risk: bool | None = Field(
        description="The churn band: churn_probability >= the churn risk threshold "
        "(CRM_CHURN_RISK_THRESHOLD, as GET /v1/churn/at-risk uses it); null before a churn run."
    )
    clv: LifetimeValue | None = Field(description="From the latest CLV run; null before one.")


class CustomerProfile(BaseModel):
    """Every section but `customer` and `consents` needs its domain's read scope; without it
    the section is null and listed in `omitted` with that scope."""

    customer: Customer = Field(description="As GET /v1/customers/{id} shows it.")
    consents: dict[Channel, ChannelConsent] = Field(description="Every channel's consent.")
    lifecycle: CustomerLifecycle | None = Field(
        description="Stage, since when (the latest transition), where it may move. "
        "Needs `lifecycle:read`."
    )
    lifetime: list[LifetimeTotals] | None = Field(
        description="Purchases and refunds per currency, by currency. Needs `interactions:read`."
    )
    channels: Channels | None = Field(
        description="Declared and observed preferred channel. Needs `interactions:read`."
    )
    categories: CategoryPreferences | None = Field(
        description="Bought and avoided categories, as the recommendations use them. "
        "Needs `analytics:read`."
    )
    segments: list[ProfileSegment] | None = Field(
        description=f"Current segments, oldest segments first (at most {MOST_SEGMENTS}). "
        "Needs `segments:read`."
    )
    scores: Scores | None = Field(description="Latest scores. Needs `scoring:read`.")
    loyalty: list[Account] | None = Field(
        description="Every loyalty account, oldest first. Needs `loyalty:read`."
    )
    interactions: list[Interaction] | None = Field(
        description=f"The latest {LATEST_INTERACTIONS} interactions, newest first. "
        "Needs `interactions:read`."
    )
    omitted: list[Omitted] = Field(description="Sections left null for lack of a scope.")


def _activity() -> Compiled:
    """lifetime and inbound (JSON lists) of one customer, from their timeline alone."""
    customer = sa.bindparam("customer_id", type_=sa.Uuid)
    purchase, refund = i.c.type == "purchase", i.c.type == "refund"

    def total(of: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(i.c.amount).filter(of), 0)

    money = (
        sa.select(
            i.c.currency,
            sa.func.count().filter(purchase).label("orders"),
            total(purchase).label("sales"),
            sa.func.count().filter(refund).label("refunds"),
            total(refund).label("refunded"),
            sa.func.min(i.c.occurred_at).filter(purchase).label("first_purchase_at"),
            sa.func.max(i.c.occurred_at).filter(purchase).label("last_purchase_at"),
        )
        .where(i.c.customer_id == customer, sa.or_(purchase, refund))
        .where(i.c.currency.isnot(None))
        .group_by(i.c.currency)
        .subquery("money")
    )
    inbound = (
        sa.select(
            i.c.channel,
            sa.func.count().label("interactions"),
            sa.func.max(i.c.occurred_at).label("last_at"),
        )
        .where(i.c.customer_id == customer, i.c.direction == "inbound", i.c.channel.isnot(None))
        .group_by(i.c.channel)
        .subquery("inbound")
    )

    def rows(source: sa.Subquery, *order: sa.ColumnElement) -> sa.ScalarSelect:
        listed = sa.func.jsonb_agg(sa.func.to_jsonb(source.table_valued())).aggregate_order_by(
            *order
        )
        return sa.select(sa.func.coalesce(listed, sa.text("'[]'::jsonb"))).scalar_subquery()

    return Compiled.of(
        sa.select(
            rows(money, money.c.currency).label("lifetime"),
            rows(
                inbound, inbound.c.interactions.desc(), inbound.c.last_at.desc(), inbound.c.channel
            ).label("inbound"),
        )
    )


_ACTIVITY = _activity()
_NEVER_ASKED = ChannelConsent(granted=None)


def _consents(customer: dict[str, Any]) -> dict[Channel, ChannelConsent]:
    given = customer["consents"]
    return {
        channel: ChannelConsent.model_validate(given[channel]) if channel in given else _NEVER_ASKED
        for channel in Channel
    }


def _lifetime(row: dict[str, Any]) -> LifetimeTotals:
    return LifetimeTotals(
        **row,
        revenue=row["sales"] - row["refunded"],
        average_order_value=minor_units(row["sales"], row["orders"]),
    )


async def customer_profile(
    conn: Connection, principal: Principal, customer_id: uuid.UUID, *, churn_risk_threshold: float
) -> CustomerProfile:
    """The live customer's profile as ``principal`` may see it; NotFound otherwise."""
    customer = await customers.read_customer(conn, principal, customer_id)
    allowed = {s for s, scope in SECTION_SCOPES.items() if principal.can(scope)}
    ids = [customer_id]
    found: dict[Section, Any] = {}
    if Section.LIFECYCLE in allowed:
        stage = CustomerStage(customer_id, customer["lifecycle_stage"], customer["created_at"])
        found[Section.LIFECYCLE] = (await lifecycle.lifecycles(conn, [stage]))[stage]
    if allowed & {Section.LIFETIME, Section.CHANNELS}:
        activity = await _ACTIVITY.fetchrow(conn, customer_id=customer_id)
        assert activity is not None
        inbound = [ChannelUse.model_validate(row) for row in activity["inbound"]]
        found[Section.LIFETIME] = [_lifetime(row) for row in activity["lifetime"]]
        found[Section.CHANNELS] = Channels(
            declared=customer["preferred_channel"],
            observed=inbound[0].channel if inbound else None,
            inbound=inbound,
        )
    if Section.CATEGORIES in allowed:
        found[Section.CATEGORIES] = await recommendations.category_preferences(conn, customer_id)
    if Section.SEGMENTS in allowed:
        pages = await segments.segments_by_customer(conn, principal, ids, limit=MOST_SEGMENTS)
        memberships = pages[customer_id][0] if customer_id in pages else []
        found[Section.SEGMENTS] = [
            ProfileSegment(id=m.segment.id, name=m.segment.name, since=m.entered_at)
            for m in memberships
        ]
    if Section.SCORES in allowed:
        churn = (await scoring.churn_by_customer(conn, ids)).get(customer_id)
        found[Section.SCORES] = Scores(
            latest=(await scoring.scores_by_customer(conn, ids)).get(customer_id, []),
            churn=churn,
            churn_at_risk=None
            if churn is None
            else churn.churn_probability >= churn_risk_threshold,
            clv=(await scoring.clv_by_customer(conn, ids)).get(customer_id),
        )
    if Section.LOYALTY in allowed:
        found[Section.LOYALTY] = (await loyalty.accounts_by_customer(conn, ids)).get(
            customer_id, []
        )
    if Section.INTERACTIONS in allowed:
        pages = await interactions.latest_by_customer(
            conn, principal, ids, limit=LATEST_INTERACTIONS
        )
        found[Section.INTERACTIONS] = pages[customer_id][0] if customer_id in pages else []
    omitted = [Omitted(section=s, scope=SECTION_SCOPES[s]) for s in Section if s not in allowed]
    return CustomerProfile(
        customer=Customer.model_validate(customer),
        consents=_consents(customer),
        omitted=omitted,
        **{s.value: found.get(s) for s in Section},
    )
