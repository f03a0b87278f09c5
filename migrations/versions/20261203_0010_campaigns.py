"""campaigns, and an index on the interactions labelled with a campaign

Revision ID: 0010_campaigns
Revises: 0009_profitability
Create Date: 2026-12-03 14:30:00.000000+00:00

Interactions keep their free-text `campaign` label (no foreign key); the partial index
serves the performance query, which reads one campaign's labelled interactions by time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_campaigns"
down_revision: str | None = "0009_profitability"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=True),
        sa.Column("cost", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attribution_window_days", sa.Integer(), server_default="7", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("cost >= 0", name=op.f("ck_campaigns_cost_non_negative")),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_campaigns_ends_after_start")),
        sa.CheckConstraint(
            "attribution_window_days BETWEEN 0 AND 90",
            name=op.f("ck_campaigns_attribution_window_range"),
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_campaigns_segment_id_segments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_index(
        "uq_campaigns_code",
        "campaigns",
        ["code"],
        unique=True,
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_campaigns_created_at_id", "campaigns", ["created_at", "id"])
    op.create_index(
        "ix_interactions_campaign",
        "interactions",
        ["campaign", "occurred_at"],
        postgresql_where=sa.text("campaign IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_interactions_campaign", table_name="interactions")
    op.drop_index("ix_campaigns_created_at_id", table_name="campaigns")
    op.drop_index("uq_campaigns_code", table_name="campaigns")
    op.drop_table("campaigns")
