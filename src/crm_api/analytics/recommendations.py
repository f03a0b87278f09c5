"""Next products or categories for a customer, from affinity rules and popularity.

The customer's category preference profile decides what is never suggested:
- bought: the categories of the customer's purchases;
- avoided: popular categories (in at least `POPULAR_SHARE` of all baskets) the customer
  never bought despite opportunity, i.e. despite making at least `MIN_OPPORTUNITIES`
  purchases since the category was first sold.
Suggestions come first from rules X -> Y (lift above 1) whose antecedent X the customer
bought, scored by the best rule's confidence; then from popularity (share of all baskets)
as a fallback. SKUs the customer already bought, and anything in an avoided category, are
left out.

Rules and popularity are read from the set the worker mines periodically
(stored_rules.py); only the customer's own purchases are read live. Before the first
refresh, the first call mines the set itself (waiting for a refresh already running), so
nobody is answered from an empty set; `rules_computed_at` says how current it is.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on

from crm_api.analytics import stored_rules
from crm_api.analytics.affinities import LEVEL, Level, baskets, items_of
from crm_api.analytics.models import item_popularity as P
from crm_api.analytics.models import recommendation_refreshes as R
from crm_api.analytics.models import recommendation_rules as RR
from crm_api.core.db import Compiled, Queryable
from crm_api.core.errors import NotFound, ValidationFailed
from crm_api.customers.service import is_live
from crm_api.interactions.models import interactions as i

POPULAR_SHARE = 0.05
MIN_OPPORTUNITIES = 3
# Rules and popular items need at least this share of all baskets to count: what is stored.
RULE_MIN_SUPPORT = stored_rules.STORED_MIN_SUPPORT
assert POPULAR_SHARE >= RULE_MIN_SUPPORT, "popular categories must be among the stored items"
MAX_SUGGESTIONS = 100


class Source(StrEnum):
    AFFINITY = "affinity"
    POPULARITY = "popularity"


class CategoryPurchases(BaseModel):
    category: str
    purchases: int = Field(description="The customer's purchases with this category.")


class Recommendation(BaseModel):
    item: str = Field(description="The SKU or category suggested.")
    score: float = Field(
        description="affinity: the confidence of the best rule X -> item with X bought by the "
        "customer; popularity: the share of all baskets containing the item."
    )
    source: Source
    because_of: str | None = Field(description="affinity: the rule's antecedent X.")
    lift: float | None = Field(description="affinity: the rule's lift.")
    reason: str = Field(description="Why, in words.")


BoughtCategories = Annotated[
    list[CategoryPurchases], Field(description="The customer's categories, most purchased first.")
]
AvoidedCategories = Annotated[
    list[str],
    Field(
        description=f"Categories in at least {POPULAR_SHARE:.0%} of all baskets the customer "
        f"never bought despite {MIN_OPPORTUNITIES} or more purchases since they were first "
        "sold; nothing in them is suggested."
    ),
]


class CategoryPreferences(BaseModel):
    """The customer's category preference profile."""

    bought_categories: BoughtCategories
    avoided_categories: AvoidedCategories


class Recommendations(BaseModel):
    customer_id: uuid.UUID
    level: Level
    bought_categories: BoughtCategories
    avoided_categories: AvoidedCategories
    recommendations: list[Recommendation] = Field(description="Affinities first, best first.")
    rules_computed_at: datetime = Field(
        description="When the rules and popularity used here were mined from all purchases "
        "(the worker refreshes them periodically); purchases after it count only as the "
        "customer's own (bought SKUs and categories)."
    )


_CUSTOMER = sa.bindparam("customer_id", type_=sa.Uuid)
_AVOIDED = sa.bindparam("avoided", type_=ARRAY(sa.Text))
_LIMIT = sa.bindparam("limit", type_=sa.Integer)


def _profile() -> Compiled:
    """live, bought (JSON), avoided, computed_at (of the stored set): run with level
    `category`."""
    popular = (
        sa.select(P.c.item, P.c.baskets, P.c.first_sold)
        .where(P.c.level == Level.CATEGORY.value, P.c.share >= POPULAR_SHARE)
        .cte("popular")
    )
    my_purchases = baskets(customer=_CUSTOMER, name="my_baskets")
    category = items_of(my_purchases)
    mine = (
        sa.select(category.c.item.label("category"), sa.func.count().label("purchases"))
        .select_from(my_purchases)
        .join(category, sa.true())
        .group_by(category.c.item)
        .cte("mine")
    )
    opportunities = (
        sa.select(sa.func.count())
        .where(
            i.c.customer_id == _CUSTOMER,
            i.c.type == "purchase",
            i.c.occurred_at >= popular.c.first_sold,
        )
        .scalar_subquery()
    )
    avoided = sa.select(
        sa.func.array_agg(popular.c.item).aggregate_order_by(
            popular.c.baskets.desc(), popular.c.item
        )
    ).where(popular.c.item.not_in(sa.select(mine.c.category)), opportunities >= MIN_OPPORTUNITIES)
    bought = sa.select(
        sa.func.jsonb_agg(
            sa.func.jsonb_build_object("category", mine.c.category, "purchases", mine.c.purchases)
        ).aggregate_order_by(mine.c.purchases.desc(), mine.c.category)
    )
    return Compiled.of(
        sa.select(
            is_live(_CUSTOMER).label("live"),
            sa.func.coalesce(bought.scalar_subquery(), sa.text("'[]'::jsonb")).label("bought"),
            sa.func.coalesce(avoided.scalar_subquery(), sa.text("'{}'::text[]")).label("avoided"),
            sa.select(sa.func.min(R.c.computed_at)).scalar_subquery().label("computed_at"),
        )
    )


def _suggestions() -> Compiled:
    my_purchases = baskets(customer=_CUSTOMER, name="my_baskets")
    item = items_of(my_purchases)
    mine = sa.select(item.c.item).select_from(my_purchases).join(item, sa.true())
    by_rule = (
        sa.select(
            RR.c.consequent.label("item"),
            RR.c.confidence.label("score"),
            sa.literal(Source.AFFINITY.value).label("source"),
            RR.c.antecedent.label("because_of"),
            RR.c.lift,
        )
        .where(RR.c.level == LEVEL, RR.c.antecedent.in_(mine), RR.c.lift > 1)
        .order_by(RR.c.consequent, RR.c.confidence.desc(), RR.c.lift.desc(), RR.c.antecedent)
        .ext(distinct_on(RR.c.consequent))
    )
    by_popularity = sa.select(
        P.c.item,
        P.c.share.label("score"),
        sa.literal(Source.POPULARITY.value).label("source"),
        sa.null().label("because_of"),
        sa.null().label("lift"),
    ).where(P.c.level == LEVEL)
    candidates = sa.union_all(by_rule, by_popularity).subquery("candidates")
    # One suggestion per item: "affinity" sorts before "popularity".
    chosen = (
        sa.select(candidates)
        .order_by(candidates.c.item, candidates.c.source)
        .ext(distinct_on(candidates.c.item))
        .subquery("chosen")
    )
    # Every candidate is a stored item, with its categories (a category: itself).
    in_avoided_category = sa.exists().where(
        P.c.level == LEVEL, P.c.item == chosen.c.item, P.c.categories.op("&&")(_AVOIDED)
    )
    already_bought = sa.and_(Level.SKU.value == LEVEL, chosen.c.item.in_(mine))
    return Compiled.of(
        sa.select(chosen)
        .where(~in_avoided_category, ~already_bought)
        .order_by(chosen.c.source, chosen.c.score.desc(), chosen.c.item)
        .limit(_LIMIT)
    )


_PROFILE = _profile()
_SUGGESTIONS = _suggestions()


def _reason(source: Source, score: float, because_of: str | None, lift: float | None) -> str:
    if source is Source.AFFINITY:
        return (
            f"bought with {because_of} in {score:.0%} of baskets containing {because_of} "
            f"(lift {lift:.1f})"
        )
    return f"popular: in {score:.0%} of all baskets"


async def _preferences(
    conn: Queryable, customer_id: uuid.UUID
) -> tuple[CategoryPreferences, datetime]:
    """The preferences and when the stored set they rest on was mined (mined now, once,
    when it never was)."""
    profile = await _PROFILE.fetchrow(conn, customer_id=customer_id, level=Level.CATEGORY.value)
    assert profile is not None
    if not profile["live"]:
        raise NotFound(f"No customer with id {customer_id}.")
    if profile["computed_at"] is None:
        await stored_rules.refresh(conn, older_than=None, wait=True)
        profile = await _PROFILE.fetchrow(conn, customer_id=customer_id, level=Level.CATEGORY.value)
        assert profile is not None
    preferences = CategoryPreferences(
        bought_categories=profile["bought"], avoided_categories=profile["avoided"]
    )
    return preferences, profile["computed_at"]


async def category_preferences(conn: Queryable, customer_id: uuid.UUID) -> CategoryPreferences:
    """The live customer's bought and avoided categories (one statement; popularity from
    the stored set, mined first when it never was)."""
    return (await _preferences(conn, customer_id))[0]


async def recommendations(
    conn: Queryable, customer_id: uuid.UUID, *, level: Level = Level.SKU, limit: int = 10
) -> Recommendations:
    if not 1 <= limit <= MAX_SUGGESTIONS:
        raise ValidationFailed.for_field(
            "limit", f"must be between 1 and {MAX_SUGGESTIONS}", location="query"
        )
    preferences, computed_at = await _preferences(conn, customer_id)
    rows = await _SUGGESTIONS.fetch(
        conn,
        customer_id=customer_id,
        level=level.value,
        avoided=preferences.avoided_categories,
        limit=limit,
    )
    suggested = []
    for row in rows:
        source = Source(row["source"])
        reason = _reason(source, row["score"], row["because_of"], row["lift"])
        suggested.append(Recommendation(**dict(row), reason=reason))
    return Recommendations(
        customer_id=customer_id,
        level=level,
        **preferences.model_dump(),
        recommendations=suggested,
        rules_computed_at=computed_at,
    )
