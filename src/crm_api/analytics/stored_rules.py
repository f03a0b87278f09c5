"""The refresh of the stored association rules and item popularity behind recommendations.

Mining the rules reads every purchase (seconds at millions of them), so it runs here, off
the request path: the worker every `recommendation_refresh_seconds`, `crm-api analytics
refresh-rules` on demand, and a recommendation asked before any refresh once. One
set-based statement (affinities.py's SQL) mines every level from one pass over the
purchases' lines; each level's rules with support >= `STORED_MIN_SUPPORT` and its items in
at least that share of baskets are stored.

The old set is deleted and the new one written in one transaction, so readers see the
previous set until the commit and never a half-written one. An advisory lock lets one
refresh run at a time across workers; running it again over the same purchases stores
the same set (idempotent).
"""

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, array
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_api.analytics.affinities import (
    LEVEL,
    Counts,
    Level,
    at_level,
    baskets_at_every_level,
    ratio,
    rules,
)
from crm_api.analytics.models import item_popularity as P
from crm_api.analytics.models import recommendation_refreshes as R
from crm_api.analytics.models import recommendation_rules as RR
from crm_api.config import Settings
from crm_api.core.db import Compiled, Connection, Database, Queryable
from crm_api.interactions.models import interaction_items as ii

log = logging.getLogger(__name__)

# The floor of what is stored: rules and items below this share of baskets are dropped.
STORED_MIN_SUPPORT = 0.01
_LOCK = 0x7265636F  # one refresh at a time, across processes


@dataclass(frozen=True, slots=True)
class Refreshed:
    level: Level
    computed_at: datetime
    baskets: int
    rules: int
    seconds: float  # of the whole refresh: the levels are mined together


def _as_json(rows: sa.Subquery) -> sa.ColumnElement:
    listed = sa.select(sa.func.jsonb_agg(sa.literal_column(rows.name))).select_from(rows)
    return sa.func.coalesce(listed.scalar_subquery(), sa.text("'[]'::jsonb"))


def _mined(all_baskets: sa.CTE, level: Level) -> list[sa.ColumnElement]:
    """One level's basket count, frequent items (with their categories) and rules, as JSON:
    columns `<level>_baskets`, `<level>_items` and `<level>_rules`."""
    purchases = at_level(all_baskets, level)
    counts = Counts(purchases)
    frequent = counts.frequent
    if level is Level.SKU:
        # A SKU's categories (any of its lines') let avoided categories be left out per SKU.
        sku_category = (
            sa.select(ii.c.sku, ii.c.category)
            .distinct()
            .where(ii.c.category.isnot(None), ii.c.sku.in_(sa.select(frequent.c.item)))
            .subquery("sku_category")
        )
        sku_categories = (
            sa.select(
                sku_category.c.sku,
                sa.func.array_agg(sku_category.c.category)
                .aggregate_order_by(sku_category.c.category)
                .label("categories"),
            )
            .group_by(sku_category.c.sku)
            .cte("sku_categories")
        )
        categories = sa.func.coalesce(sku_categories.c.categories, sa.text("'{}'::text[]"))
        source = frequent.outerjoin(sku_categories, sku_categories.c.sku == frequent.c.item)
    else:
        categories, source = array([frequent.c.item], type_=sa.Text), frequent
    items = (
        sa.select(
            frequent.c.item,
            frequent.c.baskets,
            ratio(frequent.c.baskets, counts.total).label("share"),
            frequent.c.first_sold,
            categories.label("categories"),
        )
        .select_from(source)
        .subquery(f"{level.value}_items")
    )
    found = rules(purchases, counts).subquery(f"{level.value}_rules")
    return [
        counts.total.label(f"{level.value}_baskets"),
        _as_json(items).label(f"{level.value}_items"),
        _as_json(found).label(f"{level.value}_rules"),
    ]


def _mining() -> Compiled:
    """Every level's `_mined` columns, from one pass over the purchases' lines.

    Read-only on purpose: PostgreSQL runs a plain SELECT's scans and joins in parallel, an
    INSERT ... SELECT never; the few hundred rows found are inserted by `_STORING`.
    """
    all_baskets = baskets_at_every_level()
    return Compiled.of(sa.select(*(c for level in Level for c in _mined(all_baskets, level))))


def _storing() -> Compiled:
    """Insert one level's mined items and rules (JSON from `_MINING`)."""
    inserts = []
    for table, param in ((P, "items"), (RR, "rules")):
        fields = [c for c in table.c if c.name != "level"]
        rows = (
            sa.func.jsonb_to_recordset(sa.bindparam(param, type_=JSONB))
            .table_valued(*(sa.column(c.name, c.type) for c in fields))
            .render_derived(name=param, with_types=True)
        )
        inserts.append(
            sa.insert(table)
            .from_select(["level", *(c.name for c in fields)], sa.select(LEVEL, *rows.c))
            .returning(table.c.level)
            .cte(f"stored_{param}")
        )
    return Compiled.of(
        sa.select(*(sa.select(sa.func.count()).select_from(i).scalar_subquery() for i in inserts))
    )


_MINING = _mining()
_STORING = _storing()
_CLEARING = [Compiled.of(sa.delete(RR)), Compiled.of(sa.delete(P))]
_RECORDING = Compiled.of(
    pg_insert(R)
    .values(
        level=sa.bindparam("level"),
        computed_at=sa.func.now(),
        baskets=sa.bindparam("baskets"),
        rules=sa.bindparam("rules"),
        seconds=sa.bindparam("seconds"),
    )
    .on_conflict_do_update(
        index_elements=[R.c.level],
        set_={c: sa.text(f"excluded.{c}") for c in ("computed_at", "baskets", "rules", "seconds")},
    )
    .returning(R.c.computed_at)
)
_LAST = Compiled.of(sa.select(sa.func.min(R.c.computed_at), sa.func.now()))
_TAKE = Compiled.of(sa.select(sa.func.pg_advisory_xact_lock(_LOCK)))
_TRY = Compiled.of(sa.select(sa.func.pg_try_advisory_xact_lock(_LOCK)))


async def _store(conn: Connection) -> list[Refreshed]:
    """Replace the stored set (inside the caller's transaction, holding the lock)."""
    # Off the request path, one at a time: no timeout, and room to group millions of lines
    # in memory instead of spilling sorts to disk.
    await conn.execute("SET LOCAL statement_timeout = 0; SET LOCAL work_mem = '256MB'")
    started = time.perf_counter()
    for clearing in _CLEARING:
        await clearing.execute(conn)
    mined = await _MINING.fetchrow(conn, min_support=STORED_MIN_SUPPORT)
    assert mined is not None
    for level in Level:
        items, found = mined[f"{level.value}_items"], mined[f"{level.value}_rules"]
        await _STORING.execute(conn, level=level.value, items=items, rules=found)
    seconds = time.perf_counter() - started
    done = []
    for level in Level:
        baskets, rules_stored = mined[f"{level.value}_baskets"], len(mined[f"{level.value}_rules"])
        computed_at = await _RECORDING.fetchval(
            conn, level=level.value, baskets=baskets, rules=rules_stored, seconds=seconds
        )
        done.append(Refreshed(level, computed_at, baskets, rules_stored, seconds))
        log.info(
            "recommendation rules (%s): %d rules, %d items over %d baskets",
            level.value,
            rules_stored,
            len(mined[f"{level.value}_items"]),
            baskets,
        )
    log.info("recommendation rules refreshed in %.1f s", seconds)
    return done


async def refresh(
    db: Queryable, *, older_than: timedelta | None, wait: bool
) -> list[Refreshed] | None:
    """Refresh when the stored set is older than `older_than` (None: only when there is none
    yet). `wait`: wait for a refresh running elsewhere, then decide; else leave it to that
    one. Answers what was stored per level, or None when nothing was due or it was left."""
    async with _connection(db) as conn, conn.transaction():
        if wait:
            await _TAKE.execute(conn)
        elif not await _TRY.fetchval(conn):
            return None
        row = await _LAST.fetchrow(conn)
        assert row is not None
        last, now = row
        due = last is None or (older_than is not None and last <= now - older_than)
        return await _store(conn) if due else None


@asynccontextmanager
async def _connection(db: Queryable) -> AsyncIterator[Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def refresh_due(db: Database, settings: Settings) -> int:
    """The worker's periodic job: refresh when the set is older than the setting."""
    every = timedelta(seconds=settings.recommendation_refresh_seconds)
    done = await refresh(db.pool, older_than=every, wait=False)
    return 0 if done is None else sum(level.rules for level in done)
