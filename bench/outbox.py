"""The database side of the webhook benchmark: an endpoint, events into the outbox, and
the deliveries the worker made of them.

Events are written with plain SQL rather than through an HTTP endpoint, so that the
producer costs little next to the worker it feeds on the same two cores. Their payloads
are real ``customer.created`` resources, made by the app's own mapping from the suite's
generated customers, so bodies have the size and shape subscribers see.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bench import data
from crm_api.core.auth import Principal
from crm_api.core.db import Database
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.core.scopes import Scope
from crm_api.customers import service as customers
from crm_api.customers.schemas import CustomerCreate
from crm_api.events.schemas import EventType
from crm_api.webhooks import service as webhooks
from crm_api.webhooks.schemas import WebhookEndpointCreate
from crm_api.webhooks.targets import TargetPolicy

EVENT_TYPE = EventType.CUSTOMER_CREATED
APPLICATION_NAME = "crm-bench"
_INSERT_MANY = """
INSERT INTO events (id, type, customer_id, data)
SELECT id, $2, id, payload::jsonb FROM unnest($1::uuid[], $3::text[]) AS e(id, payload)
"""
_INSERT_ONE = "INSERT INTO events (id, type, customer_id, data) VALUES ($1, $2, $3, $4::jsonb)"
_OUTSTANDING = "SELECT count(*) FROM webhook_deliveries WHERE status IN ('pending', 'sending')"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Payload:
    customer_id: uuid.UUID
    json: str  # the event's data: a customer resource


def payloads(count: int) -> list[Payload]:
    """``count`` customer resources as ``customer.created`` events carry them."""
    now = datetime.now(UTC)
    out = []
    for person in data.customers(count):
        row = {
            "id": new_id(),
            **customers.columns(CustomerCreate.model_validate(person)),
            "lifecycle_stage": "prospect",
            "created_at": now,
            "updated_at": now,
            "version": 1,
            "erased_at": None,
        }
        out.append(Payload(row["id"], dumps(customers.resource(row)).decode()))
    return out


async def create_endpoint(url: str, target: str) -> Endpoint:
    """An endpoint subscribed to every event, made by the service layer as the API makes
    it for a key without ``pii:read`` (so bodies are redacted, the common case), on a
    connection set up as the app's are."""
    principal = Principal(key_id=new_id(), name="bench", scopes=frozenset({Scope.WEBHOOKS_MANAGE}))
    db = await Database.connect(url, min_size=1, max_size=1)
    try:
        async with db.transaction() as conn:
            created = await webhooks.create_endpoint(
                conn,
                principal,
                WebhookEndpointCreate(url=target, event_types=["*"]),
                TargetPolicy(block_private=False),
            )
    finally:
        await db.close()
    return Endpoint(created.id, created.url, created.secret)


async def insert_batch(conn: asyncpg.Connection, batch: Sequence[Payload]) -> list[uuid.UUID]:
    """One committed transaction adding ``batch`` as events; returns their ids."""
    ids = [new_id() for _ in batch]
    await conn.execute(_INSERT_MANY, ids, EVENT_TYPE.value, [p.json for p in batch])
    return ids


async def insert_one(conn: asyncpg.Connection, payload: Payload) -> uuid.UUID:
    """One event, committed when this returns (the statement is its own transaction)."""
    event_id = new_id()
    await conn.execute(_INSERT_ONE, event_id, EVENT_TYPE.value, payload.customer_id, payload.json)
    return event_id


async def outstanding(conn: asyncpg.Connection) -> int:
    """Deliveries not yet over: waiting for an attempt, or claimed and not yet recorded."""
    return int(await conn.fetchval(_OUTSTANDING))


@dataclass(frozen=True, slots=True)
class Deliveries:
    by_id: dict[str, uuid.UUID]  # webhook-id -> event id
    attempts: int  # attempts recorded for them: more than one each means retries
    failed: int  # deliveries given up on


async def deliveries(conn: asyncpg.Connection, event_ids: Sequence[uuid.UUID]) -> Deliveries:
    rows = await conn.fetch(
        "SELECT id, event_id, status FROM webhook_deliveries WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    attempts = await conn.fetchval(
        "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d "
        "ON d.id = a.delivery_id WHERE d.event_id = ANY($1::uuid[])",
        event_ids,
    )
    return Deliveries(
        {str(r["id"]): r["event_id"] for r in rows},
        int(attempts),
        sum(r["status"] == "failed" for r in rows),
    )


async def connect(url: str) -> asyncpg.Connection:
    """A connection of the benchmark itself, named so ``worker_backends`` leaves it out."""
    return await asyncpg.connect(url, server_settings={"application_name": APPLICATION_NAME})


async def worker_backends(conn: asyncpg.Connection) -> list[int]:
    """The server processes of the other sessions on this database, i.e. the worker's
    pool, for their CPU time: only meaningful when PostgreSQL runs on this machine."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND application_name <> $1",
        APPLICATION_NAME,
    )
    return [r["pid"] for r in rows]
