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
the database holds when it starts on a restored copy (crm_api/transaction_clock.py). Those
two are plain SQL, which the planner inlines: a write costs what it cost before.

Settled also stops counting other databases' transactions. The snapshot's xmin is the
whole server's: a long write in another database on a shared server held back this one's
feed and webhooks until it ended.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018_transaction_clock"
down_revision: str | None = "0017_interaction_daily_totals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NUMBERED = ("events", "interactions")
# The oldest transaction still running, leaving out those a backend of another database on
# the same server holds: their xids are in every snapshot, and a long one would hold back
# this database's feed and webhooks. A transaction whose database is not known (it ended
# since, or is prepared) still counts. PL/pgSQL, so the plan is kept between calls.
_SETTLED = """
CREATE FUNCTION crm_settled_xact_id() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(
                   (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
                     WHERE xid(x) NOT IN (SELECT backend_xid FROM pg_stat_get_activity(NULL)
                                           WHERE backend_xid IS NOT NULL AND datid <> d.oid)),
                   pg_snapshot_xmax(s)::text::bigint)
               + crm_xact_offset()
          FROM pg_current_snapshot() AS s, pg_database AS d
         WHERE d.datname = current_database());
END
$$
"""
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
    op.execute(_SETTLED)
    for table in _NUMBERED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tx_id SET DEFAULT crm_xact_id()")


def downgrade() -> None:
    for table in _NUMBERED:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN tx_id SET DEFAULT {_XACT_ID}")
    for function in ("crm_settled_xact_id", "crm_xact_id", "crm_xact_offset"):
        op.execute(f"DROP FUNCTION {function}()")
