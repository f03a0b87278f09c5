"""interaction_daily_totals: the KPIs' sums per day and currency, rolled up in the background

Revision ID: 0017_interaction_daily_totals
Revises: 0016_loyalty_lots_account_due
Create Date: 2026-12-07 13:00:00.000000+00:00

A KPI call summed every interaction of its period, and every purchase and refund before
it, on each call: 2.3 s of a year's KPIs at 1M customers. The worker now keeps those sums
per UTC day and currency (analytics/daily_totals.py), and the call reads raw interactions
only where the days cannot answer.

Interactions now carry their writing transaction's id, as the outbox's events do, so a
roll can take exactly what was written since the last one. Existing rows keep a null id
and are taken by the first roll; the column is added without a default first, so the
table is not rewritten, and the index leaves those rows out. Until the first roll the
KPIs read interactions as before.

Deleted customers get an index of their own: the KPIs take their rows back out of
everyone's, and their per-customer pass no longer joins every customer to find them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_interaction_daily_totals"
down_revision: str | None = "0016_loyalty_lots_account_due"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("facts", "orders", "nps_answers", "promoters", "detractors", "csat_answers",
           "satisfied")  # fmt: skip
_SUMS = ("sales", "refunds", "cogs", "covered", "service_cost")


def upgrade() -> None:
    op.add_column("interactions", sa.Column("tx_id", sa.BigInteger))
    op.alter_column(
        "interactions",
        "tx_id",
        server_default=sa.text("(pg_current_xact_id()::text::bigint)"),
    )
    op.create_index(
        "ix_interactions_tx_id",
        "interactions",
        ["tx_id"],
        postgresql_where=sa.text("tx_id IS NOT NULL"),
    )
    op.create_index(
        "ix_customers_deleted",
        "customers",
        ["id"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.create_table(
        "interaction_daily_totals",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("currency", sa.CHAR(3)),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _COUNTS),
        *(sa.Column(name, sa.Numeric, nullable=False) for name in _SUMS),
    )
    op.create_index(
        "uq_interaction_daily_totals_day_currency",
        "interaction_daily_totals",
        ["day", sa.text("coalesce(currency, '')")],
        unique=True,
    )
    op.create_table(
        "rollup_watermarks",
        sa.Column("rollup", sa.Text, nullable=False),
        sa.Column("rolled_before", sa.BigInteger, nullable=False),
        sa.Column("rolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rollup", name=op.f("pk_rollup_watermarks")),
    )


def downgrade() -> None:
    op.drop_table("rollup_watermarks")
    op.drop_table("interaction_daily_totals")
    op.drop_index("ix_customers_deleted", table_name="customers")
    op.drop_index("ix_interactions_tx_id", table_name="interactions")
    op.drop_column("interactions", "tx_id")
