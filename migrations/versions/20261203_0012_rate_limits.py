"""rate limits per API key

Revision ID: 0012_rate_limits
Revises: 0011_recommendation_rules
Create Date: 2026-12-03 15:00:00.000000+00:00

A key's own requests-per-minute limit (null: the server's default), and the shared token
buckets. The buckets are UNLOGGED: they are rewritten constantly, and losing them in a
crash only refills every bucket, so they skip the write-ahead log.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_rate_limits"
down_revision: str | None = "0011_recommendation_rules"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate_limit_per_minute", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_api_keys_rate_limit_per_minute_positive"),
        "api_keys",
        "rate_limit_per_minute >= 1",
    )
    op.create_table(
        "rate_limit_buckets",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("api_key_id", name=op.f("pk_rate_limit_buckets")),
        prefixes=["UNLOGGED"],
    )


def downgrade() -> None:
    op.drop_table("rate_limit_buckets")
    op.drop_constraint(op.f("ck_api_keys_rate_limit_per_minute_positive"), "api_keys")
    op.drop_column("api_keys", "rate_limit_per_minute")
