"""Scoring runs (the queue the worker takes them from) and the scores they wrote."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.core.db import metadata

scoring_runs = sa.Table(
    "scoring_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("scorer", sa.Text, nullable=False),
    sa.Column("scorer_version", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("config", JSONB, nullable=False),
    sa.Column("observation_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("time_unit", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3)),  # resolved when the run starts, if not given
    # queued -> running -> succeeded | failed; a worker that dies leaves its run to be
    # taken again once lease_until has passed.
    sa.Column("status", sa.Text, nullable=False, server_default="queued"),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("parameters", JSONB),
    sa.Column("diagnostics", JSONB),
    sa.Column("customers_scored", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("created_by", sa.Uuid),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed')", name="status"),
)
sa.Index("ix_scoring_runs_created_at_id", scoring_runs.c.created_at, scoring_runs.c.id)
sa.Index(
    "ix_scoring_runs_latest",
    scoring_runs.c.scorer,
    scoring_runs.c.finished_at,
    postgresql_where=scoring_runs.c.status == "succeeded",
)
sa.Index(
    "ix_scoring_runs_due",
    scoring_runs.c.created_at,
    postgresql_where=scoring_runs.c.status.in_(["queued", "running"]),
)

customer_scores = sa.Table(
    "customer_scores",
    metadata,
    sa.Column(
        "customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True, nullable=False
    ),
    sa.Column(
        "run_id",
        sa.Uuid,
        sa.ForeignKey("scoring_runs.id", ondelete="CASCADE"),
        primary_key=True,
        nullable=False,
    ),
    sa.Column("scorer", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("score", sa.Float),
    sa.Column("label", sa.Text),
    sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
)
# Rankings within a run (churn at risk), and a run's members of one label (segments).
sa.Index("ix_customer_scores_run_score", customer_scores.c.run_id, customer_scores.c.score)
sa.Index("ix_customer_scores_run_label", customer_scores.c.run_id, customer_scores.c.label)
