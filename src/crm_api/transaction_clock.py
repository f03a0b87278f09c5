"""The service's numbering of transactions, kept ahead of every number the database holds.

Events and interactions carry their writing transaction's number (`crm_xact_id()`, migration
0018): the feed is ordered by it, and readers take only numbers below
`crm_settled_xact_id()`, those of transactions older than every one still running in this
database. The webhook fan-out's cursor and the daily totals' watermark store such numbers
too.

A number is PostgreSQL's transaction id plus an offset. A new cluster restarts the ids, so
a database moved with `pg_dump` and `pg_restore` would hold numbers ahead of every new
transaction: the restored events would stay hidden, new ones would sort before them, and
followers' cursors would skip them. Every process of the service calls `keep_ahead` as it
starts, which moves the offset past the highest number stored.
"""

import logging

import sqlalchemy as sa

from crm_api.analytics.models import rollup_watermarks
from crm_api.core.db import Compiled, Connection
from crm_api.events.models import events
from crm_api.interactions.models import interactions
from crm_api.webhooks.models import webhook_fanout

log = logging.getLogger(__name__)

# Every column holding a transaction number; a new one belongs here.
NUMBER_COLUMNS = (
    events.c.tx_id,
    interactions.c.tx_id,
    webhook_fanout.c.tx_id,
    rollup_watermarks.c.rolled_before,
)
# Processes starting together take turns (pg_advisory_xact_lock's key).
_LOCK = 0x63726D_78616374  # "crm" "xact"
_STATE = Compiled.of(
    sa.select(
        sa.func.greatest(
            *(sa.select(sa.func.max(column)).scalar_subquery() for column in NUMBER_COLUMNS)
        ).label("highest"),
        sa.func.crm_xact_id(type_=sa.BigInteger).label("current"),
        sa.func.crm_xact_offset(type_=sa.BigInteger).label("offset"),
    )
)


def _offset_function(offset: int) -> str:
    # A constant body, which the planner inlines; replacing it invalidates cached plans.
    return (
        "CREATE OR REPLACE FUNCTION crm_xact_offset() RETURNS bigint"
        f" LANGUAGE sql STABLE PARALLEL SAFE AS 'SELECT {int(offset)}::bigint'"
    )


async def keep_ahead(conn: Connection) -> int:
    """Move the numbering past every stored number if it is not already; answers by how
    much it moved (0 unless the database was restored into another cluster)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        state = await _STATE.fetchrow(conn)
        assert state is not None
        if state["highest"] is None or state["highest"] < state["current"]:
            return 0
        # Every later transaction has a greater id than this one, so a greater number than
        # `highest` from here on.
        shift = state["highest"] - state["current"] + 1
        await conn.execute(_offset_function(state["offset"] + shift))
    log.warning(
        "this database holds transaction numbers ahead of its server's (restored from a "
        "logical dump?): numbering moved forward by %d",
        shift,
    )
    return shift
