"""The outbox: record events inside the caller's transaction; read the committed feed."""

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.core.pii import event_data
from crm_api.events.models import SETTLED_BEFORE, events
from crm_api.events.schemas import Event

_INSERT = Compiled.of(
    sa.insert(events).values(
        id=sa.bindparam("id"),
        type=sa.bindparam("type"),
        customer_id=sa.bindparam("customer_id"),
        data=sa.bindparam("data"),
    )
)
# The columns record_many writes; the rest (transaction, sequence, time) are defaults.
_COPIED = ("id", "type", "customer_id", "data")


def recording(source: sa.Select[Any]) -> sa.Insert:
    """An insert of events selected from ``source`` (id, type, customer_id, data), for a
    data-modifying CTE that writes a change and its event in one statement."""
    return sa.insert(events).from_select(["id", "type", "customer_id", "data"], source)


async def record(
    conn: Connection, type_: str, data: dict[str, Any], *, customer_id: uuid.UUID | None
) -> None:
    """Add an event to the caller's transaction: it is published if and only if that commits."""
    await _INSERT.execute(conn, id=new_id(), type=type_, customer_id=customer_id, data=data)


async def record_many(
    conn: Connection, batch: Iterable[tuple[str, uuid.UUID | None, bytes]]
) -> None:
    """Record many events with one COPY; each item is (type, customer_id, JSON bytes)."""
    records = [
        (new_id(), type_, customer_id, orjson.Fragment(data)) for type_, customer_id, data in batch
    ]
    if records:
        await conn.copy_records_to_table(events.name, records=records, columns=_COPIED)


FEED = Keyset("feed", [events.c.tx_id, events.c.seq], descending=False)
# Settled events can no longer appear out of order behind a reader's cursor.
SETTLED = events.c.tx_id < SETTLED_BEFORE


async def list_events(
    conn: Connection,
    principal: Principal,
    *,
    types: list[str] | None,
    customer_id: uuid.UUID | None,
    since: datetime | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Event], str | None, bool]:
    """A page of the feed, its cursor and whether more follow at once.

    Unlike other lists, the cursor of the last page points past its newest event (or is
    the one given when the page is empty), so a follower polls with it for what comes next.
    """
    query = sa.select(events).where(SETTLED)
    if types:
        query = query.where(events.c.type.in_(types))
    if customer_id is not None:
        query = query.where(events.c.customer_id == customer_id)
    if since is not None:
        query = query.where(events.c.occurred_at >= since)
    rows = await db.fetch(conn, FEED.apply(query, cursor, limit))
    page = rows[:limit]
    next_cursor = FEED.encode((page[-1]["tx_id"], page[-1]["seq"])) if page else cursor
    return [render(r, principal) for r in page], next_cursor, len(rows) > limit


def render(row: db.Record, principal: Principal) -> Event:
    """An outbox row as ``principal`` may see it (personal fields need `pii:read`)."""
    return Event(
        id=row["id"],
        type=row["type"],
        occurred_at=row["occurred_at"],
        customer_id=row["customer_id"],
        data=event_data(row["type"], row["data"], sees_pii=principal.sees_pii),
    )


async def rewrite_history(
    conn: Connection,
    customer_id: uuid.UUID,
    rewrite: Callable[[str, dict[str, Any]], dict[str, Any]],
) -> None:
    """Rewrite the stored payloads of one customer's events (erasure is the one reason)."""
    rows = await _HISTORY.fetch(conn, customer_id=customer_id)
    if rows:
        await conn.executemany(
            _REWRITE.sql,
            [
                _REWRITE.args({"event_id": r["id"], "new_data": rewrite(r["type"], r["data"])})
                for r in rows
            ],
        )


_HISTORY = Compiled.of(
    sa.select(events.c.id, events.c.type, events.c.data)
    .where(events.c.customer_id == sa.bindparam("customer_id"))
    .with_for_update()
)
_REWRITE = Compiled.of(
    sa.update(events)
    .where(events.c.id == sa.bindparam("event_id"))
    .values(data=sa.bindparam("new_data"))
)
