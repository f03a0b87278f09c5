"""Stored association rules and item popularity, replaced as a whole by each refresh.

Not customer-owned: one small set per level (sku or category), read by every
recommendation (a reference table under a distributed schema).
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from crm_api.core.db import metadata

LEVELS = "level IN ('sku', 'category')"

recommendation_rules = sa.Table(
    "recommendation_rules",
    metadata,
    # Keyed for "the rules whose antecedent the customer bought".
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("antecedent", sa.Text, primary_key=True),
    sa.Column("consequent", sa.Text, primary_key=True),
    sa.Column("baskets_with_both", sa.Integer, nullable=False),
    sa.Column("antecedent_baskets", sa.Integer, nullable=False),
    sa.Column("consequent_baskets", sa.Integer, nullable=False),
    sa.Column("support", sa.Double, nullable=False),
    sa.Column("confidence", sa.Double, nullable=False),
    sa.Column("lift", sa.Double, nullable=False),
    sa.CheckConstraint(LEVELS, name="level"),
)

item_popularity = sa.Table(
    "item_popularity",
    metadata,
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("item", sa.Text, primary_key=True),
    sa.Column("baskets", sa.Integer, nullable=False),
    sa.Column("share", sa.Double, nullable=False),
    sa.Column("first_sold", sa.DateTime(timezone=True), nullable=False),
    # The categories of the item's lines (a category: itself), for leaving out avoided ones.
    sa.Column("categories", ARRAY(sa.Text), nullable=False),
    sa.CheckConstraint(LEVELS, name="level"),
)

recommendation_refreshes = sa.Table(
    "recommendation_refreshes",
    metadata,
    sa.Column("level", sa.Text, primary_key=True),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("baskets", sa.Integer, nullable=False),
    sa.Column("rules", sa.Integer, nullable=False),
    # Of the whole refresh that stored the level: the levels are mined together.
    sa.Column("seconds", sa.Double, nullable=False),
    sa.CheckConstraint(LEVELS, name="level"),
)

# Per day (UTC) and currency, the sums of the interactions the KPIs add up, so a KPI call
# reads a few thousand rows instead of the whole history (analytics/daily_totals.py).
# Rolled up in the background from the interactions' writing transactions; rows of
# feedback without money carry a null currency.
DAILY_COUNTS = ("facts", "orders", "nps_answers", "promoters", "detractors", "csat_answers",
                "satisfied")  # fmt: skip
DAILY_SUMS = ("sales", "refunds", "cogs", "covered", "service_cost")
interaction_daily_totals = sa.Table(
    "interaction_daily_totals",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("currency", sa.CHAR(3)),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in DAILY_COUNTS),
    *(sa.Column(name, sa.Numeric, nullable=False) for name in DAILY_SUMS),
)
# A day's row per currency, null included (inserts name this key on conflict).
DAILY_KEY = (
    interaction_daily_totals.c.day,
    sa.func.coalesce(interaction_daily_totals.c.currency, sa.literal_column("''")),
)
sa.Index("uq_interaction_daily_totals_day_currency", *DAILY_KEY, unique=True)

# How far each rollup has read: every interaction whose transaction id is below
# `rolled_before` is in it (and, from the first roll on, those written before ids were kept).
rollup_watermarks = sa.Table(
    "rollup_watermarks",
    metadata,
    sa.Column("rollup", sa.Text, primary_key=True),
    sa.Column("rolled_before", sa.BigInteger, nullable=False),
    sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
)
