"""Segments, their current members and the history of every stay in them."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from crm_api.core.db import metadata

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    # The condition tree as validated (segments/conditions.py); static segments have none.
    sa.Column("condition", JSONB),
    # The segments its condition refers to: cycle checks and delete guards read this.
    sa.Column("depends_on", ARRAY(sa.Uuid), nullable=False, server_default="{}"),
    sa.Column("refresh_interval", sa.Integer),  # seconds; null: refreshed on request only
    sa.Column("refreshed_at", sa.DateTime(timezone=True)),
    sa.Column("next_refresh_at", sa.DateTime(timezone=True)),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint("kind IN ('rule', 'model', 'static')", name="kind"),
    sa.CheckConstraint("(kind = 'static') = (condition IS NULL)", name="condition_fits_kind"),
    sa.CheckConstraint("refresh_interval > 0", name="refresh_interval_positive"),
)
sa.Index("uq_segments_name", sa.func.lower(segments.c.name), unique=True)
sa.Index("ix_segments_created_at_id", segments.c.created_at, segments.c.id)
sa.Index(
    "ix_segments_due",
    segments.c.next_refresh_at,
    postgresql_where=segments.c.next_refresh_at.isnot(None),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column(
        "segment_id",
        sa.Uuid,
        sa.ForeignKey("segments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "entered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
sa.Index(
    "ix_segment_members_segment_id_customer_id",
    segment_members.c.segment_id,
    segment_members.c.customer_id,
)

# One row per stay: opened when a customer enters, closed (exited_at) when they leave.
segment_membership_history = sa.Table(
    "segment_membership_history",
    metadata,
    sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id"), primary_key=True),
    sa.Column(
        "segment_id",
        sa.Uuid,
        sa.ForeignKey("segments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("entered_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("exited_at", sa.DateTime(timezone=True)),
)
sa.Index(
    "ix_segment_membership_history_segment_entered",
    segment_membership_history.c.segment_id,
    segment_membership_history.c.entered_at,
    segment_membership_history.c.customer_id,
)
