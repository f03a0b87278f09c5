"""loyalty lots: indexes select by a stored has_points flag, pages keep room for in-page updates

Revision ID: 0007_loyalty_lots_hot
Revises: 0006_lifecycle
Create Date: 2026-11-23 18:10:00.000000+00:00

The two partial indexes on loyalty_lots were predicated on ``remaining > 0``, so every
redemption that took part of a lot changed an indexed column: a non-HOT update with new
entries in both indexes, and a lot spent a point at a time (one busy account) left a trail
of dead index entries that every later spending plan walked. They now read ``has_points``
(stored, generated), which only changes when a lot runs dry or is refilled; a fillfactor of
70 leaves each page room for the new row versions.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_loyalty_lots_hot"
down_revision: str | None = "0006_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIFO_COLUMNS = ["customer_id", "account_id", "earned_at", "entry_id"]


def _indexes(predicate: str) -> None:
    op.drop_index("ix_loyalty_lots_due", table_name="loyalty_lots")
    op.drop_index("ix_loyalty_lots_fifo", table_name="loyalty_lots")
    op.create_index(
        "ix_loyalty_lots_due", "loyalty_lots", ["expires_at"], postgresql_where=sa.text(predicate)
    )
    op.create_index(
        "ix_loyalty_lots_fifo", "loyalty_lots", FIFO_COLUMNS, postgresql_where=sa.text(predicate)
    )


def upgrade() -> None:
    op.add_column(
        "loyalty_lots",
        sa.Column(
            "has_points", sa.Boolean, sa.Computed("remaining > 0", persisted=True), nullable=False
        ),
    )
    _indexes("has_points")
    op.execute("ALTER TABLE loyalty_lots SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE loyalty_lots RESET (fillfactor)")
    _indexes("remaining > 0")
    op.drop_column("loyalty_lots", "has_points")
