"""interactions.sentiment: the VADER compound score of feedback and support texts

Revision ID: 0008_interaction_sentiment
Revises: 0007_loyalty_lots_hot
Create Date: 2026-11-23 19:10:00.000000+00:00

Nullable without a default, so adding it rewrites no rows; interactions recorded before it
stay unscored. A partial index on occurred_at serves the sentiment trend, which reads scored
interactions only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_interaction_sentiment"
down_revision: str | None = "0007_loyalty_lots_hot"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interactions", sa.Column("sentiment", sa.Double))
    op.create_check_constraint(
        op.f("ck_interactions_sentiment_range"), "interactions", "sentiment BETWEEN -1 AND 1"
    )
    op.create_index(
        "ix_interactions_sentiment",
        "interactions",
        ["occurred_at"],
        postgresql_where=sa.text("sentiment IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_sentiment", table_name="interactions")
    op.drop_constraint(op.f("ck_interactions_sentiment_range"), "interactions")
    op.drop_column("interactions", "sentiment")
