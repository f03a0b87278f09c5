"""Webhook endpoints, the deliveries owed to them (the worker's queue) and each attempt."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from crm_api.core.db import metadata

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("event_types", ARRAY(sa.Text), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled_reason", sa.Text),
    # Whether payloads keep personal fields: only when a key with pii:read set it up.
    sa.Column("receives_pii", sa.Boolean, nullable=False),
    # Signing needs the secret itself; after a rotation the previous one signs alongside
    # until previous_secret_expires_at.
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text),
    sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True)),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
)
sa.Index(
    "ix_webhook_endpoints_created_at_id", webhook_endpoints.c.created_at, webhook_endpoints.c.id
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # Time-ordered (v7) and made by the database in set-based fan-out; it is also the
    # `webhook-id` header, identical on every attempt.
    sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("uuid7()")),
    sa.Column(
        "endpoint_id",
        sa.Uuid,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.Uuid, sa.ForeignKey("events.id"), nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    # Creation order, exact even within one statement (ids share a millisecond): fan-out
    # inserts in feed order, so first attempts go out and lists read in event order.
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # pending: waiting for next_attempt_at. sending: claimed by a worker until
    # next_attempt_at, past an attempt's time limit, so a delivery whose worker died comes
    # due again then. succeeded / failed: over.
    sa.Column(
        "next_attempt_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.now(),
    ),
    sa.Column("last_status_code", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("status IN ('pending', 'sending', 'succeeded', 'failed')", name="status"),
)
sa.Index(
    "uq_webhook_deliveries_endpoint_event",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.event_id,
    unique=True,
)
sa.Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.next_attempt_at,
    postgresql_where=webhook_deliveries.c.status.in_(["pending", "sending"]),
)
sa.Index("ix_webhook_deliveries_event_id", webhook_deliveries.c.event_id)
sa.Index(
    "ix_webhook_deliveries_endpoint_id_seq",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.seq,
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "delivery_id",
        sa.Uuid,
        sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("response_body", sa.Text),
    sa.Column("error", sa.Text),
)
sa.Index("ix_webhook_attempts_delivery", webhook_attempts.c.delivery_id, webhook_attempts.c.id)

# How far the events feed has been fanned out into deliveries: one row, locked by the
# worker that fans out, so several workers never create the same deliveries twice.
webhook_fanout = sa.Table(
    "webhook_fanout",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    sa.Column("tx_id", sa.BigInteger, nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)
