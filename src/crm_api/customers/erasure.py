"""Erasure ("right to be forgotten"): personal data goes, the aggregates stay.

Lives beside the customers service rather than in it because it reaches into the
timeline and the events history, which themselves depend on customers.
"""

import uuid
from typing import Any

import sqlalchemy as sa

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Connection
from crm_api.core.pii import PERSONAL_FIELDS, is_customer_event
from crm_api.customers import service as customers
from crm_api.customers.models import customers as t
from crm_api.customers.schemas import Customer
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.interactions import service as interactions

# Identifiers, contact data and free-form content; kind, region, country, demographics
# bands, tags and acquisition stay for segment and KPI aggregates.
_ERASED_FIELDS = (*PERSONAL_FIELDS, "external_id")
_ERASED_ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code")
_ERASED_EMPTY = {"attributes": {}, "consents": {}}
_ERASED_COLUMNS = {
    **dict.fromkeys(_ERASED_FIELDS),
    **dict.fromkeys(("address_line1", "address_line2", "city", "postal_code")),
    **_ERASED_EMPTY,
}


def _scrub_customer(data: dict[str, Any]) -> dict[str, Any]:
    out = {**data, **dict.fromkeys(_ERASED_FIELDS), **_ERASED_EMPTY}
    if isinstance(out.get("address"), dict):
        out["address"] = {**out["address"], **dict.fromkeys(_ERASED_ADDRESS_FIELDS)}
    return out


def _scrub_event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    if is_customer_event(event_type):
        return _scrub_customer(data)
    if event_type == EventType.INTERACTION_CREATED:
        return interactions.scrub_resource(data)
    return data


async def erase_customer(
    conn: Connection, principal: Principal, customer_id: uuid.UUID
) -> Customer:
    """Irreversibly remove personal data from the customer, its timeline and its events."""
    row = await customers.locked(conn, customer_id)
    if row["erased_at"] is not None:
        return customers.present(row, principal)
    erased = await db.fetchrow(
        conn,
        sa.update(t)
        .where(t.c.id == customer_id)
        .values(
            **_ERASED_COLUMNS,
            erased_at=sa.func.now(),
            updated_at=sa.func.now(),
            version=t.c.version + 1,
        )
        .returning(t),
    )
    assert erased is not None
    await interactions.erase_personal_content(conn, customer_id)
    await events.rewrite_history(conn, customer_id, _scrub_event)
    await events.record(
        conn, EventType.CUSTOMER_ERASED, customers.resource(erased), customer_id=customer_id
    )
    return customers.present(erased, principal)
