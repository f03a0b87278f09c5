"""Webhook endpoints and deliveries: the business rules behind REST, GraphQL and the worker.

Functions take the caller's connection (inside its transaction), raise domain errors and
never commit.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection, Queryable
from crm_api.core.errors import Conflict, NotFound, ValidationFailed
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.events import service as events
from crm_api.events.models import NOTIFY_CHANNEL
from crm_api.events.models import events as ev
from crm_api.events.schemas import EventType
from crm_api.webhooks.models import webhook_attempts as a
from crm_api.webhooks.models import webhook_deliveries as d
from crm_api.webhooks.models import webhook_endpoints as ep
from crm_api.webhooks.schemas import (
    DeliveryFilters,
    ReplayRequest,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from crm_api.webhooks.signing import new_secret
from crm_api.webhooks.targets import TargetPolicy, TargetRefused

ENDPOINTS = Keyset("webhook_endpoints", [ep.c.created_at, ep.c.id], descending=False)
DELIVERIES = Keyset("webhook_deliveries", [d.c.seq], descending=True)


def matches(event_type: Any) -> sa.Exists:
    """SQL: one of the endpoint's patterns (``*``, ``resource.*`` or exact) matches."""
    patterns = sa.func.unnest(ep.c.event_types).table_valued("p").render_derived()
    p = patterns.c.p
    return (
        sa.select(sa.literal(1))
        .select_from(patterns)
        .where(
            sa.or_(
                p == "*",
                p == event_type,
                sa.and_(
                    sa.func.right(p, 2) == ".*",
                    sa.func.starts_with(event_type, sa.func.left(p, -1)),
                ),
            )
        )
        .exists()
    )


def present(row: db.Record) -> WebhookEndpoint:
    return WebhookEndpoint.model_validate(dict(row))


def _resource(row: db.Record) -> dict[str, Any]:
    return present(row).model_dump(mode="json")


async def _check_url(url: str, policy: TargetPolicy) -> None:
    try:
        await policy.resolve(url)
    except TargetRefused as exc:
        raise ValidationFailed.for_field("url", str(exc)) from None


async def _emit(conn: Connection, type_: EventType, row: db.Record) -> None:
    await events.record(conn, type_, _resource(row), customer_id=None)


_INSERT = Compiled.of(
    sa.insert(ep)
    .values(
        id=sa.bindparam("id"),
        url=sa.bindparam("url"),
        description=sa.bindparam("description"),
        event_types=sa.bindparam("event_types", type_=sa.ARRAY(sa.Text)),
        enabled=sa.bindparam("enabled"),
        receives_pii=sa.bindparam("receives_pii"),
        secret=sa.bindparam("secret"),
    )
    .returning(ep)
)


async def create_endpoint(
    conn: Connection, principal: Principal, data: WebhookEndpointCreate, policy: TargetPolicy
) -> WebhookEndpointWithSecret:
    await _check_url(data.url, policy)
    secret = new_secret()
    row = await _INSERT.fetchrow(
        conn, id=new_id(), receives_pii=principal.sees_pii, secret=secret, **data.model_dump()
    )
    assert row is not None
    await _emit(conn, EventType.WEBHOOK_ENDPOINT_CREATED, row)
    return WebhookEndpointWithSecret(**present(row).model_dump(), secret=secret)


_GET = Compiled.of(sa.select(ep).where(ep.c.id == sa.bindparam("id")))
_LOCK = Compiled.of(sa.select(ep).where(ep.c.id == sa.bindparam("id")).with_for_update())


async def _row(conn: Queryable, endpoint_id: uuid.UUID, *, lock: bool = False) -> db.Record:
    row = await (_LOCK if lock else _GET).fetchrow(conn, id=endpoint_id)
    if row is None:
        raise NotFound(f"No webhook endpoint with id {endpoint_id}.")
    return row


async def get_endpoint(conn: Queryable, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    return present(await _row(conn, endpoint_id))


async def list_endpoints(
    conn: Queryable, *, cursor: str | None, limit: int
) -> tuple[list[WebhookEndpoint], str | None]:
    rows = await db.fetch(conn, ENDPOINTS.apply(sa.select(ep), cursor, limit))
    page, next_cursor = ENDPOINTS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [present(r) for r in page], next_cursor


async def update_endpoint(
    conn: Connection,
    principal: Principal,
    endpoint_id: uuid.UUID,
    data: WebhookEndpointUpdate,
    policy: TargetPolicy,
    *,
    expected: frozenset[int] | None = None,
) -> WebhookEndpoint:
    current = await _row(conn, endpoint_id, lock=True)
    check_version(current["version"], expected)
    changes = {k: v for k, v in data.model_dump(exclude_unset=True).items() if current[k] != v}
    for field in ("url", "event_types", "enabled"):
        if field in changes and changes[field] is None:
            raise ValidationFailed.for_field(field, "cannot be null")
    if "url" in changes:
        await _check_url(changes["url"], policy)
    if not changes:
        return present(current)
    if changes.get("enabled") is True:
        changes.update(disabled_reason=None, consecutive_failures=0)
    if changes.get("enabled") is False:
        changes["disabled_reason"] = None
        await _fail_pending(conn, [endpoint_id], "the endpoint was disabled")
    row = await db.fetchrow(
        conn,
        sa.update(ep)
        .where(ep.c.id == endpoint_id)
        .values(**changes, version=ep.c.version + 1, updated_at=sa.func.now())
        .returning(ep),
    )
    assert row is not None
    await _emit(conn, EventType.WEBHOOK_ENDPOINT_UPDATED, row)
    return present(row)


async def delete_endpoint(
    conn: Connection, endpoint_id: uuid.UUID, *, expected: frozenset[int] | None = None
) -> None:
    """Delete an endpoint with its deliveries and their attempts."""
    current = await _row(conn, endpoint_id, lock=True)
    check_version(current["version"], expected)
    await db.fetchrow(conn, sa.delete(ep).where(ep.c.id == endpoint_id))
    await _emit(conn, EventType.WEBHOOK_ENDPOINT_DELETED, current)


async def rotate_secret(
    conn: Connection, endpoint_id: uuid.UUID, grace: timedelta
) -> WebhookEndpointWithSecret:
    """A new signing secret; the previous one keeps signing alongside it for ``grace``."""
    current = await _row(conn, endpoint_id, lock=True)
    secret = new_secret()
    row = await db.fetchrow(
        conn,
        sa.update(ep)
        .where(ep.c.id == endpoint_id)
        .values(
            secret=secret,
            previous_secret=current["secret"],
            previous_secret_expires_at=datetime.now(UTC) + grace,
            version=ep.c.version + 1,
            updated_at=sa.func.now(),
        )
        .returning(ep),
    )
    assert row is not None
    await _emit(conn, EventType.WEBHOOK_ENDPOINT_UPDATED, row)
    return WebhookEndpointWithSecret(**present(row).model_dump(), secret=secret)


async def disable(conn: Connection, endpoint_ids: Sequence[uuid.UUID], reason: str) -> None:
    """Disable endpoints the service gave up on; emits ``webhook_endpoint.disabled``."""
    rows = await db.fetch(
        conn,
        sa.update(ep)
        .where(ep.c.id.in_(endpoint_ids), ep.c.enabled)
        .values(
            enabled=False,
            disabled_reason=reason,
            version=ep.c.version + 1,
            updated_at=sa.func.now(),
        )
        .returning(ep),
    )
    await _fail_pending(conn, [r["id"] for r in rows], f"the endpoint was disabled: {reason}")
    for row in rows:
        await _emit(conn, EventType.WEBHOOK_ENDPOINT_DISABLED, row)


async def _fail_pending(conn: Connection, endpoint_ids: Sequence[uuid.UUID], why: str) -> None:
    # A disabled endpoint receives nothing; its queue would only clog the claims. Once
    # it is enabled again, a replay sends what it missed.
    if endpoint_ids:
        await db.fetchrow(
            conn,
            sa.update(d)
            .where(d.c.endpoint_id.in_(endpoint_ids), d.c.status == "pending")
            .values(status="failed", last_error=why),
        )


# -- deliveries ---------------------------------------------------------------------


def _delivery(row: db.Record) -> WebhookDelivery:
    out = dict(row)
    if out["status"] in ("succeeded", "failed"):
        out["next_attempt_at"] = None
    return WebhookDelivery.model_validate(out)


def _delivery_key(row: db.Record) -> tuple[Any, ...]:
    return (row["seq"],)


async def list_deliveries(
    conn: Queryable,
    endpoint_id: uuid.UUID,
    filters: DeliveryFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[WebhookDelivery], str | None]:
    page, next_cursor = await page_deliveries(
        conn, endpoint_id, filters, cursor=cursor, limit=limit
    )
    return [delivery for delivery, _ in page], next_cursor


async def page_deliveries(
    conn: Queryable,
    endpoint_id: uuid.UUID,
    filters: DeliveryFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[tuple[WebhookDelivery, str]], str | None]:
    """A page of deliveries, newest first, each with the cursor continuing right after it
    (GraphQL gives every edge one; the sort key is not part of a delivery)."""
    await _row(conn, endpoint_id)
    query = sa.select(d).where(d.c.endpoint_id == endpoint_id)
    if filters.status is not None:
        query = query.where(d.c.status == filters.status)
    if filters.event_type is not None:
        query = query.where(d.c.event_type == filters.event_type)
    if filters.since is not None:
        query = query.where(d.c.created_at >= filters.since)
    rows = await db.fetch(conn, DELIVERIES.apply(query, cursor, limit))
    page, next_cursor = DELIVERIES.cut(rows, limit, _delivery_key)
    return [(_delivery(r), DELIVERIES.encode(_delivery_key(r))) for r in page], next_cursor


_DELIVERY = Compiled.of(sa.select(d).where(d.c.id == sa.bindparam("id")))
_ATTEMPTS = Compiled.of(sa.select(a).where(a.c.delivery_id == sa.bindparam("id")).order_by(a.c.id))


async def get_delivery(conn: Queryable, delivery_id: uuid.UUID) -> WebhookDeliveryDetail:
    row = await _DELIVERY.fetchrow(conn, id=delivery_id)
    if row is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.")
    attempts = await _ATTEMPTS.fetch(conn, id=delivery_id)
    return WebhookDeliveryDetail(
        **_delivery(row).model_dump(),
        attempt_log=[WebhookAttempt.model_validate(dict(r)) for r in attempts],
    )


_WAKE = Compiled.of(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))


async def retry_delivery(conn: Connection, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send a delivery again now, whatever became of it; its id stays the same."""
    row = await db.fetchrow(conn, sa.select(d).where(d.c.id == delivery_id).with_for_update())
    if row is None:
        raise NotFound(f"No webhook delivery with id {delivery_id}.")
    if row["status"] == "sending":
        raise Conflict("This delivery is being sent right now; ask again once it reports back.")
    endpoint = await _row(conn, row["endpoint_id"])
    if not endpoint["enabled"]:
        raise Conflict("The delivery's endpoint is disabled; enable it first.")
    updated = await db.fetchrow(
        conn,
        sa.update(d)
        .where(d.c.id == delivery_id)
        .values(status="pending", next_attempt_at=sa.func.now())
        .returning(d),
    )
    await _WAKE.execute(conn)
    assert updated is not None
    return _delivery(updated)


async def replay(conn: Connection, endpoint_id: uuid.UUID, request: ReplayRequest) -> int:
    """Queue again every event in the window the endpoint subscribes to; the count queued.

    An event it already had is sent again under its original ``webhook-id``, so a
    receiver that kept it can tell; one in flight right now is left to finish.
    """
    endpoint = await _row(conn, endpoint_id)
    if not endpoint["enabled"]:
        raise Conflict("The endpoint is disabled; enable it before replaying.")
    until = request.until or datetime.now(UTC)
    if until < request.since:
        raise ValidationFailed.for_field("until", "must not be before since")
    window = (
        sa.select(sa.literal(endpoint_id, sa.Uuid).label("endpoint_id"), ev.c.id, ev.c.type)
        .select_from(ev.join(ep, ep.c.id == endpoint_id))
        .where(
            ev.c.occurred_at >= request.since,
            ev.c.occurred_at <= until,
            ev.c.type != EventType.WEBHOOK_TEST,
            events.SETTLED,
            matches(ev.c.type),
        )
        .order_by(ev.c.tx_id, ev.c.seq)
    )
    insert = pg_insert(d).from_select(["endpoint_id", "event_id", "event_type"], window)
    rows = await db.fetch(
        conn,
        insert.on_conflict_do_update(
            index_elements=[d.c.endpoint_id, d.c.event_id],
            set_={"status": "pending", "next_attempt_at": sa.func.now()},
            where=d.c.status != "sending",
        ).returning(d.c.id),
    )
    await _WAKE.execute(conn)
    return len(rows)


async def send_test(conn: Connection, endpoint_id: uuid.UUID) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint alone."""
    endpoint = await _row(conn, endpoint_id)
    if not endpoint["enabled"]:
        raise Conflict("The endpoint is disabled; enable it before testing it.")
    event_id = new_id()
    await db.fetchrow(
        conn,
        sa.insert(ev).values(
            id=event_id,
            type=EventType.WEBHOOK_TEST,
            data={"endpoint_id": str(endpoint_id), "message": "A test delivery from crm-api."},
        ),
    )
    row = await db.fetchrow(
        conn,
        sa.insert(d)
        .values(endpoint_id=endpoint_id, event_id=event_id, event_type=EventType.WEBHOOK_TEST)
        .returning(d),
    )
    assert row is not None
    return _delivery(row)
