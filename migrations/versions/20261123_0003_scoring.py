"""scoring: runs and per-customer scores

Revision ID: 0003_scoring
Revises: 0002_webhooks
Create Date: 2026-11-23 13:08:49.186393+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_scoring"
down_revision: str | None = "0002_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scoring_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scorer", sa.Text(), nullable=False),
        sa.Column("scorer_version", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("observation_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_unit", sa.Text(), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=True),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("progress", sa.Float(), server_default="0", nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("diagnostics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("customers_scored", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_scoring_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_runs")),
    )
    op.create_index(
        "ix_scoring_runs_created_at_id", "scoring_runs", ["created_at", "id"], unique=False
    )
    op.create_index(
        "ix_scoring_runs_due",
        "scoring_runs",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index(
        "ix_scoring_runs_latest",
        "scoring_runs",
        ["scorer", "finished_at"],
        unique=False,
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.create_table(
        "customer_scores",
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("scorer", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_scores_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["scoring_runs.id"],
            name=op.f("fk_customer_scores_run_id_scoring_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "run_id", name=op.f("pk_customer_scores")),
    )
    op.create_index(
        "ix_customer_scores_run_label", "customer_scores", ["run_id", "label"], unique=False
    )
    op.create_index(
        "ix_customer_scores_run_score", "customer_scores", ["run_id", "score"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_customer_scores_run_score", table_name="customer_scores")
    op.drop_index("ix_customer_scores_run_label", table_name="customer_scores")
    op.drop_table("customer_scores")
    op.drop_index(
        "ix_scoring_runs_latest",
        table_name="scoring_runs",
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.drop_index(
        "ix_scoring_runs_due",
        table_name="scoring_runs",
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.drop_index("ix_scoring_runs_created_at_id", table_name="scoring_runs")
    op.drop_table("scoring_runs")
