"""lifecycle: the stage graph, automatic-transition rules and every customer's transitions

Revision ID: 0006_lifecycle
Revises: 0005_loyalty
Create Date: 2026-11-23 15:10:00.000000+00:00

Seeds the default graph, the customer life cycle:

    prospect -> onboarding -> active -> loyal -> advocate
    prospect -> active (a first purchase may skip onboarding)
    active | loyal | advocate -> at_risk -> active (recovered) | churned
    churned -> won_back -> active
    onboarding -> at_risk (a new customer who stalls), won_back -> at_risk (a relapse)

and the four rules, all switched off.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_lifecycle"
down_revision: str | None = "0005_loyalty"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = [
    ("prospect", "Known to us, has not bought yet; where every customer starts."),
    ("onboarding", "Made a first purchase; being introduced to the product."),
    ("active", "Buys or engages regularly."),
    ("loyal", "A repeat customer over a long time."),
    ("advocate", "A loyal customer who recommends us."),
    ("at_risk", "Shows signs of leaving: a high churn score or a long silence."),
    ("churned", "Has stopped buying."),
    ("won_back", "Came back after churning."),
]
EDGES = [
    ("prospect", "onboarding"),
    ("prospect", "active"),
    ("onboarding", "active"),
    ("onboarding", "at_risk"),
    ("active", "loyal"),
    ("active", "at_risk"),
    ("loyal", "advocate"),
    ("loyal", "at_risk"),
    ("advocate", "at_risk"),
    ("at_risk", "active"),
    ("at_risk", "churned"),
    ("churned", "won_back"),
    ("won_back", "active"),
    ("won_back", "at_risk"),
]
RULES = ["first_purchase", "churn_risk", "inactivity", "win_back"]


def upgrade() -> None:
    graph = op.create_table(
        "lifecycle_graph",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_lifecycle_graph_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifecycle_graph")),
    )
    stages = op.create_table(
        "lifecycle_stages",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lifecycle_stages")),
    )
    edges = op.create_table(
        "lifecycle_edges",
        sa.Column("from_stage", sa.Text(), nullable=False),
        sa.Column("to_stage", sa.Text(), nullable=False),
        sa.CheckConstraint("from_stage <> to_stage", name=op.f("ck_lifecycle_edges_no_self_loop")),
        sa.ForeignKeyConstraint(
            ["from_stage"],
            ["lifecycle_stages.name"],
            name=op.f("fk_lifecycle_edges_from_stage_lifecycle_stages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_stage"],
            ["lifecycle_stages.name"],
            name=op.f("fk_lifecycle_edges_to_stage_lifecycle_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("from_stage", "to_stage", name=op.f("pk_lifecycle_edges")),
    )
    rules = op.create_table(
        "lifecycle_rules",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lifecycle_rules")),
    )
    op.create_table(
        "lifecycle_transitions",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("from_stage", sa.Text(), nullable=False),
        sa.Column("to_stage", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_key_id", sa.Uuid(), nullable=True),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "automatic = (rule IS NOT NULL)",
            name=op.f("ck_lifecycle_transitions_rule_iff_automatic"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_lifecycle_transitions_customer_id_customers"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "id", name=op.f("pk_lifecycle_transitions")),
    )
    op.create_index(
        "ix_lifecycle_transitions_history",
        "lifecycle_transitions",
        ["customer_id", sa.text("occurred_at DESC"), sa.text("id DESC")],
        unique=False,
    )
    op.create_index("ix_lifecycle_transitions_id", "lifecycle_transitions", ["id"], unique=False)
    op.bulk_insert(graph, [{"id": 1, "version": 1}])
    op.bulk_insert(
        stages,
        [
            {"name": name, "description": description, "position": position}
            for position, (name, description) in enumerate(STAGES)
        ],
    )
    op.bulk_insert(edges, [{"from_stage": a, "to_stage": b} for a, b in EDGES])
    op.bulk_insert(rules, [{"name": name, "enabled": False, "settings": {}} for name in RULES])


def downgrade() -> None:
    op.drop_index("ix_lifecycle_transitions_id", table_name="lifecycle_transitions")
    op.drop_index("ix_lifecycle_transitions_history", table_name="lifecycle_transitions")
    op.drop_table("lifecycle_transitions")
    op.drop_table("lifecycle_rules")
    op.drop_table("lifecycle_edges")
    op.drop_table("lifecycle_stages")
    op.drop_table("lifecycle_graph")
