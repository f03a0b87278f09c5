"""Campaigns. Interactions name a campaign by its `code` (a label, no foreign key): they are
immutable facts and may be imported before the campaign is registered."""

import sqlalchemy as sa

from crm_api.core.db import metadata

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("channel", sa.Text, nullable=False),
    # The target segment; a campaign outlives the segment's deletion.
    sa.Column("segment_id", sa.Uuid, sa.ForeignKey("segments.id", ondelete="SET NULL")),
    sa.Column("cost", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ends_at", sa.DateTime(timezone=True)),
    sa.Column("attribution_window_days", sa.Integer, nullable=False, server_default="7"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("cost >= 0", name="cost_non_negative"),
    sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    sa.CheckConstraint("attribution_window_days BETWEEN 0 AND 90", name="attribution_window_range"),
)
# Codes name live campaigns only: a deleted campaign's code may be used again.
sa.Index(
    "uq_campaigns_code",
    campaigns.c.code,
    unique=True,
    postgresql_where=campaigns.c.deleted_at.is_(None),
)
sa.Index("ix_campaigns_created_at_id", campaigns.c.created_at, campaigns.c.id)
