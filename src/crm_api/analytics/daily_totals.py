"""Daily totals of the interactions the KPIs add up, rolled up in the background.

A KPI call over a year summed every interaction of the period (and every purchase before
it, for the net revenue to date) on each call. The totals keep those sums per day (UTC)
and currency, so the call adds up a few thousand rows and reads raw interactions only for
what the days cannot answer (analytics/kpis.py): the partial days at the period's edges,
the rows not rolled up yet, and deleted customers' rolled rows, which it takes back out.

Which rows are rolled up follows the outbox's rule (events/service.py): each interaction
carries its writing transaction's number (transaction_clock.py), and a roll takes every
row of the transactions older than every one still running. Those can no longer change
what they wrote, so a row below the watermark is in the totals exactly once, and one above
it is read raw.
"""

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from crm_api import transaction_clock
from crm_api.analytics import profitability
from crm_api.analytics.models import (
    DAILY_COUNTS,
    DAILY_KEY,
    DAILY_SUMS,
    interaction_daily_totals,
    rollup_watermarks,
)
from crm_api.config import Settings
from crm_api.core.db import Compiled, Connection, Database, Queryable
from crm_api.events.models import SETTLED_BEFORE
from crm_api.interactions.models import interactions
from crm_api.interactions.schemas import InteractionType

log = logging.getLogger(__name__)
NAME = interaction_daily_totals.name  # its row in rollup_watermarks
FIGURES = (*DAILY_COUNTS, *DAILY_SUMS)
_i = interactions.c
_t = interaction_daily_totals.c
_w = rollup_watermarks.c

# The interactions that carry a KPI figure: money, an NPS or a CSAT answer.
WITH_FIGURES = sa.or_(_i.currency.isnot(None), _i.nps.isnot(None), _i.csat.isnot(None))


def day_of(moment: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQL: the UTC day of a timestamp, the totals' key."""
    return sa.cast(sa.func.timezone("UTC", moment), sa.Date)


def figures(sign: int = 1) -> list[sa.ColumnElement[Any]]:
    """SQL, per interaction: its share of each of the totals' FIGURES (times ``sign``), so
    that summing rows and summing days give the same sums."""
    purchase = _i.type == InteractionType.PURCHASE.value
    refund = _i.type == InteractionType.REFUND.value
    # Profitability's own per-interaction figures: refunds count against the cost of goods.
    costs = {column.name: column for column in profitability.signed_figures()}

    def flag(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
        return sa.case((condition, sign), else_=0)

    def value(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sign * sa.func.coalesce(column, 0)

    shares = {
        "facts": sa.literal(sign),
        "orders": flag(purchase),
        "nps_answers": flag(_i.nps.isnot(None)),
        "promoters": flag(_i.nps >= 9),
        "detractors": flag(_i.nps <= 6),
        "csat_answers": flag(_i.csat.isnot(None)),
        "satisfied": flag(_i.csat >= 4),
        "sales": value(sa.case((purchase, _i.amount))),
        "refunds": value(sa.case((refund, _i.amount))),
        "cogs": value(costs["cogs"]),
        "covered": value(costs["covered"]),
        "service_cost": value(costs["service_cost"]),
    }
    return [shares[name].label(name) for name in FIGURES]


def rolled(watermark: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: the interaction is in the totals rolled up below ``watermark``."""
    return sa.or_(_i.tx_id.is_(None), _i.tx_id < watermark)


_WATERMARK = Compiled.of(sa.select(_w.rolled_before).where(_w.rollup == NAME))
_since = sa.bindparam("since", type_=sa.BigInteger)
_before = sa.bindparam("before", type_=sa.BigInteger)


def _roll(window: sa.ColumnElement[bool]) -> Compiled:
    """The statement adding the counted interactions in ``window`` to the totals."""
    rows = (
        sa.select(day_of(_i.occurred_at).label("day"), _i.currency, *figures())
        .where(window, WITH_FIGURES)
        .subquery("rows")
    )
    per_day = sa.select(
        rows.c.day, rows.c.currency, *(sa.func.sum(rows.c[name]) for name in FIGURES)
    ).group_by(rows.c.day, rows.c.currency)
    insert = pg.insert(interaction_daily_totals).from_select(["day", "currency", *FIGURES], per_day)
    return Compiled.of(
        insert.on_conflict_do_update(
            index_elements=list(DAILY_KEY),
            set_={name: _t[name] + insert.excluded[name] for name in FIGURES},
        )
    )


# The first roll takes the rows written before transaction ids were kept, too.
_ROLL_FIRST = _roll(rolled(_before))
_ROLL_NEXT = _roll(sa.and_(_i.tx_id >= _since, _i.tx_id < _before))
_ADVANCE = Compiled.of(
    pg.insert(rollup_watermarks)
    .values(rollup=NAME, rolled_before=_before, rolled_at=sa.func.now())
    .on_conflict_do_update(
        index_elements=[_w.rollup], set_={"rolled_before": _before, "rolled_at": sa.func.now()}
    )
)
# A watermark ahead of every settled transaction comes from another numbering of them: a
# logical dump restored into a new cluster and written to before the service moved its
# numbering ahead (transaction_clock). Rows written since would pass for rolled up, so the
# totals are not used until `rebuild` has run.
_READ = Compiled.of(
    sa.select(_w.rolled_before).where(_w.rollup == NAME, _w.rolled_before <= SETTLED_BEFORE)
)
_RESTARTED = (
    "the KPIs' daily totals were rolled up to a transaction this database has not reached "
    "(restored from a logical dump and written to before the service started?): the KPIs "
    "read interactions alone until `crm-api analytics roll-totals --rebuild` has run"
)
_FORGET = (f"DELETE FROM {rollup_watermarks.name} WHERE rollup = '{NAME}'", f"DELETE FROM {NAME}")


async def roll(conn: Connection) -> int:
    """Add what was written since the last roll to the totals; answers how many days and
    currencies changed. Rolls take turns on the table, so each row is added once."""
    async with conn.transaction():
        # The first roll reads all history, longer than a request may take.
        await conn.execute("SET LOCAL statement_timeout = 0")
        # One lock, taken first: a roll waiting for the table while holding the watermark's
        # row (or the reverse) deadlocked with another. KPI reads do not conflict with it.
        await conn.execute(f"LOCK TABLE {NAME} IN SHARE ROW EXCLUSIVE MODE")
        # The bound comes after the turn, so it never falls behind the last roll's, and
        # before this transaction holds an id of its own.
        before = await conn.fetchval(f"SELECT {SETTLED_BEFORE.text}")
        since = await _WATERMARK.fetchval(conn)
        if since is not None and since >= before:
            if since > before:
                log.warning(_RESTARTED)
            return 0
        statement = _ROLL_FIRST if since is None else _ROLL_NEXT
        status = await statement.execute(conn, since=since, before=before)
        await _ADVANCE.execute(conn, before=before)
    return int(status.rsplit(" ", 1)[1])


async def rebuild(conn: Connection) -> int:
    """Roll the totals up anew from all history, as after a logical restore; answers as
    ``roll``. Meanwhile the KPIs read interactions alone."""
    # Once every stored number is below every new one, the first roll takes every row
    # written so far, whichever numbering wrote it.
    await transaction_clock.keep_ahead(conn)
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {NAME} IN SHARE ROW EXCLUSIVE MODE")
        for statement in _FORGET:
            await conn.execute(statement)
    return await roll(conn)


async def roll_due(db: Database, settings: Settings) -> int:
    """The worker's periodic job: it keeps the totals at most one schedule behind."""
    async with db.connection() as conn:
        return await roll(conn)


async def watermark(conn: Queryable) -> int | None:
    """The transaction id below which every interaction is in the totals; None before the
    first roll, and while the totals count by another numbering of transactions."""
    return await _READ.fetchval(conn)
