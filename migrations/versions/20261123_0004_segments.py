"""segments: definitions, current members and the history of every stay

Revision ID: 0004_segments
Revises: 0003_scoring
Create Date: 2026-11-23 13:23:57.961583+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_segments"
down_revision: str | None = "0003_scoring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("condition", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("depends_on", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("refresh_interval", sa.Integer(), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_refresh_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "(kind = 'static') = (condition IS NULL)", name=op.f("ck_segments_condition_fits_kind")
        ),
        sa.CheckConstraint("kind IN ('rule', 'model', 'static')", name=op.f("ck_segments_kind")),
        sa.CheckConstraint(
            "refresh_interval > 0", name=op.f("ck_segments_refresh_interval_positive")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    op.create_index("ix_segments_created_at_id", "segments", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_segments_due",
        "segments",
        ["next_refresh_at"],
        unique=False,
        postgresql_where=sa.text("next_refresh_at IS NOT NULL"),
    )
    op.create_index("uq_segments_name", "segments", [sa.literal_column("lower(name)")], unique=True)
    op.create_table(
        "segment_members",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column(
            "entered_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_segment_members_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_members_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "segment_id", name=op.f("pk_segment_members")),
    )
    op.create_index(
        "ix_segment_members_segment_id_customer_id",
        "segment_members",
        ["segment_id", "customer_id"],
        unique=False,
    )
    op.create_table(
        "segment_membership_history",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("segment_id", sa.Uuid(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_segment_membership_history_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_membership_history_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "customer_id", "segment_id", "entered_at", name=op.f("pk_segment_membership_history")
        ),
    )
    op.create_index(
        "ix_segment_membership_history_segment_entered",
        "segment_membership_history",
        ["segment_id", "entered_at", "customer_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_segment_membership_history_segment_entered", table_name="segment_membership_history"
    )
    op.drop_table("segment_membership_history")
    op.drop_index("ix_segment_members_segment_id_customer_id", table_name="segment_members")
    op.drop_table("segment_members")
    op.drop_index("uq_segments_name", table_name="segments")
    op.drop_index(
        "ix_segments_due",
        table_name="segments",
        postgresql_where=sa.text("next_refresh_at IS NOT NULL"),
    )
    op.drop_index("ix_segments_created_at_id", table_name="segments")
    op.drop_table("segments")
