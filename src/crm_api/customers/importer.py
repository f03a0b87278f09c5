"""Bulk upsert of customers from NDJSON, set-based: a few statements per batch of lines.

Each batch is matched against live customers in one query; its new customers are
written with one COPY, its changed ones by one UPDATE from a JSON parameter
(``jsonb_populate_recordset``), and its events with one more COPY. A batch runs under a
savepoint; if it trips a unique constraint (an email already taken, a concurrent writer),
it is split until only the offending lines fail.
"""

import asyncio
import operator
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from pydantic import ValidationError

from crm_api.core import db, ndjson
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.customers import service
from crm_api.customers.models import customers as t
from crm_api.customers.schemas import CustomerCreate
from crm_api.events import service as events
from crm_api.events.schemas import EventType

BATCH_SIZE = 2000
# The smallest batch the last lines of a body are cut into (see _batches).
_LAST_BATCH = 250
# Batches parsed ahead of the one being written: while one waits for the writes before it,
# parsing goes on.
_AHEAD = 2
# Lines parsed between two chances for the batch being written to take its next step
# (at 100, each of its statements waited up to 6 ms to be sent, and the writes fell behind).
_PARSE_SLICE = 25
_WRITTEN = ("id", *service.columns(CustomerCreate()))
_rows = sa.bindparam("rows", type_=sa.dialects.postgresql.JSONB)
# What an update returns: what the database decides. The rest of each written row is
# what the line said, so the events are built from the lines instead of reading it back.
_RETURNED = ("id", *service.SERVER_SET)
# A new customer's columns that no line sets: the table's defaults, written by the COPY
# itself so that the rows and their events agree (created_at is the transaction's now()).
_NEW = {"lifecycle_stage": t.c.lifecycle_stage.server_default.arg, "version": 1, "erased_at": None}
_FIXED = ("lifecycle_stage", "version", "created_at", "updated_at")
_fixed = operator.itemgetter(*_FIXED)
_COPIED = (*_WRITTEN, *_FIXED)

_MATCH = Compiled.of(
    sa.select(t)
    .where(
        t.c.deleted_at.is_(None),
        sa.or_(
            t.c.external_id == sa.any_(sa.bindparam("external_ids", type_=sa.ARRAY(sa.Text))),
            sa.func.lower(t.c.email) == sa.any_(sa.bindparam("emails", type_=sa.ARRAY(sa.Text))),
        ),
    )
    .with_for_update()
)
_UPDATE = Compiled.of(
    sa.text(
        "UPDATE customers AS c SET "
        + ", ".join(f"{c} = n.{c}" for c in _WRITTEN if c != "id")
        + ", version = c.version + 1, updated_at = now() "
        "FROM jsonb_populate_recordset(NULL::customers, :rows) AS n WHERE c.id = n.id "
        f"RETURNING {', '.join('c.' + c for c in _RETURNED)}"
    ).bindparams(_rows)
)


@dataclass(slots=True)
class _Line:
    """A valid line, with what writing it takes worked out while the batches before it are
    written: its keys, its fields as the resource shows them, its columns, and the COPY
    record and event of the customer it creates if it matches none (most lines of a first
    load). The validated model is not kept: fewer live objects for the collector to sweep."""

    number: int
    external_id: str | None
    email_key: str | None  # lower-cased, as emails match
    shape: dict[str, Any]
    values: dict[str, Any]  # in _WRITTEN's order, as service.columns builds them
    id: uuid.UUID
    record: tuple[Any, ...]
    created: bytes

    @classmethod
    def of(cls, number: int, data: CustomerCreate, now: datetime) -> "_Line":
        shape = service.shaped(data)
        values = service.columns(data, shape)
        stored = {"id": new_id(), **_NEW, "created_at": now, "updated_at": now}
        return cls(
            number, data.external_id, data.email.lower() if data.email else None,
            shape, values, stored["id"], (stored["id"], *values.values(), *_fixed(stored)),
            dumps(service.resource_of(shape, stored)),
        )  # fmt: skip


async def _parse(body: bytes, report: ndjson.ImportReport, now: datetime) -> AsyncIterator[_Line]:
    """The valid lines; now and then it lets the batch being written take its next step."""
    for count, (number, raw) in enumerate(ndjson.lines(body), start=1):
        if count % _PARSE_SLICE == 0:
            await asyncio.sleep(0)
        try:
            data = CustomerCreate.model_validate_json(raw)
        except ValidationError as exc:
            report.fail_validation(number, exc)
            continue
        if data.external_id is None and data.email is None:
            report.fail(number, (None, "needs external_id or email to match on"))
            continue
        yield _Line.of(number, data, now)


async def _batches(lines: AsyncIterator[_Line], total: int) -> AsyncIterator[list[_Line]]:
    """Split into batches in which no external id or email repeats (later lines win later).

    Nothing overlaps the writing of the last batch, so the last lines of the ``total`` are
    cut into batches half as long as what is left, down to ``_LAST_BATCH``: at 2,000 lines
    the last batch left this process idle for about a tenth of a 10,000-line import.
    """
    current: list[_Line] = []
    external_ids: set[str] = set()
    emails: set[str] = set()
    limit = BATCH_SIZE
    async for line in lines:
        if len(current) >= limit or line.external_id in external_ids or line.email_key in emails:
            yield current
            current, external_ids, emails = [], set(), set()
            limit = max(_LAST_BATCH, min(BATCH_SIZE, (total - line.number + 1) // 2))
        current.append(line)
        if line.external_id is not None:
            external_ids.add(line.external_id)
        if line.email_key is not None:
            emails.add(line.email_key)
    if current:
        yield current


async def import_customers(
    conn: Connection, principal: Principal, body: bytes
) -> ndjson.ImportReport:
    """Apply the lines batch by batch, in order. Each batch is parsed, and its rows and
    events prepared, while the ones before are written, so that this process's CPU and
    the database's overlap: between a batch's statements there is little left to compute."""
    report = ndjson.ImportReport()
    # Each batch looks up to 2,000 keys of each kind. The planner prices that many index
    # probes above one pass over the table, but the pass grows with the table: at 100k
    # customers it took 109 ms a batch where the probes took 11. For this transaction only.
    # now() is the transaction's start: every customer it creates has it as created_at.
    now = await conn.fetchval("SELECT now(), set_config('enable_seqscan', 'off', true)")
    writing: deque[asyncio.Task[None]] = deque()  # in order, each awaiting the one before
    try:
        async for batch in _batches(_parse(body, report, now), ndjson.count(body)):
            if len(writing) == _AHEAD:
                await writing.popleft()
            before = writing[-1] if writing else None
            writing.append(asyncio.create_task(_after(before, conn, batch, report)))
        for task in writing:
            await task
    finally:
        # Never leave a write running on a connection that is about to be released. A
        # failed batch fails every later one (each awaits it); gathering collects them all.
        for task in writing:
            task.cancel()  # nothing, for those done
        await asyncio.gather(*writing, return_exceptions=True)
    return report


async def _after(
    before: asyncio.Task[None] | None,
    conn: Connection,
    batch: list[_Line],
    report: ndjson.ImportReport,
) -> None:
    if before is not None:
        await before  # its failure is this batch's too: the lines are applied in order
    await _apply_or_split(conn, batch, report)


class _LineRejected(Exception):
    def __init__(self, line: _Line, field: str, message: str) -> None:
        self.line, self.field, self.message = line, field, message


async def _apply_or_split(
    conn: Connection, batch: list[_Line], report: ndjson.ImportReport
) -> None:
    """Apply ``batch``, each attempt under a savepoint, failing only the lines to blame.

    A line the checks reject is reported and the rest tried again. A unique conflict does
    not say which line tripped it, so the batch is tried again in halves: one bad line in
    n costs about 2·log2(n) attempts instead of n.
    """
    todo = [batch]
    while todo:
        lines = todo.pop()
        try:
            async with conn.transaction():
                await _apply(conn, lines, report)
        except _LineRejected as exc:
            report.fail(exc.line.number, (exc.field, exc.message))
            if rest := [line for line in lines if line is not exc.line]:
                todo.append(rest)
        except asyncpg.UniqueViolationError as exc:
            if len(lines) > 1:
                half = len(lines) // 2
                todo += [lines[half:], lines[:half]]  # the first half is tried first
                continue
            field = "email" if "email" in (exc.constraint_name or "") else "external_id"
            report.fail(lines[0].number, (field, "is already used by another customer"))


def _match(lines: Sequence[_Line], existing: Sequence[db.Record]) -> list[db.Record | None]:
    by_external = {r["external_id"]: r for r in existing if r["external_id"]}
    by_email = {r["email"].lower(): r for r in existing if r["email"]}
    matches: list[db.Record | None] = []
    taken: set[uuid.UUID] = set()
    for line in lines:
        row = by_external.get(line.external_id) if line.external_id else None
        if row is None and line.email_key:
            row = by_email.get(line.email_key)
            if row is not None and row["external_id"] not in (None, line.external_id):
                raise _LineRejected(line, "email", "belongs to a customer with another external_id")
        if row is not None:
            if row["id"] in taken:
                raise _LineRejected(line, "email", "matches a customer another line also updates")
            if row["erased_at"] is not None:
                raise _LineRejected(line, "external_id", "matches an erased customer")
            taken.add(row["id"])
        matches.append(row)
    return matches


async def _apply(conn: Connection, lines: Sequence[_Line], report: ndjson.ImportReport) -> None:
    existing = await _MATCH.fetch(
        conn,
        external_ids=[x.external_id for x in lines if x.external_id],
        emails=[x.email_key for x in lines if x.email_key],
    )
    created: list[_Line] = []
    updates: list[dict[str, Any]] = []
    shapes: dict[uuid.UUID, dict[str, Any]] = {}  # the events show what the lines said
    for line, row in zip(lines, _match(lines, existing), strict=True):
        if row is None:
            created.append(line)
        elif any(row[k] != v for k, v in line.values.items()):
            updates.append({"id": row["id"], **line.values})
            shapes[row["id"]] = line.shape
    if created:
        await conn.copy_records_to_table(
            t.name, records=[line.record for line in created], columns=_COPIED
        )
    updated = await _written(conn, _UPDATE, updates)
    await events.record_many(
        conn,
        [(EventType.CUSTOMER_CREATED, line.id, line.created) for line in created]
        + [
            (EventType.CUSTOMER_UPDATED, r["id"], dumps(service.resource_of(shapes[r["id"]], r)))
            for r in updated
        ],
    )
    report.created += len(created)
    report.updated += len(updated)
    report.unchanged += len(lines) - len(created) - len(updated)


async def _written(
    conn: Connection, statement: Compiled, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Write ``rows``; return each as stored: its values plus what the database set."""
    if not rows:
        return []
    by_id = {row["id"]: row for row in rows}
    return [{**by_id[r["id"]], **r} for r in await statement.fetch(conn, rows=rows)]
