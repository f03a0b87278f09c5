"""API keys: only a SHA-256 of each secret is stored; the secret is shown once."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from crm_api.core.db import metadata

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.LargeBinary, nullable=False),
    # After a rotation the previous secret keeps working until previous_valid_until.
    sa.Column("previous_hash", sa.LargeBinary),
    sa.Column("previous_valid_until", sa.DateTime(timezone=True)),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("created_by", sa.Uuid),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    # Null: the server's default (setting `rate_limit_per_minute`).
    sa.Column("rate_limit_per_minute", sa.Integer),
    sa.CheckConstraint("rate_limit_per_minute >= 1", name="rate_limit_per_minute_positive"),
)
sa.Index("uq_api_keys_secret_hash", api_keys.c.secret_hash, unique=True)
sa.Index(
    "ix_api_keys_previous_hash",
    api_keys.c.previous_hash,
    postgresql_where=api_keys.c.previous_hash.isnot(None),
)
sa.Index("ix_api_keys_created_at_id", api_keys.c.created_at, api_keys.c.id)
