"""transaction clock: the feed's transaction numbers survive a logical restore

Revision ID: 0018_transaction_clock
Revises: 0017_interaction_daily_totals
Create Date: 2026-12-07 15:00:00.000000+00:00

Events and interactions carried PostgreSQL's own transaction id, and a reader took those
older than the snapshot's xmin as settled. A new cluster restarts those ids, so a database
moved with `pg_dump` and `pg_restore` held numbers ahead of every new transaction: the feed
hid the restored events, sorted new ones before them, and followers' cursors skipped.

Both now take their number from `crm_xact_id()`, the transaction id plus an offset kept
in `crm_xact_offset()`, and settled means below `crm_settled_xact_id()`. The offset starts
at 0, so existing numbers keep their meaning; the service moves it past the highest number
the database holds when it starts on a restored copy (crm_api/transaction_clock.py). The
functions are plain SQL, which the planner inlines: a write costs what it cost before.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_transaction_clock"
down_revision: str | None = "0017_interaction_daily_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NUMBERED = ("events", "interactions")
_XACT_ID = "(pg_current_xact_id()::text::bigint)"


def upgrade() -> None:
    op.execute(
        "CREATE FUNCTION crm_xact_offset() RETURNS bigint"
        " LANGUAGE sql STABLE PARALLEL SAFE AS 'SELECT 0::bigint'"
    )
    op.execute(
        "CREATE FUNCTION crm_xact_id() RETURNS bigint LANGUAGE sql STABLE"
        f" AS 'SELECT {_XACT_ID} + crm_xact_offset()'"
    )
    op.execute(
        "CREATE FUNCTION crm_settled_xact_id() RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE"
        " AS 'SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint + crm_xact_offset()'"
    )
    for table in _NUMBERED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tx_id SET DEFAULT crm_xact_id()")


def downgrade() -> None:
    for table in _NUMBERED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tx_id SET DEFAULT {_XACT_ID}")
    for function in ("crm_settled_xact_id", "crm_xact_id", "crm_xact_offset"):
        op.execute(f"DROP FUNCTION {function}()")
