"""Customers: the business rules behind both transports.

Every function takes the caller's connection (inside its transaction) and principal,
raises domain errors, and never commits: the edge does.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import asyncpg
import sqlalchemy as sa
from pydantic import ValidationError

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    NotFound,
    ValidationFailed,
    field_errors,
)
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.merge_patch import merge_patch
from crm_api.core.pagination import Keyset
from crm_api.core.pii import redact_customer
from crm_api.core.scopes import Scope
from crm_api.customers.models import customers as t
from crm_api.customers.schemas import (
    Customer,
    CustomerCreate,
    CustomerFilters,
    CustomerSort,
    CustomerUpdate,
)
from crm_api.events import service as events
from crm_api.events.schemas import EventType

# Writable resource fields and the columns that hold them.
_ADDRESS_COLUMNS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "city",
    "region": "region",
    "postal_code": "postal_code",
    "country": "country",
}
_ACQUISITION_COLUMNS = {
    "source": "acquisition_source",
    "channel": "acquisition_channel",
    "campaign": "acquisition_campaign",
    "cost": "acquisition_cost",
    "currency": "acquisition_currency",
}
_RENAMED = {"values": "psych_values"}
_NESTED = {"address": _ADDRESS_COLUMNS, "acquisition": _ACQUISITION_COLUMNS}
WRITABLE_FIELDS = tuple(CustomerCreate.model_fields)

_UNIQUE_FIELDS = {
    "uq_customers_email_live": ("email", "is already used by another customer"),
    "uq_customers_external_id_live": ("external_id", "is already used by another customer"),
}
_live = t.c.deleted_at.is_(None)


# What the database sets, shown after the writable fields.
SERVER_SET = ("lifecycle_stage", "created_at", "updated_at", "version", "erased_at")
# Per field, in order: its column, or the columns of its nested object's keys.
_STORED_AS = tuple(
    (field, _RENAMED.get(field, field), _NESTED.get(field)) for field in WRITABLE_FIELDS
)


def shaped(data: CustomerCreate) -> dict[str, Any]:
    """The writable fields as the resource shows them once stored: JSON values, and a
    nested object with nothing set as null."""
    values = data.model_dump(mode="json")
    for field in _NESTED:
        nested = values[field]
        if nested is not None and all(v is None for v in nested.values()):
            values[field] = None
    return values


def columns(data: CustomerCreate, shape: dict[str, Any] | None = None) -> dict[str, Any]:
    """The column values that store a customer (``shape``: its ``shaped`` fields, when
    the caller has them already)."""
    values = shaped(data) if shape is None else shape
    out: dict[str, Any] = {}
    for field, column, nested in _STORED_AS:
        value = values[field]
        if nested is None:
            out[column] = value
        elif value:
            for key, nested_column in nested.items():
                out[nested_column] = value[key]
        else:
            out.update(dict.fromkeys(nested.values()))
    if data.birth_date is not None:
        out["birth_date"] = data.birth_date
    return out


def resource(row: db.Record) -> dict[str, Any]:
    """The full (unredacted) resource of a row, as the API and events show it."""
    out: dict[str, Any] = {"id": row["id"]}
    for field in WRITABLE_FIELDS:
        if field in _NESTED:
            nested = {key: row[column] for key, column in _NESTED[field].items()}
            out[field] = nested if any(v is not None for v in nested.values()) else None
        else:
            out[field] = row[_RENAMED.get(field, field)]
    for field in SERVER_SET:
        out[field] = row[field]
    return out


def resource_of(shape: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """``resource`` of a row just written from ``shape`` (its ``shaped`` fields), without
    mapping its columns back."""
    return {"id": row["id"], **shape, **{field: row[field] for field in SERVER_SET}}


def document(row: db.Record, principal: Principal) -> dict[str, Any]:
    """The resource as ``principal`` may see it, shaped and typed as ``Customer`` renders it."""
    data = resource(row)
    return redact_customer(data) if not principal.sees_pii else {**data, "redacted_fields": []}


def present(row: db.Record, principal: Principal) -> Customer:
    return Customer.model_validate(document(row, principal))


@contextmanager
def _unique_conflicts() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        field, message = _UNIQUE_FIELDS.get(exc.constraint_name or "", ("id", "already exists"))
        raise Conflict(
            f"A customer with this {field} already exists.",
            errors=[FieldError(field=field, message=message)],
        ) from None


_INSERT = Compiled.of(
    sa.insert(t)
    .values({c: sa.bindparam(c, type_=t.c[c].type) for c in ("id", *columns(CustomerCreate()))})
    .returning(t)
)
_GET = Compiled.of(sa.select(t).where(t.c.id == sa.bindparam("id"), _live))
_LOCK = Compiled.of(sa.select(t).where(t.c.id == sa.bindparam("id"), _live).with_for_update())
_BY_EXTERNAL_ID = Compiled.of(
    sa.select(t).where(t.c.external_id == sa.bindparam("external_id"), _live).with_for_update()
)


async def _insert(conn: Connection, data: CustomerCreate) -> db.Record:
    with _unique_conflicts():
        row = await _INSERT.fetchrow(conn, id=new_id(), **columns(data))
    assert row is not None
    await events.record(conn, EventType.CUSTOMER_CREATED, resource(row), customer_id=row["id"])
    return row


async def create_customer(conn: Connection, principal: Principal, data: CustomerCreate) -> Customer:
    return present(await _insert(conn, data), principal)


async def read_customer(
    conn: Connection, principal: Principal, customer_id: uuid.UUID
) -> dict[str, Any]:
    """One customer's ``document``: for the hot read, which renders it without re-validating
    what the database already holds in shape (a fifth of that request's time)."""
    row = await _GET.fetchrow(conn, id=customer_id)
    if row is None:
        raise NotFound(f"No customer with id {customer_id}.")
    return document(row, principal)


async def get_customer(conn: Connection, principal: Principal, customer_id: uuid.UUID) -> Customer:
    return Customer.model_validate(await read_customer(conn, principal, customer_id))


def is_live(customer_id: Any) -> sa.Exists:
    """SQL: the customer ``customer_id`` (a value or column) exists and is not deleted."""
    return sa.exists().where(t.c.id == customer_id, _live)


async def locked(conn: Connection, customer_id: uuid.UUID) -> db.Record:
    """The live customer's row, locked for update until the transaction ends."""
    row = await _LOCK.fetchrow(conn, id=customer_id)
    if row is None:
        raise NotFound(f"No customer with id {customer_id}.")
    return row


def refuse_erased(row: db.Record) -> None:
    if row["erased_at"] is not None:
        raise Conflict("This customer's personal data was erased; it can no longer be changed.")


async def _write(conn: Connection, row: db.Record, new: dict[str, Any]) -> db.Record:
    """Store changed columns, bump the version and emit ``customer.updated``."""
    changed = {k: v for k, v in new.items() if row[k] != v}
    if not changed:
        return row
    statement = (
        sa.update(t)
        .where(t.c.id == row["id"])
        .values(**changed, version=t.c.version + 1, updated_at=sa.func.now())
        .returning(t)
    )
    with _unique_conflicts():
        updated = await db.fetchrow(conn, statement)
    assert updated is not None
    await events.record(conn, EventType.CUSTOMER_UPDATED, resource(updated), customer_id=row["id"])
    return updated


def _writable(row: db.Record) -> dict[str, Any]:
    current = Customer.model_validate(resource(row)).model_dump(mode="json")
    return {field: current[field] for field in WRITABLE_FIELDS}


def _merge(current: dict[str, Any], patch: CustomerUpdate) -> dict[str, Any]:
    changes = patch.model_dump(mode="json", exclude_unset=True)
    merged = dict(current)
    for field, value in changes.items():
        if field == "attributes" and value is not None:
            merged[field] = merge_patch(current[field], value)
        elif field in ("address", "consents") and value is not None:
            merged[field] = {
                k: v for k, v in {**(current[field] or {}), **value}.items() if v is not None
            } or None
        else:
            merged[field] = value
    merged["consents"] = merged["consents"] or {}
    return merged


def _validated(data: dict[str, Any]) -> CustomerCreate:
    try:
        return CustomerCreate.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            "The change would leave the customer invalid.",
            errors=field_errors(exc.errors(include_url=False)),
        ) from None


async def update_customer(
    conn: Connection,
    principal: Principal,
    customer_id: uuid.UUID,
    patch: CustomerUpdate,
    *,
    expected: frozenset[int] | None,
) -> Customer:
    row = await locked(conn, customer_id)
    check_version(row["version"], expected)
    refuse_erased(row)
    data = _validated(_merge(_writable(row), patch))
    return present(await _write(conn, row, columns(data)), principal)


async def upsert_by_external_id(
    conn: Connection,
    principal: Principal,
    external_id: str,
    data: CustomerCreate,
    *,
    expected: frozenset[int] | None,
) -> tuple[Customer, bool]:
    """Create or replace the customer a partner knows as ``external_id``; True if created."""
    if data.external_id not in (None, external_id):
        raise ValidationFailed.for_field("external_id", "must match the external id in the path")
    data = data.model_copy(update={"external_id": external_id})
    row = await _BY_EXTERNAL_ID.fetchrow(conn, external_id=external_id)
    if row is None:
        if expected:
            check_version(0, expected)
        return present(await _insert(conn, data), principal), True
    check_version(row["version"], expected)
    refuse_erased(row)
    return present(await _write(conn, row, columns(data)), principal), False


async def delete_customer(
    conn: Connection,
    principal: Principal,
    customer_id: uuid.UUID,
    *,
    expected: frozenset[int] | None,
) -> None:
    row = await locked(conn, customer_id)
    check_version(row["version"], expected)
    deleted = await db.fetchrow(
        conn,
        sa.update(t)
        .where(t.c.id == customer_id)
        .values(deleted_at=sa.func.now(), updated_at=sa.func.now(), version=t.c.version + 1)
        .returning(t),
    )
    assert deleted is not None
    await events.record(
        conn, EventType.CUSTOMER_DELETED, resource(deleted), customer_id=customer_id
    )


_SORTS: dict[str, Keyset] = {
    sort: Keyset(sort, [t.c[sort.lstrip("-")], t.c.id], descending=sort.startswith("-"))
    for sort in ("created_at", "-created_at", "updated_at", "-updated_at")
}


def cursor_of(customer: Customer, sort: CustomerSort) -> str:
    """The cursor continuing a ``sort``-ordered list right after ``customer`` (as REST's)."""
    return _SORTS[sort].encode((getattr(customer, sort.lstrip("-")), customer.id))


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _filtered(principal: Principal, filters: CustomerFilters) -> sa.Select[Any]:
    if filters.email is not None and not principal.sees_pii:
        raise Forbidden(f"Filtering by email needs the scope {Scope.PII_READ}.")
    query = sa.select(t).where(_live)
    if filters.email is not None:
        query = query.where(sa.func.lower(t.c.email) == filters.email.lower())
    if filters.external_id is not None:
        query = query.where(t.c.external_id == filters.external_id)
    if filters.kind is not None:
        query = query.where(t.c.kind == filters.kind.value)
    if filters.tags:
        query = query.where(t.c.tags.contains(filters.tags))
    if filters.lifecycle_stage is not None:
        query = query.where(t.c.lifecycle_stage == filters.lifecycle_stage)
    if filters.country is not None:
        query = query.where(t.c.country == filters.country.upper())
    if filters.created_after is not None:
        query = query.where(t.c.created_at >= filters.created_after)
    if filters.created_before is not None:
        query = query.where(t.c.created_at < filters.created_before)
    if filters.q:
        # Without pii:read, search must not reveal who is behind a name or an address.
        searched = (
            [t.c.email, t.c.first_name, t.c.last_name, t.c.company_name]
            if principal.sees_pii
            else [t.c.company_name]
        )
        pattern = _like_prefix(filters.q)
        query = query.where(
            sa.or_(*(sa.func.lower(c).like(pattern, escape="\\") for c in searched))
        )
    return query


async def list_customers(
    conn: Connection,
    principal: Principal,
    filters: CustomerFilters,
    *,
    sort: CustomerSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[Customer], str | None]:
    return await _page(conn, principal, _filtered(principal, filters), sort, cursor, limit)


def matching(where: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """SQL: the ids of live customers for whom ``where`` (over the customers table) holds."""
    return sa.select(t.c.id).where(_live, where)


async def list_matching(
    conn: db.Queryable,
    principal: Principal,
    where: sa.ColumnElement[bool],
    *,
    sort: CustomerSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[Customer], str | None]:
    """A page of live customers for whom ``where`` holds, rendered as the list renders them."""
    return await _page(conn, principal, sa.select(t).where(_live, where), sort, cursor, limit)


async def count_matching(conn: db.Queryable, where: sa.ColumnElement[bool]) -> int:
    return await db.fetchval(
        conn, sa.select(sa.func.count()).select_from(matching(where).subquery())
    )


async def _page(
    conn: db.Queryable,
    principal: Principal,
    query: sa.Select[Any],
    sort: CustomerSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[Customer], str | None]:
    keyset = _SORTS[sort]
    rows = await db.fetch(conn, keyset.apply(query, cursor, limit))
    column = sort.lstrip("-")
    page, next_cursor = keyset.cut(rows, limit, lambda r: (r[column], r["id"]))
    return [present(r, principal) for r in page], next_cursor


async def export_customers(
    conn: Connection, principal: Principal, filters: CustomerFilters
) -> AsyncIterator[bytes]:
    """Every matching customer as NDJSON, streamed from a server-side cursor."""
    statement = db.Compiled.of(_filtered(principal, filters).order_by(t.c.created_at, t.c.id))
    async with conn.transaction(readonly=True):
        async for row in conn.cursor(statement.sql, *statement.args({}), prefetch=500):
            yield present(row, principal).model_dump_json().encode() + b"\n"


async def live_ids(conn: Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are live customers."""
    return {r["id"] for r in await _LIVE_IDS.fetch(conn, ids=ids)}


_LIVE_IDS = Compiled.of(
    sa.select(t.c.id).where(t.c.id == sa.any_(sa.bindparam("ids", type_=sa.ARRAY(sa.Uuid))), _live)
)


# -- lifecycle stage changes (the lifecycle domain decides; the rows are ours) -------------

# FOR NO KEY UPDATE: it serialises stage changes of a customer without waiting for the
# foreign-key locks that concurrent interaction inserts hold on the same row.
_LOCK_STAGE = Compiled.of(
    sa.select(t.c.id, t.c.lifecycle_stage, t.c.version)
    .where(t.c.id == sa.bindparam("id"), _live, t.c.erased_at.is_(None))
    .with_for_update(key_share=True)
)


async def lock_for_stage_change(conn: Connection, customer_id: uuid.UUID) -> db.Record:
    """The stage and version of a live, unerased customer, locked until the transaction
    ends so that stage changes of one customer happen one after the other."""
    row = await _LOCK_STAGE.fetchrow(conn, id=customer_id)
    if row is None:
        raise NotFound(f"No customer with id {customer_id}.")
    return row


def claim_for_stage_change(
    where: Callable[[sa.ColumnElement[Any], sa.ColumnElement[Any]], sa.ColumnElement[bool]],
    *,
    limit: sa.ColumnElement[int],
    skip_locked: bool,
) -> sa.Select[Any]:
    """SQL: ``id`` and ``lifecycle_stage`` of up to ``limit`` live, unerased customers for
    whom ``where(id, stage)`` holds, locked as ``lock_for_stage_change`` locks one
    (``skip_locked``: those another transaction holds are left for a later batch)."""
    return (
        sa.select(t.c.id, t.c.lifecycle_stage)
        .where(_live, t.c.erased_at.is_(None), where(t.c.id, t.c.lifecycle_stage))
        .limit(limit)
        .with_for_update(key_share=True, skip_locked=skip_locked)
    )


def set_stages(moves: sa.CTE, to_stage: sa.ColumnElement[str]) -> sa.Update:
    """SQL: move the customers ``moves`` names (its ``id`` and current ``lifecycle_stage``)
    to ``to_stage``, changing their version and ``updated_at`` (so their ETag); returns
    ``id``, ``from_stage`` and ``to_stage``."""
    return (
        sa.update(t)
        .where(t.c.id == moves.c.id)
        .values(lifecycle_stage=to_stage, version=t.c.version + 1, updated_at=sa.func.now())
        .returning(
            t.c.id,
            moves.c.lifecycle_stage.label("from_stage"),
            t.c.lifecycle_stage.label("to_stage"),
        )
    )


_STAGE_ROW = Compiled.of(
    sa.select(t.c.id, t.c.lifecycle_stage, t.c.created_at).where(
        t.c.id == sa.bindparam("id"), _live
    )
)


async def stage_row(conn: db.Queryable, customer_id: uuid.UUID) -> db.Record | None:
    """A live customer's ``lifecycle_stage`` and ``created_at``; None if there is none."""
    return await _STAGE_ROW.fetchrow(conn, id=customer_id)


def stage_of(customer_id: sa.ColumnElement[Any]) -> sa.ScalarSelect[str]:
    """SQL: the lifecycle stage of the customer ``customer_id`` (a value or column)."""
    # Correlated explicitly: a column of a statement several levels up still counts.
    stage = sa.select(t.c.lifecycle_stage).where(t.c.id == customer_id)
    return stage.correlate_except(t).scalar_subquery()


async def count_by_stage(conn: Connection, outside: list[str]) -> dict[str, int]:
    """How many customers, live or deleted, are in each stage not among ``outside``."""
    rows = await _COUNT_BY_STAGE.fetch(conn, outside=outside)
    return {r["lifecycle_stage"]: r["customers"] for r in rows}


_COUNT_BY_STAGE = Compiled.of(
    sa.select(t.c.lifecycle_stage, sa.func.count().label("customers"))
    .where(t.c.lifecycle_stage != sa.all_(sa.bindparam("outside", type_=sa.ARRAY(sa.Text))))
    .group_by(t.c.lifecycle_stage)
    .order_by(t.c.lifecycle_stage)
)


async def set_stage(conn: Connection, customer_id: uuid.UUID, stage: str) -> int:
    """Move a customer locked by ``lock_for_stage_change`` to ``stage``; their new version."""
    return await _SET_STAGE.fetchval(conn, id=customer_id, stage=stage)


_SET_STAGE = Compiled.of(
    sa.update(t)
    .where(t.c.id == sa.bindparam("id"))
    .values(
        lifecycle_stage=sa.bindparam("stage", type_=sa.Text),
        version=t.c.version + 1,
        updated_at=sa.func.now(),
    )
    .returning(t.c.version)
)
