"""The stage graph (stages, allowed moves, its version), the rules and every transition."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.core.db import metadata

# The graph's one row: its version is the ETag of the stages, and locking it serialises a
# replacement of the graph against transitions (they hold it FOR KEY SHARE, a PUT FOR UPDATE).
lifecycle_graph = sa.Table(
    "lifecycle_graph",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, server_default="1"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("id = 1", name="single_row"),
)

lifecycle_stages = sa.Table(
    "lifecycle_stages",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("description", sa.Text),
    sa.Column("position", sa.Integer, nullable=False),
)

lifecycle_edges = sa.Table(
    "lifecycle_edges",
    metadata,
    sa.Column(
        "from_stage",
        sa.Text,
        sa.ForeignKey("lifecycle_stages.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "to_stage",
        sa.Text,
        sa.ForeignKey("lifecycle_stages.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.CheckConstraint("from_stage <> to_stage", name="no_self_loop"),
)

lifecycle_rules = sa.Table(
    "lifecycle_rules",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    # Validated by the rule's settings model (lifecycle/schemas.py); defaults filled in.
    sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
)

lifecycle_transitions = sa.Table(
    "lifecycle_transitions",
    metadata,
    sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("from_stage", sa.Text, nullable=False),
    sa.Column("to_stage", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("actor_key_id", sa.Uuid),  # the API key of a manual move; null for rules
    sa.Column("automatic", sa.Boolean, nullable=False),
    sa.Column("rule", sa.Text),
    sa.Column(
        "occurred_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("automatic = (rule IS NOT NULL)", name="rule_iff_automatic"),
)
# A customer's history, newest first.
sa.Index(
    "ix_lifecycle_transitions_history",
    lifecycle_transitions.c.customer_id,
    lifecycle_transitions.c.occurred_at.desc(),
    lifecycle_transitions.c.id.desc(),
)
sa.Index("ix_lifecycle_transitions_id", lifecycle_transitions.c.id)
