"""The timeline: interactions (immutable facts) and the line items of purchases and refunds."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.core.db import metadata
from crm_api.events.models import XACT_ID

interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("external_id", sa.Text),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("channel", sa.Text),
    sa.Column("direction", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column(
        "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("subject", sa.Text),
    sa.Column("body", sa.Text),
    sa.Column("campaign", sa.Text),
    sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
    sa.Column("amount", sa.BigInteger),
    sa.Column("currency", sa.CHAR(3)),
    sa.Column("nps", sa.SmallInteger),
    sa.Column("csat", sa.SmallInteger),
    # A refund's purchase (same customer), so loyalty can take back what it earned.
    sa.Column("refund_of", sa.Uuid),
    # Feedback and support texts: VADER's compound score, from -1 (negative) to 1.
    sa.Column("sentiment", sa.Double),
    # What serving the customer cost (a support call, a visit), in `currency`.
    sa.Column("service_cost", sa.BigInteger),
    # Derived from the line items when written (interactions/service.py), so profitability
    # reads the row instead of summing its items; not part of the resource. Unsigned, null
    # when no item carries a unit_cost: the items' quantity x unit_cost, and the amount
    # times the share of the items' value (quantity x unit_price) that carries a cost.
    sa.Column("items_cost", sa.Numeric),
    sa.Column("costed_amount", sa.Numeric),
    # The writing transaction's number, as the outbox's events carry it: the daily totals
    # (analytics/daily_totals.py) roll up rows by it. Null on rows written before it was
    # kept; the first roll takes those.
    sa.Column("tx_id", sa.BigInteger, server_default=sa.text(XACT_ID)),
    sa.CheckConstraint(
        "(currency IS NULL) = (amount IS NULL AND service_cost IS NULL)", name="money"
    ),
    sa.CheckConstraint("amount IS NULL OR amount >= 0", name="amount_non_negative"),
    sa.CheckConstraint("nps IS NULL OR nps BETWEEN 0 AND 10", name="nps_range"),
    sa.CheckConstraint("csat IS NULL OR csat BETWEEN 1 AND 5", name="csat_range"),
    sa.CheckConstraint(
        "direction IS NULL OR direction IN ('inbound', 'outbound')", name="direction"
    ),
    sa.CheckConstraint("refund_of IS NULL OR type = 'refund'", name="refund_of_refunds"),
    sa.CheckConstraint("sentiment BETWEEN -1 AND 1", name="sentiment_range"),
    sa.CheckConstraint("service_cost >= 0", name="service_cost_non_negative"),
)
# The timeline query: one customer's interactions, newest first.
sa.Index(
    "ix_interactions_timeline",
    interactions.c.customer_id,
    interactions.c.occurred_at.desc(),
    interactions.c.id.desc(),
)
sa.Index("ix_interactions_occurred_at_id", interactions.c.occurred_at, interactions.c.id)
sa.Index("ix_interactions_id", interactions.c.id)
sa.Index(
    "ix_interactions_tx_id",
    interactions.c.tx_id,
    postgresql_where=interactions.c.tx_id.isnot(None),
)
# The sentiment trend reads scored interactions only, by time.
sa.Index(
    "ix_interactions_sentiment",
    interactions.c.occurred_at,
    postgresql_where=interactions.c.sentiment.isnot(None),
)
# Campaign performance reads a campaign's labelled interactions by time.
sa.Index(
    "ix_interactions_campaign",
    interactions.c.campaign,
    interactions.c.occurred_at,
    postgresql_where=interactions.c.campaign.isnot(None),
)
sa.Index(
    "uq_interactions_external_id",
    interactions.c.customer_id,
    interactions.c.external_id,
    unique=True,
    postgresql_where=interactions.c.external_id.isnot(None),
)

interaction_items = sa.Table(
    "interaction_items",
    metadata,
    sa.Column("customer_id", sa.Uuid, primary_key=True),
    sa.Column("interaction_id", sa.Uuid, primary_key=True),
    sa.Column("line", sa.SmallInteger, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("category", sa.Text),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.BigInteger, nullable=False),
    # What one unit cost us, in the interaction's currency; null when not known.
    sa.Column("unit_cost", sa.BigInteger),
    sa.ForeignKeyConstraint(
        ["customer_id", "interaction_id"],
        ["interactions.customer_id", "interactions.id"],
        name="fk_interaction_items_interaction",
    ),
    sa.CheckConstraint("quantity > 0", name="quantity_positive"),
    sa.CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
    sa.CheckConstraint("unit_cost >= 0", name="unit_cost_non_negative"),
)
# By SKU, and a SKU's categories read from the index alone (the recommendation rules' refresh).
sa.Index("ix_interaction_items_sku_category", interaction_items.c.sku, interaction_items.c.category)
