"""Interactions: recording the timeline's immutable facts and reading them back."""

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from crm_api.analytics import sentiment
from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.errors import Conflict, NotFound, ValidationFailed
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.customers import service as customers
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.interactions.models import interaction_items as items_t
from crm_api.interactions.models import interactions as t
from crm_api.interactions.schemas import (
    MONETARY_TYPES,
    Interaction,
    InteractionCreate,
    InteractionFilters,
    InteractionType,
)
from crm_api.lifecycle import service as lifecycle
from crm_api.loyalty import service as loyalty

_PERSONAL_CONTENT = {"subject": None, "body": None, "metadata": {}}
ITEM_COLUMNS = ("sku", "name", "category", "quantity", "unit_price", "unit_cost")
INSERTED_COLUMNS = (
    "customer_id", "id", "external_id", "type", "channel", "direction", "occurred_at",
    "subject", "body", "campaign", "metadata", "amount", "currency", "nps", "csat", "refund_of",
    "sentiment", "service_cost",
)  # fmt: skip
# Figures of the line items stored on the interaction row for profitability to read
# (models.py); written with the row, never part of the resource or its events.
ITEM_FIGURES = ("items_cost", "costed_amount")
# costed_amount's decimal places: a share of the amount is rarely a whole minor unit.
_COSTED_SCALE = 12
# ITEM_FIGURES of interactions already written, from their items, as row_values computes
# them (exact, rounded half up): for data made in SQL, such as the scale benchmark's.
ITEM_FIGURES_FROM_ITEMS = f"""
UPDATE interactions i
   SET items_cost = f.items_cost,
       costed_amount = div(2 * i.amount * f.costed_value * 1e{_COSTED_SCALE} + f.value,
                           2 * nullif(f.value, 0)) * 1e-{_COSTED_SCALE}
  FROM (SELECT customer_id, interaction_id,
               sum(quantity * unit_cost::numeric) AS items_cost,
               sum(quantity * unit_price::numeric)
                   FILTER (WHERE unit_cost IS NOT NULL) AS costed_value,
               sum(quantity * unit_price::numeric) AS value
          FROM interaction_items
         GROUP BY customer_id, interaction_id
        HAVING count(unit_cost) > 0) f
 WHERE i.customer_id = f.customer_id AND i.id = f.interaction_id
"""


def _recording() -> Compiled:
    """One statement records an interaction, its line items and its event.

    The interaction is inserted only if its customer is live; the items and the event
    are selected from what that insert returned, so a missing customer writes nothing,
    and a write costs one round trip instead of three. The same statement says whether
    loyalty or lifecycle have work to do for such an interaction; with ``alone`` set it
    then writes nothing, so a caller outside a transaction can open one and try again.
    """
    columns = (*INSERTED_COLUMNS, *ITEM_FIGURES, "recorded_at")
    param = {c: sa.bindparam(c, type_=t.c[c].type) for c in columns}
    follow_up = sa.select(
        loyalty.acts_on(param["type"], param["currency"]).label("loyalty_acts"),
        lifecycle.acts_on(param["customer_id"], param["type"]).label("lifecycle_acts"),
    ).cte("follow_up")
    interaction = (
        sa.insert(t)
        .from_select(
            list(columns),
            sa.select(*param.values())
            .select_from(follow_up)
            .where(
                customers.is_live(param["customer_id"]),
                sa.or_(
                    sa.not_(sa.bindparam("alone", type_=sa.Boolean)),
                    sa.not_(sa.or_(follow_up.c.loyalty_acts, follow_up.c.lifecycle_acts)),
                ),
            ),
        )
        .returning(t.c.customer_id, t.c.id)
        .cte("interaction")
    )
    items = sa.insert(items_t).from_select(
        ["customer_id", "interaction_id", "line", *ITEM_COLUMNS],
        sa.select(
            interaction.c.customer_id,
            interaction.c.id,
            *(
                sa.func.unnest(sa.bindparam(f"{c}s", type_=sa.ARRAY(items_t.c[c].type)))
                for c in ("line", *ITEM_COLUMNS)
            ),
        ),
    )

    def event_of(type_: EventType, id_param: str) -> sa.Select[Any]:
        """The recorded interaction as an event of ``type_`` (the resource is its data)."""
        return sa.select(
            sa.bindparam(id_param, type_=sa.Uuid),
            sa.literal(type_.value),
            interaction.c.customer_id,
            sa.bindparam("event_data", type_=JSONB),
        )

    event = events.recording(event_of(EventType.INTERACTION_CREATED, "event_id"))
    negative = events.recording(
        event_of(EventType.FEEDBACK_NEGATIVE, "negative_event_id").where(
            param["type"] == InteractionType.FEEDBACK.value,
            param["sentiment"] < sa.bindparam("negative_below", type_=sa.Double),
        )
    )
    recorded = sa.exists().select_from(interaction).label("recorded")
    return Compiled.of(
        sa.select(follow_up.c.loyalty_acts, follow_up.c.lifecycle_acts, recorded).add_cte(
            items.cte("items"), event.cte("event"), negative.cte("negative_event")
        )
    )


# (type, currency) pairs whose last recording set off loyalty or lifecycle work: the next
# one opens its transaction first instead of trying a lone statement. Only a guess that
# saves a round trip; the statement itself decides what is written.
_follow_up_likely: set[tuple[str, str | None]] = set()


_RECORD = _recording()
_GET = Compiled.of(sa.select(t).where(t.c.id == sa.bindparam("id")))
_REFUNDED = Compiled.of(
    sa.select(t.c.customer_id, t.c.id, t.c.type, t.c.currency).where(
        t.c.id == sa.any_(sa.bindparam("ids", type_=sa.ARRAY(sa.Uuid)))
    )
)
_ITEMS = Compiled.of(
    sa.select(items_t)
    .where(
        items_t.c.customer_id == sa.any_(sa.bindparam("customer_ids", type_=sa.ARRAY(sa.Uuid))),
        items_t.c.interaction_id == sa.any_(sa.bindparam("ids", type_=sa.ARRAY(sa.Uuid))),
    )
    .order_by(items_t.c.interaction_id, items_t.c.line)
)
_ERASE = Compiled.of(
    sa.update(t).where(t.c.customer_id == sa.bindparam("customer_id")).values(**_PERSONAL_CONTENT)
)
TIMELINE = Keyset("timeline", [t.c.occurred_at, t.c.id], descending=True)


def _timeline_key(row: db.Record) -> tuple[Any, ...]:
    return row["occurred_at"], row["id"]


def resource(row: Mapping[str, Any], items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out = {c: row[c] for c in INSERTED_COLUMNS}
    out["recorded_at"] = row["recorded_at"]
    out["items"] = list(items)
    return out


def row_values(data: InteractionCreate, interaction_id: uuid.UUID) -> dict[str, Any]:
    """The interaction's row but `recorded_at`: the resource's INSERTED_COLUMNS and the
    stored-only ITEM_FIGURES."""
    values = data.model_dump(exclude={"items"})
    values["id"] = interaction_id
    values["sentiment"] = sentiment.score(data.type, data.subject, data.body)
    values.update(_item_figures(data))
    return values


def _item_figures(data: InteractionCreate) -> dict[str, int | Decimal | None]:
    """ITEM_FIGURES of ``data``, exactly as ITEM_FIGURES_FROM_ITEMS computes them."""
    costed = [
        (item.quantity, item.unit_price, item.unit_cost)
        for item in data.items
        if item.unit_cost is not None
    ]
    if not costed:
        return dict.fromkeys(ITEM_FIGURES)
    assert data.amount is not None  # items come with an amount (InteractionCreate)
    value = sum(item.quantity * item.unit_price for item in data.items)
    costed_amount = None
    if value:
        costed_value = sum(quantity * price for quantity, price, _ in costed)
        # amount * costed_value / value rounded half up to _COSTED_SCALE places, in integers
        units = (2 * data.amount * costed_value * 10**_COSTED_SCALE + value) // (2 * value)
        costed_amount = Decimal(f"{units}E-{_COSTED_SCALE}")  # exact: no context rounding
    return {
        "items_cost": sum(quantity * cost for quantity, _, cost in costed),
        "costed_amount": costed_amount,
    }


def scrub_resource(data: dict[str, Any]) -> dict[str, Any]:
    """An interaction resource without its free-text content (for erasure)."""
    return {**data, **_PERSONAL_CONTENT}


async def refunded_purchases(
    conn: Connection, refunds: Sequence[InteractionCreate]
) -> dict[uuid.UUID, db.Record]:
    """The interactions these refunds name in ``refund_of``, by id."""
    ids = list({data.refund_of for data in refunds if data.refund_of is not None})
    return {r["id"]: r for r in await _REFUNDED.fetch(conn, ids=ids)} if ids else {}


def refund_problem(data: InteractionCreate, purchase: db.Record | None) -> str | None:
    """Why ``refund_of`` cannot name ``purchase`` (it must be a purchase of the same
    customer, in the refund's currency), or None."""
    if purchase is None or purchase["customer_id"] != data.customer_id:
        return f"no purchase of customer {data.customer_id} has id {data.refund_of}"
    if purchase["type"] != InteractionType.PURCHASE:
        return f"interaction {data.refund_of} is a {purchase['type']}, not a purchase"
    if purchase["currency"] != data.currency:
        return f"the purchase was in {purchase['currency']}, not {data.currency}"
    return None


async def record_interaction(
    conn: Connection,
    principal: Principal,
    data: InteractionCreate,
    *,
    negative_below: float,
    begin: Callable[[], Awaitable[None]] | None = None,
) -> Interaction:
    """Record ``data`` with what it sets off (points, stage moves) in one transaction.

    A feedback whose sentiment score is below ``negative_below`` also emits
    ``feedback.negative``, in the same statement.

    ``begin`` is for a caller whose transaction has not started: an interaction that sets
    nothing off is then written by one self-contained statement (no BEGIN, no COMMIT),
    and ``begin`` is awaited before anything that must share a transaction.
    """
    if data.refund_of is not None:
        if begin is not None:
            await begin()
            begin = None
        purchases = await refunded_purchases(conn, [data])
        if problem := refund_problem(data, purchases.get(data.refund_of)):
            raise ValidationFailed.for_field("refund_of", problem)
    now = datetime.now(UTC)
    values = row_values(data, new_id())
    values.update(occurred_at=data.occurred_at or now, recorded_at=now)
    items = [item.model_dump() for item in data.items]
    created = resource(values, items)
    statement = {
        **values,
        "lines": list(range(1, len(items) + 1)),
        **{f"{c}s": [item[c] for item in items] for c in ITEM_COLUMNS},
        "event_id": new_id(),
        "event_data": created,
        "negative_event_id": new_id(),
        "negative_below": negative_below,
    }
    hint = (data.type.value, data.currency)
    if begin is not None and hint in _follow_up_likely:
        await begin()
        begin = None
    row = await _record(conn, statement, alone=begin is not None)
    sets_off = row["loyalty_acts"] or row["lifecycle_acts"]
    if not row["recorded"] and sets_off and begin is not None:
        await begin()
        row = await _record(conn, statement, alone=False)
    if not row["recorded"]:
        raise ValidationFailed.for_field("customer_id", f"no customer with id {data.customer_id}")
    if sets_off:
        _follow_up_likely.add(hint)
    else:
        _follow_up_likely.discard(hint)
    interaction = Interaction.model_validate(created)
    # What a purchase or refund sets off, in the same transaction: points and stage moves.
    if row["loyalty_acts"]:
        await loyalty.on_interaction(conn, interaction)
    if row["lifecycle_acts"]:
        await lifecycle.on_interaction(conn, interaction)
    return interaction


async def _record(conn: Connection, statement: dict[str, Any], *, alone: bool) -> db.Record:
    try:
        row = await _RECORD.fetchrow(conn, **statement, alone=alone)
    except asyncpg.UniqueViolationError:
        raise Conflict.for_field(
            "external_id", "an interaction with this external_id exists for this customer"
        ) from None
    assert row is not None  # the statement always answers one row
    return row


async def _with_items(conn: Connection, rows: Sequence[db.Record]) -> list[Interaction]:
    """Render rows, fetching the line items of every purchase and refund in one query."""
    monetary = [r for r in rows if r["type"] in MONETARY_TYPES]
    items: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    if monetary:
        for item in await _ITEMS.fetch(
            conn,
            customer_ids=list({r["customer_id"] for r in monetary}),
            ids=[r["id"] for r in monetary],
        ):
            items[item["interaction_id"]].append({c: item[c] for c in ITEM_COLUMNS})
    return [Interaction.model_validate(resource(r, items[r["id"]])) for r in rows]


async def get_interaction(
    conn: Connection, principal: Principal, interaction_id: uuid.UUID
) -> Interaction:
    row = await _GET.fetchrow(conn, id=interaction_id)
    if row is None:
        raise NotFound(f"No interaction with id {interaction_id}.")
    return (await _with_items(conn, [row]))[0]


async def list_interactions(
    conn: Connection,
    principal: Principal,
    filters: InteractionFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Interaction], str | None]:
    """The timeline, newest first: of one customer, or of all when no customer is given."""
    query = sa.select(t)
    if filters.customer_id is not None:
        query = query.where(t.c.customer_id == filters.customer_id)
    if filters.types:
        query = query.where(t.c.type.in_([v.value for v in filters.types]))
    if filters.channels:
        query = query.where(t.c.channel.in_([v.value for v in filters.channels]))
    if filters.since is not None:
        query = query.where(t.c.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(t.c.occurred_at < filters.until)
    rows = await db.fetch(conn, TIMELINE.apply(query, cursor, limit))
    page, next_cursor = TIMELINE.cut(rows, limit, _timeline_key)
    return await _with_items(conn, page), next_cursor


async def customer_timeline(
    conn: Connection,
    principal: Principal,
    customer_id: uuid.UUID,
    filters: InteractionFilters,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[Interaction], str | None]:
    await customers.get_customer(conn, principal, customer_id)
    return await list_interactions(
        conn,
        principal,
        filters.model_copy(update={"customer_id": customer_id}),
        cursor=cursor,
        limit=limit,
    )


_FIRST_PAGES = Compiled.of(TIMELINE.first_pages(sa.select(t), t.c.customer_id))


async def latest_by_customer(
    conn: Connection, principal: Principal, customer_ids: Sequence[uuid.UUID], *, limit: int
) -> dict[uuid.UUID, tuple[list[Interaction], str | None]]:
    """The first timeline page of each of these (known live) customers; those with no
    interactions are left out.

    Two statements however many customers are asked for, so a page of customers with
    their timelines (GraphQL's DataLoader) costs the same for 5 customers as for 200.
    """
    rows = await _FIRST_PAGES.fetch(conn, customer_ids=list(customer_ids), rows=limit + 1)
    pages = TIMELINE.cut_pages(rows, limit, _timeline_key, lambda row: row["customer_id"])
    shown: dict[uuid.UUID, list[Interaction]] = defaultdict(list)
    for interaction in await _with_items(conn, [r for page, _ in pages.values() for r in page]):
        shown[interaction.customer_id].append(interaction)
    return {customer_id: (shown[customer_id], after) for customer_id, (_, after) in pages.items()}


async def erase_personal_content(conn: Connection, customer_id: uuid.UUID) -> None:
    await _ERASE.execute(conn, customer_id=customer_id)
