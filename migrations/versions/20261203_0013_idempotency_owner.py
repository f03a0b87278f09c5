"""idempotency_keys: the database session that holds an unanswered claim

Revision ID: 0013_idempotency_owner
Revises: 0012_rate_limits
Create Date: 2026-12-03 15:10:00.000000+00:00

A claim whose session is gone (the server process died, the database restarted) belongs to
no request any more; knowing the session lets a retry take the key over at once instead of
waiting for the claim to go stale. Nullable: answered keys and older claims have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_idempotency_owner"
down_revision: str | None = "0012_rate_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("owner_pid", sa.Integer))
    op.add_column("idempotency_keys", sa.Column("owner_started_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("idempotency_keys", "owner_started_at")
    op.drop_column("idempotency_keys", "owner_pid")
