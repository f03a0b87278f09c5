"""recommendation rules, refreshed by the worker

Revision ID: 0011_recommendation_rules
Revises: 0010_campaigns
Create Date: 2026-12-03 14:30:00.000000+00:00

The association rules and item popularity behind recommendations, mined by a periodic
refresh instead of on every request, and one row per level recording the last refresh.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_recommendation_rules"
down_revision: str | None = "0010_campaigns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = "level IN ('sku', 'category')"


def upgrade() -> None:
    op.create_table(
        "recommendation_rules",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("antecedent", sa.Text(), nullable=False),
        sa.Column("consequent", sa.Text(), nullable=False),
        sa.Column("baskets_with_both", sa.Integer(), nullable=False),
        sa.Column("antecedent_baskets", sa.Integer(), nullable=False),
        sa.Column("consequent_baskets", sa.Integer(), nullable=False),
        sa.Column("support", sa.Double(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("lift", sa.Double(), nullable=False),
        sa.CheckConstraint(LEVELS, name=op.f("ck_recommendation_rules_level")),
        sa.PrimaryKeyConstraint(
            "level", "antecedent", "consequent", name=op.f("pk_recommendation_rules")
        ),
    )
    op.create_table(
        "item_popularity",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        sa.Column("first_sold", sa.DateTime(timezone=True), nullable=False),
        sa.Column("categories", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.CheckConstraint(LEVELS, name=op.f("ck_item_popularity_level")),
        sa.PrimaryKeyConstraint("level", "item", name=op.f("pk_item_popularity")),
    )
    op.create_table(
        "recommendation_refreshes",
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("baskets", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.CheckConstraint(LEVELS, name=op.f("ck_recommendation_refreshes_level")),
        sa.PrimaryKeyConstraint("level", name=op.f("pk_recommendation_refreshes")),
    )


def downgrade() -> None:
    op.drop_table("recommendation_refreshes")
    op.drop_table("item_popularity")
    op.drop_table("recommendation_rules")
