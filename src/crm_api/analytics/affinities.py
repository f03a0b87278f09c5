"""Product affinities: association rules X -> Y over items bought together in one purchase.

A basket is one purchase; its items are the distinct SKUs (or categories) of its lines.
For a rule X -> Y over N baskets:
  support    = baskets with X and Y / N
  confidence = baskets with X and Y / baskets with X
  lift       = confidence / (baskets with Y / N)
A pair can only reach `min_support` if each of its items does, so only such frequent items
are paired up within each basket (the Apriori property).
"""

from enum import StrEnum
from typing import Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from crm_api.core.db import Compiled, Queryable
from crm_api.core.types import Timestamp
from crm_api.interactions.models import interaction_items as ii
from crm_api.interactions.models import interactions as i


class Level(StrEnum):
    SKU = "sku"
    CATEGORY = "category"


MAX_RULES = 500
DEFAULT_MIN_SUPPORT = 0.01
DEFAULT_MIN_CONFIDENCE = 0.1
DEFAULT_MIN_LIFT = 1.0


class AffinityQuery(BaseModel):
    """The rules asked for: REST's query parameters, GraphQL's arguments."""

    model_config = ConfigDict(populate_by_name=True)

    level: Level = Field(default=Level.SKU, description="Pair SKUs or categories.")
    min_support: float = Field(
        default=DEFAULT_MIN_SUPPORT,
        gt=0,
        le=1,
        description="Least share of all baskets with X and Y.",
    )
    min_confidence: float = Field(
        default=DEFAULT_MIN_CONFIDENCE,
        ge=0,
        le=1,
        description="Least share of X's baskets that have Y.",
    )
    min_lift: float = Field(default=DEFAULT_MIN_LIFT, ge=0, description="Least lift.")
    since: Timestamp | None = Field(
        default=None, alias="from", description="Purchases at or after this instant."
    )
    until: Timestamp | None = Field(
        default=None, alias="to", description="Purchases before this instant."
    )
    limit: int = Field(default=50, ge=1, le=MAX_RULES, description="At most this many rules.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("`to` must be after `from`")
        return self


class AssociationRule(BaseModel):
    antecedent: str = Field(description="X: the item (SKU or category) in the basket.")
    consequent: str = Field(description="Y: the item bought with it.")
    baskets_with_both: int = Field(description="Baskets containing X and Y.")
    antecedent_baskets: int = Field(description="Baskets containing X.")
    consequent_baskets: int = Field(description="Baskets containing Y.")
    support: float = Field(description="baskets_with_both / baskets (of the response).")
    confidence: float = Field(description="baskets_with_both / antecedent_baskets.")
    lift: float = Field(
        description="confidence / (consequent_baskets / baskets): above 1, Y is bought with X "
        "more often than on its own."
    )


class Affinities(BaseModel):
    level: Level
    baskets: int = Field(description="Purchases with at least one item at this level.")
    rules: list[AssociationRule] = Field(
        description="Ordered by lift, then confidence, descending."
    )


LEVEL = sa.bindparam("level", type_=sa.Text)
MIN_SUPPORT = sa.bindparam("min_support", type_=sa.Float)
_SINCE = sa.bindparam("since", type_=sa.DateTime(timezone=True))
_UNTIL = sa.bindparam("until", type_=sa.DateTime(timezone=True))
_MIN_CONFIDENCE = sa.bindparam("min_confidence", type_=sa.Float)
_MIN_LIFT = sa.bindparam("min_lift", type_=sa.Float)
_LIMIT = sa.bindparam("limit", type_=sa.Integer)


def ratio(part: sa.ColumnElement[int], whole: sa.ColumnElement[int]) -> sa.ColumnElement[float]:
    return sa.cast(part, sa.Float) / sa.cast(whole, sa.Float)


# A line's item at each level.
_ITEMS = {Level.SKU: ii.c.sku, Level.CATEGORY: ii.c.category}


def _purchase_lines(*columns: sa.ColumnElement, where: list[sa.ColumnElement[bool]]) -> sa.Select:
    """Per purchase (its customer, id as `basket`, occurred_at): ``columns`` aggregated over
    its lines meeting ``where``."""
    return (
        sa.select(ii.c.customer_id, ii.c.interaction_id.label("basket"), i.c.occurred_at, *columns)
        .join(i, sa.and_(i.c.customer_id == ii.c.customer_id, i.c.id == ii.c.interaction_id))
        .where(i.c.type == "purchase", *where)
        .group_by(ii.c.customer_id, ii.c.interaction_id, i.c.occurred_at)
    )


def baskets(
    *,
    since: sa.ColumnElement | None = None,
    until: sa.ColumnElement | None = None,
    customer: sa.ColumnElement | None = None,
    name: str = "baskets",
) -> sa.CTE:
    """CTE (customer_id, basket, occurred_at, items): each purchase (of `customer` if given)
    with the distinct items of its lines at `level`. One row per basket keeps counting
    baskets and pairing items within them free of any join or DISTINCT over the lines."""
    item = sa.case((Level.SKU.value == LEVEL, _ITEMS[Level.SKU]), else_=_ITEMS[Level.CATEGORY])
    window = [item.isnot(None)]
    if since is not None:
        window.append(sa.or_(since.is_(None), i.c.occurred_at >= since))
    if until is not None:
        window.append(sa.or_(until.is_(None), i.c.occurred_at < until))
    if customer is not None:
        window.append(ii.c.customer_id == customer)
    items = sa.func.array_agg(sa.distinct(item)).label("items")
    return _purchase_lines(items, where=window).cte(name)


def baskets_at_every_level() -> sa.CTE:
    """CTE (customer_id, basket, occurred_at, and per level a column named after it): each
    purchase with the distinct items of its lines at each level, null where it has none
    there. One pass over the lines for all levels; `at_level` takes one level's view."""
    arrays = [
        sa.func.array_agg(sa.distinct(column)).filter(column.isnot(None)).label(level.value)
        for level, column in _ITEMS.items()
    ]
    return _purchase_lines(*arrays, where=[]).cte("all_baskets")


def at_level(all_baskets: sa.CTE, level: Level) -> sa.CTE:
    """A `baskets` CTE over `baskets_at_every_level`: the purchases with items at `level`."""
    items = all_baskets.c[level.value]
    return (
        sa.select(
            all_baskets.c.customer_id,
            all_baskets.c.basket,
            all_baskets.c.occurred_at,
            items.label("items"),
        )
        .where(items.isnot(None))
        .cte(f"{level.value}_baskets")
        .prefix_with("NOT MATERIALIZED")  # a filter over the one basket pass, not a copy
    )


def items_of(basket_rows: sa.CTE, name: str = "item") -> sa.TableValuedAlias:
    """The items of each row of `basket_rows`, one row each (joined laterally)."""
    unnested = sa.func.unnest(basket_rows.c["items"]).table_valued("item", joins_implicitly=True)
    return unnested.render_derived(name=name)


class Counts:
    """The basket count of a `baskets` CTE, and each frequent item's count and first sale."""

    def __init__(self, basket_rows: sa.CTE) -> None:
        # CTEs named after the baskets', so that one statement can count several levels.
        counted = sa.select(sa.func.count().label("n")).select_from(basket_rows)
        totals = counted.cte(f"{basket_rows.name}_totals")
        self.total = sa.select(totals.c.n).scalar_subquery()
        item = items_of(basket_rows)
        self.frequent = (
            sa.select(
                item.c.item,
                sa.func.count().label("baskets"),
                sa.func.min(basket_rows.c.occurred_at).label("first_sold"),
            )
            .select_from(basket_rows)
            .join(item, sa.true())
            .group_by(item.c.item)
            .having(ratio(sa.func.count(), self.total) >= MIN_SUPPORT)
            .cte(f"{basket_rows.name}_frequent")
        )


def rules(basket_rows: sa.CTE, counts: Counts, antecedents: sa.Select | None = None) -> sa.Select:
    """Rules with support >= `min_support`, their antecedent among `antecedents` if given.

    A basket's items are paired once per unordered pair (a < b), half the rows and groups
    of counting both directions; each pair reaching `min_support` then gives both rules.
    """
    a = items_of(basket_rows, "a")
    b = items_of(basket_rows, "b")
    frequent = sa.select(counts.frequent.c.item)
    # Only baskets holding an antecedent can give its rules.
    involved = (
        []
        if antecedents is None
        else [
            basket_rows.c["items"].op("&&")(sa.func.array(antecedents.scalar_subquery())),
            sa.or_(a.c.item.in_(antecedents), b.c.item.in_(antecedents)),
        ]
    )
    pairs = (
        sa.select(a.c.item.label("a"), b.c.item.label("b"), sa.func.count().label("both"))
        .select_from(basket_rows)
        .join(a, sa.true())
        .join(b, b.c.item > a.c.item)
        .where(
            # A basket of one item makes no pair: not unnested.
            sa.func.cardinality(basket_rows.c["items"]) > 1,
            a.c.item.in_(frequent),
            b.c.item.in_(frequent),
            *involved,
        )
        .group_by(a.c.item, b.c.item)
        .having(ratio(sa.func.count(), counts.total) >= MIN_SUPPORT)
        .cte(f"{basket_rows.name}_pairs")
    )
    directed = sa.union_all(
        sa.select(pairs.c.a.label("x"), pairs.c.b.label("y"), pairs.c.both),
        sa.select(pairs.c.b, pairs.c.a, pairs.c.both),
    ).subquery("directed")
    fx = counts.frequent.alias(f"{basket_rows.name}_fx")
    fy = counts.frequent.alias(f"{basket_rows.name}_fy")
    both = directed.c.both
    restricted = [] if antecedents is None else [directed.c.x.in_(antecedents)]
    return (
        sa.select(
            directed.c.x.label("antecedent"),
            directed.c.y.label("consequent"),
            both.label("baskets_with_both"),
            fx.c.baskets.label("antecedent_baskets"),
            fy.c.baskets.label("consequent_baskets"),
            ratio(both, counts.total).label("support"),
            ratio(both, fx.c.baskets).label("confidence"),
            ratio(both * counts.total, fx.c.baskets * fy.c.baskets).label("lift"),
        )
        .join(fx, fx.c.item == directed.c.x)
        .join(fy, fy.c.item == directed.c.y)
        .where(*restricted)
    )


def _affinities() -> Compiled:
    purchases = baskets(since=_SINCE, until=_UNTIL)
    counts = Counts(purchases)
    found = rules(purchases, counts).subquery("rules")
    listed = (
        sa.select(found)
        .where(found.c.confidence >= _MIN_CONFIDENCE, found.c.lift >= _MIN_LIFT)
        .order_by(
            found.c.lift.desc(),
            found.c.confidence.desc(),
            found.c.support.desc(),
            found.c.antecedent,
            found.c.consequent,
        )
        .limit(_LIMIT)
        .subquery("listed")
    )
    as_json = sa.func.coalesce(
        sa.select(sa.func.jsonb_agg(sa.literal_column("listed")))
        .select_from(listed)
        .scalar_subquery(),
        sa.text("'[]'::jsonb"),
    )
    return Compiled.of(sa.select(counts.total.label("baskets"), as_json.label("rules")))


_AFFINITIES = _affinities()


async def affinities(conn: Queryable, query: AffinityQuery) -> Affinities:
    """The association rules over purchases in [since, until), strongest first."""
    row = await _AFFINITIES.fetchrow(conn, **query.model_dump())
    assert row is not None
    return Affinities(level=query.level, baskets=row["baskets"], rules=row["rules"])
