"""Bulk upsert of customers from NDJSON, set-based: a few statements per batch of lines.

Each batch is matched against live customers in one query, inserted and updated from one
JSON parameter each (``jsonb_populate_recordset``) and its events written in one more.
A batch runs under a savepoint; if it trips a unique constraint (an email already taken,
a concurrent writer), it is replayed line by line so only the offending lines fail.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
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

BATCH_SIZE = 1000
_WRITTEN = ("id", *service.columns(CustomerCreate()))
_rows = sa.bindparam("rows", type_=sa.dialects.postgresql.JSONB)
# What the database decides; the rest of each written row is what the line said, so the
# events are built from the lines instead of reading every column back.
_SERVER_SET = "id, lifecycle_stage, created_at, updated_at, version, erased_at"

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
_INSERT = Compiled.of(
    sa.text(
        f"INSERT INTO customers ({', '.join(_WRITTEN)}) "
        f"SELECT {', '.join(_WRITTEN)} FROM jsonb_populate_recordset(NULL::customers, :rows) "
        f"RETURNING {_SERVER_SET}"
    ).bindparams(_rows)
)
_UPDATE = Compiled.of(
    sa.text(
        "UPDATE customers AS c SET "
        + ", ".join(f"{c} = n.{c}" for c in _WRITTEN if c != "id")
        + ", version = c.version + 1, updated_at = now() "
        "FROM jsonb_populate_recordset(NULL::customers, :rows) AS n WHERE c.id = n.id "
        f"RETURNING {', '.join('c.' + c for c in _SERVER_SET.split(', '))}"
    ).bindparams(_rows)
)


@dataclass(slots=True)
class _Line:
    number: int
    data: CustomerCreate

    @property
    def email_key(self) -> str | None:
        return self.data.email.lower() if self.data.email else None


def _parse(body: bytes, report: ndjson.ImportReport) -> list[_Line]:
    parsed = []
    for number, raw in ndjson.lines(body):
        try:
            data = CustomerCreate.model_validate_json(raw)
        except ValidationError as exc:
            report.fail_validation(number, exc)
            continue
        if data.external_id is None and data.email is None:
            report.fail(number, (None, "needs external_id or email to match on"))
            continue
        parsed.append(_Line(number, data))
    return parsed


def _batches(lines: list[_Line]) -> list[list[_Line]]:
    """Split into batches in which no external id or email repeats (later lines win later)."""
    batches: list[list[_Line]] = []
    current: list[_Line] = []
    seen: set[str] = set()
    for line in lines:
        keys = {f"x:{line.data.external_id}"} if line.data.external_id else set()
        if line.email_key:
            keys.add(f"e:{line.email_key}")
        if len(current) >= BATCH_SIZE or keys & seen:
            batches.append(current)
            current, seen = [], set()
        current.append(line)
        seen |= keys
    if current:
        batches.append(current)
    return batches


async def import_customers(
    conn: Connection, principal: Principal, body: bytes
) -> ndjson.ImportReport:
    report = ndjson.ImportReport()
    for batch in _batches(_parse(body, report)):
        try:
            async with conn.transaction():
                await _apply(conn, batch, report)
        except (asyncpg.UniqueViolationError, _LineRejected):
            for line in batch:
                await _apply_alone(conn, line, report)
    return report


class _LineRejected(Exception):
    def __init__(self, line: _Line, field: str, message: str) -> None:
        self.line, self.field, self.message = line, field, message


async def _apply_alone(conn: Connection, line: _Line, report: ndjson.ImportReport) -> None:
    try:
        async with conn.transaction():
            await _apply(conn, [line], report)
    except asyncpg.UniqueViolationError as exc:
        field = "email" if "email" in (exc.constraint_name or "") else "external_id"
        report.fail(line.number, (field, "is already used by another customer"))
    except _LineRejected as exc:
        report.fail(line.number, (exc.field, exc.message))


def _match(lines: Sequence[_Line], existing: Sequence[db.Record]) -> list[db.Record | None]:
    by_external = {r["external_id"]: r for r in existing if r["external_id"]}
    by_email = {r["email"].lower(): r for r in existing if r["email"]}
    matches: list[db.Record | None] = []
    taken: set[uuid.UUID] = set()
    for line in lines:
        row = by_external.get(line.data.external_id) if line.data.external_id else None
        if row is None and line.email_key:
            row = by_email.get(line.email_key)
            if row is not None and row["external_id"] not in (None, line.data.external_id):
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
        external_ids=[x.data.external_id for x in lines if x.data.external_id],
        emails=[x.email_key for x in lines if x.email_key],
    )
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for line, row in zip(lines, _match(lines, existing), strict=True):
        values = service.columns(line.data)
        if row is None:
            inserts.append({"id": new_id(), **values})
        elif any(row[k] != v for k, v in values.items()):
            updates.append({"id": row["id"], **values})
    created = await _written(conn, _INSERT, inserts)
    updated = await _written(conn, _UPDATE, updates)
    await events.record_many(
        conn,
        [(EventType.CUSTOMER_CREATED, r["id"], dumps(service.resource(r))) for r in created]
        + [(EventType.CUSTOMER_UPDATED, r["id"], dumps(service.resource(r))) for r in updated],
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
