"""Segments: the business rules behind REST, GraphQL and the scheduled refresh.

Functions take the caller's connection (inside its transaction), raise domain errors and
never commit. Every membership change is one set-based statement whose data-modifying
CTEs write the members, their history and one event per entry or exit together.
"""

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.channels import Channel
from crm_api.core.db import Compiled, Connection, Database, Queryable
from crm_api.core.errors import Conflict, FieldError, Forbidden, NotFound, ValidationFailed
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.core.scopes import Scope
from crm_api.customers import service as customers
from crm_api.customers.models import customers as c
from crm_api.customers.schemas import Customer, CustomerSort
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.segments import conditions
from crm_api.segments.conditions import Condition, SegmentCondition
from crm_api.segments.models import segment_members as m
from crm_api.segments.models import segment_membership_history as h
from crm_api.segments.models import segments as s
from crm_api.segments.schemas import (
    ConditionSearch,
    CustomerSegment,
    MembersAdd,
    MembersAdded,
    MembershipStay,
    Preview,
    PreviewRequest,
    RefreshReport,
    Segment,
    SegmentCount,
    SegmentCreate,
    SegmentKind,
    SegmentUpdate,
    misfit,
)

log = logging.getLogger(__name__)

SEGMENTS = Keyset("segments", [s.c.created_at, s.c.id], descending=False)
HISTORY = Keyset("segment_history", [h.c.entered_at, h.c.customer_id], descending=True)
CUSTOMER_SEGMENTS = Keyset("customer_segments", [m.c.segment_id], descending=False)
# Held while references between segments change, so two updates cannot close a cycle.
GRAPH_LOCK = 7_254_120
_STORED_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)


def present(row: db.Record, principal: Principal) -> Segment:
    segment = Segment.model_validate(dict(row))
    if segment.condition is not None and not principal.sees_pii:
        segment.condition, segment.redacted_fields = conditions.without_personal_values(
            segment.condition
        )
    return segment


def _stored(condition: Condition | None) -> dict[str, Any] | None:
    return None if condition is None else condition.model_dump(mode="json")


@contextmanager
def _unique_name() -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "A segment with this name already exists.",
            errors=[FieldError(field="name", message="is already used by another segment")],
        ) from None


# -- conditions a caller may use -----------------------------------------------------


def _reachable(ids: list[uuid.UUID]) -> sa.Select[Any]:
    """SQL: the segments ``ids`` refer to, directly or through others."""
    reach = sa.select(sa.func.unnest(sa.literal(ids, ARRAY(sa.Uuid))).label("id")).cte(
        "reach", recursive=True
    )
    reach = reach.union(
        sa.select(sa.func.unnest(s.c.depends_on)).select_from(s.join(reach, s.c.id == reach.c.id))
    )
    return sa.select(s.c.id, s.c.name, s.c.depends_on).where(s.c.id.in_(sa.select(reach.c.id)))


def _cycle(start: uuid.UUID, refs: list[uuid.UUID], graph: dict[uuid.UUID, Any]) -> list[uuid.UUID]:
    """The chain of references from ``start`` back to itself once it refers to ``refs``;
    empty if there is none."""
    parents: dict[uuid.UUID, uuid.UUID] = {}
    pending = [(ref, start) for ref in refs]
    while pending:
        node, parent = pending.pop()
        if node in parents:
            continue
        parents[node] = parent
        if node == start:
            chain = [start, parent]
            while chain[-1] != start:
                chain.append(parents[chain[-1]])
            return chain[::-1]
        pending.extend((onward, node) for onward in graph[node]["depends_on"])
    return []


async def _admit(
    conn: Connection, principal: Principal, condition: Condition, *, saving: bool = False
) -> tuple[list[tuple[str, uuid.UUID]], dict[uuid.UUID, Any]]:
    """Check a condition ``principal`` submits: personal fields need pii:read, referred
    segments must exist. Returns the references and the segments they reach; ``saving``
    holds the lock on references between segments until the transaction ends."""
    personal = conditions.personal_fields(condition)
    if personal and not principal.sees_pii:
        raise Forbidden(
            f"Conditions on personal fields need the scope {Scope.PII_READ}.",
            errors=[
                FieldError(field=at, message=f"`{f}` is a personal field") for at, f in personal
            ],
        )
    refs = conditions.references(condition)
    if not refs:
        return [], {}
    if saving:
        await db.fetchval(conn, sa.select(sa.func.pg_advisory_xact_lock(GRAPH_LOCK)))
    graph = {r["id"]: r for r in await db.fetch(conn, _reachable([ref for _, ref in refs]))}
    missing = [
        FieldError(field=at, message=f"no segment has id {ref}")
        for at, ref in refs
        if ref not in graph
    ]
    if missing:
        raise ValidationFailed(
            "The condition refers to segments that do not exist.", errors=missing
        )
    return refs, graph


async def _admit_definition(
    conn: Connection,
    principal: Principal,
    condition: Condition | None,
    segment: db.Record | None = None,
) -> list[uuid.UUID]:
    """``_admit`` for a condition saved as a segment's (``segment``'s, when it changes one):
    it must not refer back to that segment. Returns the segments it refers to."""
    if condition is None:
        return []
    refs, graph = await _admit(conn, principal, condition, saving=True)
    ids = list(dict.fromkeys(ref for _, ref in refs))
    if segment is not None and (chain := _cycle(segment["id"], ids, graph)):
        names = " -> ".join(
            graph[i]["name"] if i != segment["id"] else segment["name"] for i in chain
        )
        at = next(at for at, ref in refs if ref == chain[1])
        raise ValidationFailed(
            f"A segment may not refer to itself, even through others: {names}.",
            errors=[FieldError(field=at, message=f"would make a cycle: {names}")],
        )
    return ids


# -- segments ------------------------------------------------------------------------


_GET = Compiled.of(sa.select(s).where(s.c.id == sa.bindparam("id")))
_LOCK = Compiled.of(sa.select(s).where(s.c.id == sa.bindparam("id")).with_for_update())


async def _row(conn: Queryable, segment_id: uuid.UUID, *, lock: bool = False) -> db.Record:
    row = await (_LOCK if lock else _GET).fetchrow(conn, id=segment_id)
    if row is None:
        raise NotFound(f"No segment with id {segment_id}.")
    return row


async def create_segment(conn: Connection, principal: Principal, data: SegmentCreate) -> Segment:
    depends_on = await _admit_definition(conn, principal, data.condition)
    statement = (
        sa.insert(s)
        .values(
            id=new_id(),
            name=data.name,
            description=data.description,
            kind=data.kind,
            condition=_stored(data.condition),
            depends_on=depends_on,
            refresh_interval=data.refresh_interval,
            # A scheduled segment is due at once: its first members come with the next run.
            next_refresh_at=sa.func.now() if data.refresh_interval else None,
        )
        .returning(s)
    )
    with _unique_name():
        row = await db.fetchrow(conn, statement)
    assert row is not None
    await _emit(conn, EventType.SEGMENT_CREATED, row)
    return present(row, principal)


async def get_segment(conn: Queryable, principal: Principal, segment_id: uuid.UUID) -> Segment:
    return present(await _row(conn, segment_id), principal)


async def list_segments(
    conn: Queryable,
    principal: Principal,
    *,
    kind: SegmentKind | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Segment], str | None]:
    query = sa.select(s) if kind is None else sa.select(s).where(s.c.kind == kind)
    rows = await db.fetch(conn, SEGMENTS.apply(query, cursor, limit))
    page, next_cursor = SEGMENTS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [present(r, principal) for r in page], next_cursor


def _next_refresh(row: db.Record, changes: dict[str, Any]) -> Any:
    """When a segment whose definition or schedule changed is refreshed next."""
    interval = changes.get("refresh_interval", row["refresh_interval"])
    if interval is None:
        return None
    if "condition" in changes or row["refreshed_at"] is None:
        return sa.func.now()
    return row["refreshed_at"] + timedelta(seconds=interval)


async def update_segment(
    conn: Connection,
    principal: Principal,
    segment_id: uuid.UUID,
    patch: SegmentUpdate,
    *,
    expected: frozenset[int] | None = None,
) -> Segment:
    row = await _row(conn, segment_id, lock=True)
    check_version(row["version"], expected)
    given = patch.model_fields_set
    if "name" in given and patch.name is None:
        raise ValidationFailed.for_field("name", "cannot be null")
    kind = SegmentKind(row["kind"])
    new: dict[str, Any] = {f: getattr(patch, f) for f in ("name", "description") if f in given}
    if "condition" in given:
        if reason := misfit(kind, patch.condition):
            raise ValidationFailed.for_field("condition", reason)
        new["depends_on"] = await _admit_definition(conn, principal, patch.condition, row)
        new["condition"] = _stored(patch.condition)
    if "refresh_interval" in given:
        if kind is SegmentKind.STATIC and patch.refresh_interval is not None:
            raise ValidationFailed.for_field(
                "refresh_interval", "a static segment is never refreshed; leave it out"
            )
        new["refresh_interval"] = patch.refresh_interval
    changes = {k: v for k, v in new.items() if row[k] != v}
    if not changes:
        return present(row, principal)
    if changes.keys() & {"condition", "refresh_interval"}:
        changes["next_refresh_at"] = _next_refresh(row, changes)
    with _unique_name():
        updated = await db.fetchrow(
            conn,
            sa.update(s)
            .where(s.c.id == segment_id)
            .values(**changes, version=s.c.version + 1, updated_at=sa.func.now())
            .returning(s),
        )
    assert updated is not None
    await _emit(conn, EventType.SEGMENT_UPDATED, updated)
    return present(updated, principal)


async def delete_segment(
    conn: Connection, segment_id: uuid.UUID, *, expected: frozenset[int] | None = None
) -> None:
    """Delete a segment no other segment refers to; its members exit first."""
    row = await _row(conn, segment_id, lock=True)
    check_version(row["version"], expected)
    await db.fetchval(conn, sa.select(sa.func.pg_advisory_xact_lock(GRAPH_LOCK)))
    users = await db.fetch(
        conn,
        sa.select(s.c.name)
        .where(sa.literal(segment_id, sa.Uuid) == sa.any_(s.c.depends_on))
        .order_by(s.c.name),
    )
    if users:
        names = ", ".join(u["name"] for u in users)
        raise Conflict(
            f"Segment {row['name']} is part of the conditions of {names}; change those first.",
            errors=[FieldError(field="segment_id", message=f"used by {names}", location="path")],
        )
    exited = sa.delete(m).where(m.c.segment_id == segment_id).returning(m.c.customer_id)
    await db.fetchval(conn, _change(row, exited=exited.cte("exited")))
    await db.fetchval(conn, sa.delete(s).where(s.c.id == segment_id))
    await _emit(conn, EventType.SEGMENT_DELETED, row)


# The events feed is read by keys without pii:read too: segments appear there as such a
# key sees them (personal values in conditions withheld).
_FEED_VIEW = Principal(key_id=uuid.UUID(int=0), name="events feed", scopes=frozenset())


async def _emit(conn: Connection, event_type: EventType, row: db.Record) -> None:
    data = present(row, _FEED_VIEW).model_dump(mode="json")
    await events.record(conn, event_type, data, customer_id=None)


# -- membership ----------------------------------------------------------------------


def _count(rows: sa.CTE) -> sa.ScalarSelect[int]:
    return sa.select(sa.func.count()).select_from(rows).scalar_subquery()


def _announce(segment: db.Record, event_type: EventType, changed: sa.CTE) -> sa.Insert:
    data = sa.func.jsonb_build_object(
        "segment_id",
        sa.literal(segment["id"], sa.Uuid),
        "segment_name",
        sa.literal(segment["name"], sa.Text),
        "customer_id",
        changed.c.customer_id,
    )
    return events.recording(
        sa.select(sa.func.uuid7(), sa.literal(event_type, sa.Text), changed.c.customer_id, data)
    )


def _change(
    segment: db.Record, *, entered: sa.CTE | None = None, exited: sa.CTE | None = None
) -> sa.Select[Any]:
    """One statement: the members who ``entered`` (an insert returning customer_id and
    entered_at) and ``exited`` (a delete returning customer_id), their stays opened and
    closed and their events recorded; it answers how many entered and exited."""
    segment_id = sa.literal(segment["id"], sa.Uuid)
    effects: list[sa.CTE] = []
    if entered is not None:
        stays = sa.select(entered.c.customer_id, segment_id, entered.c.entered_at)
        effects += [
            sa.insert(h)
            .from_select(["customer_id", "segment_id", "entered_at"], stays)
            .cte("opened"),
            _announce(segment, EventType.SEGMENT_ENTERED, entered).cte("entered_events"),
        ]
    if exited is not None:
        effects += [
            sa.update(h)
            .where(
                h.c.segment_id == segment_id,
                h.c.customer_id == exited.c.customer_id,
                h.c.exited_at.is_(None),
            )
            .values(exited_at=sa.func.now())
            .cte("closed"),
            _announce(segment, EventType.SEGMENT_EXITED, exited).cte("exited_events"),
        ]
    counts = [_count(rows) if rows is not None else sa.literal(0) for rows in (entered, exited)]
    return sa.select(*counts).add_cte(*effects)


def _enter(segment_id: uuid.UUID, customer_ids: sa.Select[Any]) -> sa.CTE:
    """A CTE adding the customers ``customer_ids`` selects (those not yet members)."""
    rows = sa.select(customer_ids.subquery().c.id, sa.literal(segment_id, sa.Uuid))
    return (
        pg_insert(m)
        .from_select(["customer_id", "segment_id"], rows)
        .on_conflict_do_nothing()
        .returning(m.c.customer_id, m.c.entered_at)
        .cte("entered")
    )


_MARK_REFRESHED = Compiled.of(
    sa.update(s)
    .where(s.c.id == sa.bindparam("id"))
    .values(
        refreshed_at=sa.func.now(),
        next_refresh_at=sa.func.now()
        + s.c.refresh_interval * sa.literal_column("interval '1 second'", sa.Interval),
    )
    .returning(s.c.refreshed_at)
)


async def _refresh(conn: Connection, segment: db.Record) -> RefreshReport:
    condition = _STORED_CONDITION.validate_python(segment["condition"])
    target = customers.matching(condition.sql()).cte("target")
    entered = _enter(segment["id"], sa.select(target.c.id))
    exited = (
        sa.delete(m)
        .where(m.c.segment_id == segment["id"], m.c.customer_id.not_in(sa.select(target.c.id)))
        .returning(m.c.customer_id)
        .cte("exited")
    )
    statement = _change(segment, entered=entered, exited=exited).add_columns(_count(target))
    row = await db.fetchrow(conn, statement)
    assert row is not None
    refreshed_at = await _MARK_REFRESHED.fetchval(conn, id=segment["id"])
    entered_count, exited_count, members = row
    return RefreshReport(
        entered=entered_count, exited=exited_count, members=members, refreshed_at=refreshed_at
    )


async def refresh_segment(conn: Connection, segment_id: uuid.UUID) -> RefreshReport:
    """Compute a rule or model segment's members now; emits an event per entry and exit."""
    row = await _row(conn, segment_id, lock=True)
    if row["kind"] == SegmentKind.STATIC:
        raise Conflict("A static segment changes only as members are added and removed.")
    return await _refresh(conn, row)


_CLAIM_DUE = Compiled.of(
    sa.select(s)
    .where(
        s.c.next_refresh_at <= sa.func.now(),
        s.c.id != sa.all_(sa.bindparam("failed", type_=ARRAY(sa.Uuid))),
    )
    .order_by(s.c.next_refresh_at)
    .limit(1)
    .with_for_update(skip_locked=True)
)


async def refresh_due(db: Database) -> int:
    """Refresh every segment whose scheduled refresh is due; the number refreshed.

    Each is claimed (FOR UPDATE SKIP LOCKED) and refreshed in a transaction of its own, so
    workers running this side by side share the due segments, and one that fails (it is
    logged) is retried on the next call without holding up the others.
    """
    refreshed, failed = 0, []
    while True:
        claimed = None
        try:
            async with db.transaction() as conn:
                claimed = await _CLAIM_DUE.fetchrow(conn, failed=failed)
                if claimed is None:
                    return refreshed
                await _refresh(conn, claimed)
            refreshed += 1
        except Exception:
            if claimed is None:
                raise
            log.exception("refreshing segment %s failed", claimed["id"])
            failed.append(claimed["id"])


_MEMBER_COUNTS = Compiled.of(
    sa.select(m.c.segment_id, sa.func.count().label("members"))
    .where(
        m.c.segment_id == sa.any_(sa.bindparam("segment_ids", type_=sa.ARRAY(sa.Uuid))),
        customers.is_live(m.c.customer_id),
    )
    .group_by(m.c.segment_id)
)


async def member_counts(conn: Queryable, segment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many live customers each of these segments has as last refreshed; segments
    without any are left out. One statement for any number of segments."""
    rows = await _MEMBER_COUNTS.fetch(conn, segment_ids=list(segment_ids))
    return {row["segment_id"]: row["members"] for row in rows}


async def count_members(conn: Queryable, segment_id: uuid.UUID) -> SegmentCount:
    row = await _row(conn, segment_id)
    members = (await member_counts(conn, [segment_id])).get(segment_id, 0)
    return SegmentCount(members=members, refreshed_at=row["refreshed_at"])


async def list_members(
    conn: Queryable,
    principal: Principal,
    segment_id: uuid.UUID,
    *,
    sort: CustomerSort,
    cursor: str | None,
    limit: int,
    consented_to: Channel | None = None,
) -> tuple[list[Customer], str | None]:
    """A page of the segment's live members; with ``consented_to``, only those whose consent
    to that channel is granted (a campaign's audience: no consent, or a withdrawn one, and
    the customer is left out)."""
    await _row(conn, segment_id)
    where = SegmentCondition(segment=segment_id).sql()
    if consented_to is not None:
        where = sa.and_(where, c.c.consents.contains({consented_to.value: {"granted": True}}))
    return await customers.list_matching(
        conn, principal, where, sort=sort, cursor=cursor, limit=limit
    )


async def _static(conn: Connection, segment_id: uuid.UUID) -> db.Record:
    row = await _row(conn, segment_id, lock=True)
    if row["kind"] != SegmentKind.STATIC:
        raise Conflict(
            f"The members of a {row['kind']} segment follow its condition; refresh it instead."
        )
    return row


async def add_members(conn: Connection, segment_id: uuid.UUID, data: MembersAdd) -> MembersAdded:
    """Add customers to a static segment; emits `segment.entered` for each new member."""
    row = await _static(conn, segment_id)
    ids = list(dict.fromkeys(data.customer_ids))
    live = await customers.live_ids(conn, ids)
    unknown = [
        FieldError(field=f"customer_ids.{n}", message=f"no live customer has id {customer_id}")
        for n, customer_id in enumerate(data.customer_ids)
        if customer_id not in live
    ]
    if unknown:
        raise ValidationFailed("Only live customers can be members.", errors=unknown)
    given = sa.select(sa.func.unnest(sa.literal(ids, ARRAY(sa.Uuid))).label("id"))
    added, _ = await db.fetchrow(conn, _change(row, entered=_enter(segment_id, given)))
    members = await customers.count_matching(conn, SegmentCondition(segment=segment_id).sql())
    return MembersAdded(added=added, members=members)


async def remove_member(conn: Connection, segment_id: uuid.UUID, customer_id: uuid.UUID) -> None:
    """Remove a customer from a static segment; emits `segment.exited`."""
    row = await _static(conn, segment_id)
    exited = (
        sa.delete(m)
        .where(m.c.segment_id == segment_id, m.c.customer_id == customer_id)
        .returning(m.c.customer_id)
    )
    _, removed = await db.fetchrow(conn, _change(row, exited=exited.cte("exited")))
    if not removed:
        raise NotFound(f"Customer {customer_id} is not a member of segment {segment_id}.")


async def list_history(
    conn: Queryable,
    segment_id: uuid.UUID,
    *,
    customer_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[MembershipStay], str | None]:
    """Stays in a segment, the latest entries first."""
    await _row(conn, segment_id)
    query = sa.select(h).where(h.c.segment_id == segment_id)
    if customer_id is not None:
        query = query.where(h.c.customer_id == customer_id)
    rows = await db.fetch(conn, HISTORY.apply(query, cursor, limit))
    page, next_cursor = HISTORY.cut(rows, limit, lambda r: (r["entered_at"], r["customer_id"]))
    return [MembershipStay.model_validate(dict(r)) for r in page], next_cursor


_MEMBERSHIPS = sa.select(s, m.c.customer_id, m.c.segment_id, m.c.entered_at).select_from(
    m.join(s, s.c.id == m.c.segment_id)
)
_FIRST_PAGES = Compiled.of(CUSTOMER_SEGMENTS.first_pages(_MEMBERSHIPS, m.c.customer_id))


def _membership(row: db.Record, principal: Principal) -> CustomerSegment:
    return CustomerSegment(segment=present(row, principal), entered_at=row["entered_at"])


def _membership_key(row: db.Record) -> tuple[Any, ...]:
    return (row["segment_id"],)


async def customer_segments(
    conn: Queryable,
    principal: Principal,
    customer_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[CustomerSegment], str | None]:
    """The segments a live customer is a member of, oldest segments first."""
    if not await customers.live_ids(conn, [customer_id]):
        raise NotFound(f"No customer with id {customer_id}.")
    query = _MEMBERSHIPS.where(m.c.customer_id == customer_id)
    rows = await db.fetch(conn, CUSTOMER_SEGMENTS.apply(query, cursor, limit))
    page, next_cursor = CUSTOMER_SEGMENTS.cut(rows, limit, _membership_key)
    return [_membership(r, principal) for r in page], next_cursor


async def segments_by_customer(
    conn: Queryable, principal: Principal, customer_ids: Sequence[uuid.UUID], *, limit: int
) -> dict[uuid.UUID, tuple[list[CustomerSegment], str | None]]:
    """The first page of ``customer_segments`` of each of these live customers; those in
    no segment are left out. One statement for any number of customers."""
    rows = await _FIRST_PAGES.fetch(conn, customer_ids=list(customer_ids), rows=limit + 1)
    pages = CUSTOMER_SEGMENTS.cut_pages(rows, limit, _membership_key, lambda r: r["customer_id"])
    return {
        customer_id: ([_membership(r, principal) for r in page], after)
        for customer_id, (page, after) in pages.items()
    }


# -- conditions searched without saving them -----------------------------------------


async def search_customers(
    conn: Connection,
    principal: Principal,
    search: ConditionSearch,
    *,
    sort: CustomerSort,
    cursor: str | None,
    limit: int,
) -> tuple[list[Customer], str | None]:
    await _admit(conn, principal, search.condition)
    where = search.condition.sql()
    return await customers.list_matching(
        conn, principal, where, sort=sort, cursor=cursor, limit=limit
    )


async def preview(conn: Connection, principal: Principal, request: PreviewRequest) -> Preview:
    """How many live customers an unsaved condition matches now, and the newest of them."""
    await _admit(conn, principal, request.condition)
    where = request.condition.sql()
    sample, _ = await customers.list_matching(
        conn, principal, where, sort="-created_at", cursor=None, limit=request.sample
    )
    return Preview(count=await customers.count_matching(conn, where), sample=sample)
