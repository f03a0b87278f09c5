"""Campaigns: the business rules behind REST, GraphQL and the KPIs.

Functions take the caller's connection (inside its transaction), raise domain errors and
never commit. Every change is recorded with its event in the same transaction.
"""

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_api.campaigns import performance
from crm_api.campaigns.models import campaigns as k
from crm_api.campaigns.schemas import (
    ENDS_BEFORE_START,
    REQUIRED,
    Campaign,
    CampaignCreate,
    CampaignFilters,
    CampaignPerformance,
    CampaignStatus,
    CampaignTotals,
    CampaignUpdate,
)
from crm_api.core import db
from crm_api.core.db import Compiled, Connection, Queryable
from crm_api.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.events import service as events
from crm_api.events.schemas import EventType

CAMPAIGNS = Keyset("campaigns", [k.c.created_at, k.c.id], descending=False)

_now = sa.func.now()
_status = sa.case(
    (k.c.starts_at > _now, CampaignStatus.PLANNED.value),
    (k.c.ends_at <= _now, CampaignStatus.ENDED.value),
    else_=CampaignStatus.RUNNING.value,
).label("status")
_COLUMNS = [c for c in k.c if c.name != "deleted_at"] + [_status]
_live = k.c.deleted_at.is_(None)

_GET = Compiled.of(sa.select(*_COLUMNS).where(k.c.id == sa.bindparam("id"), _live))
_LOCK = Compiled.of(
    sa.select(*_COLUMNS).where(k.c.id == sa.bindparam("id"), _live).with_for_update()
)


def present(row: db.Record) -> Campaign:
    return Campaign.model_validate(dict(row))


@contextmanager
def _refused_references() -> Iterator[None]:
    """A taken code is a conflict, an unknown segment invalid: both named by their field."""
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "A live campaign with this code already exists.",
            errors=[FieldError(field="code", message="is already used by another campaign")],
        ) from None
    except asyncpg.ForeignKeyViolationError:
        raise ValidationFailed.for_field("segment_id", "no segment has this id") from None


async def _row(conn: Queryable, campaign_id: uuid.UUID, *, lock: bool = False) -> db.Record:
    row = await (_LOCK if lock else _GET).fetchrow(conn, id=campaign_id)
    if row is None:
        raise NotFound(f"No campaign with id {campaign_id}.")
    return row


async def _write(conn: Connection, statement: sa.Executable, event_type: EventType) -> Campaign:
    """Run a write returning the campaign's row, and record its event with it."""
    with _refused_references():
        row = await db.fetchrow(conn, statement)
    assert row is not None
    campaign = present(row)
    await events.record(conn, event_type, campaign.model_dump(mode="json"), customer_id=None)
    return campaign


def _change(campaign_id: uuid.UUID, **values: Any) -> sa.Update:
    return (
        sa.update(k)
        .where(k.c.id == campaign_id)
        .values(**values, version=k.c.version + 1, updated_at=sa.func.now())
        .returning(*_COLUMNS)
    )


async def create_campaign(conn: Connection, data: CampaignCreate) -> Campaign:
    statement = sa.insert(k).values(id=new_id(), **data.model_dump()).returning(*_COLUMNS)
    return await _write(conn, statement, EventType.CAMPAIGN_CREATED)


async def get_campaign(conn: Queryable, campaign_id: uuid.UUID) -> Campaign:
    return present(await _row(conn, campaign_id))


async def list_campaigns(
    conn: Queryable, filters: CampaignFilters, *, cursor: str | None, limit: int
) -> tuple[list[Campaign], str | None]:
    """Live campaigns, oldest first."""
    query = sa.select(*_COLUMNS).where(_live)
    if filters.channel is not None:
        query = query.where(k.c.channel == filters.channel.value)
    if filters.segment_id is not None:
        query = query.where(k.c.segment_id == filters.segment_id)
    if filters.status is not None:
        query = query.where(_status == filters.status.value)
    if filters.active_at is not None:
        at = filters.active_at
        query = query.where(k.c.starts_at <= at, sa.or_(k.c.ends_at.is_(None), k.c.ends_at > at))
    rows = await db.fetch(conn, CAMPAIGNS.apply(query, cursor, limit))
    page, next_cursor = CAMPAIGNS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [present(r) for r in page], next_cursor


def _changes(row: db.Record, patch: CampaignUpdate) -> dict[str, Any]:
    given = patch.model_fields_set
    if nulled := [f for f in REQUIRED if f in given and getattr(patch, f) is None]:
        raise ValidationFailed(
            "Some fields cannot be cleared.",
            errors=[FieldError(field=f, message="cannot be null") for f in nulled],
        )
    changes = {f: getattr(patch, f) for f in given if getattr(patch, f) != row[f]}
    starts_at: datetime = changes.get("starts_at", row["starts_at"])
    ends_at: datetime | None = changes.get("ends_at", row["ends_at"])
    if ends_at is not None and ends_at <= starts_at:
        if "ends_at" in changes:
            raise ValidationFailed.for_field("ends_at", ENDS_BEFORE_START)
        raise ValidationFailed.for_field("starts_at", "must be before ends_at")
    return changes


async def update_campaign(
    conn: Connection,
    campaign_id: uuid.UUID,
    patch: CampaignUpdate,
    *,
    expected: frozenset[int] | None = None,
) -> Campaign:
    row = await _row(conn, campaign_id, lock=True)
    check_version(row["version"], expected)
    changes = _changes(row, patch)
    if not changes:
        return present(row)
    return await _write(conn, _change(campaign_id, **changes), EventType.CAMPAIGN_UPDATED)


async def delete_campaign(
    conn: Connection, campaign_id: uuid.UUID, *, expected: frozenset[int] | None = None
) -> None:
    """Soft-delete: the campaign disappears from reads and its code is free again."""
    row = await _row(conn, campaign_id, lock=True)
    check_version(row["version"], expected)
    await _write(conn, _change(campaign_id, deleted_at=sa.func.now()), EventType.CAMPAIGN_DELETED)


async def performances(
    conn: Queryable, campaign_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, CampaignPerformance]:
    """The performance of each of these live campaigns (others are left out), in one
    statement for any number of them."""
    rows = await performance.BY_ID.fetch(conn, campaign_ids=list(campaign_ids))
    return {r["campaign_id"]: CampaignPerformance.model_validate(dict(r)) for r in rows}


async def campaign_performance(conn: Queryable, campaign_id: uuid.UUID) -> CampaignPerformance:
    found = (await performances(conn, [campaign_id])).get(campaign_id)
    if found is None:
        raise NotFound(f"No campaign with id {campaign_id}.")
    return found


async def started_in(
    conn: Queryable, *, start: datetime, end: datetime, segment_id: uuid.UUID | None
) -> dict[str, CampaignTotals]:
    """Cost, revenue and ROI per currency of the live campaigns that started in [``start``,
    ``end``), of those targeting ``segment_id`` when given; currencies without any are left
    out."""
    rows = await performance.STARTED_IN.fetch(conn, start=start, end=end, segment_id=segment_id)
    return {r["currency"]: CampaignTotals.model_validate(dict(r)) for r in rows}
