"""Lifecycle: the business rules behind REST, GraphQL, the rules and the worker.

Functions take the caller's connection (inside its transaction), raise domain errors and
never commit. Every stage change holds the graph (``graph.hold``) and then the customer,
in that order, so a graph replacement and transitions never deadlock.
"""

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection, Queryable, Record
from crm_api.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.customers import service as customers
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.interactions.schemas import Interaction, InteractionType
from crm_api.lifecycle import graph, rules
from crm_api.lifecycle.models import lifecycle_transitions as tr
from crm_api.lifecycle.schemas import (
    CustomerLifecycle,
    CustomerStage,
    LifecycleRule,
    RuleName,
    RuleUpdate,
    StageGraph,
    StagesReplace,
    Transition,
    TransitionCreate,
)

HISTORY = Keyset("lifecycle_transitions", [tr.c.occurred_at, tr.c.id], descending=True)


def _history_key(row: Record) -> tuple[Any, ...]:
    return row["occurred_at"], row["id"]


# -- the graph and the rules -----------------------------------------------------------


async def get_stages(conn: Queryable) -> StageGraph:
    return await graph.read(conn)


async def replace_stages(
    conn: Connection, data: StagesReplace, *, expected: frozenset[int] | None
) -> StageGraph:
    """Replace the whole graph (see ``graph.replace`` for what is refused)."""
    return await graph.replace(
        conn, data, expected=expected, needed_by_rules=await rules.needed_stages(conn)
    )


async def list_rules(conn: Queryable) -> list[LifecycleRule]:
    return await rules.list_rules(conn)


async def update_rule(
    conn: Connection, name: RuleName, patch: RuleUpdate, *, expected: frozenset[int] | None
) -> LifecycleRule:
    return await rules.update_rule(conn, name, patch, expected=expected)


# -- transitions -----------------------------------------------------------------------

# The clock at the move, not the transaction's start: a transition that waited for the
# customer's lock is later than the one it waited for.
_INSERT = Compiled.of(
    sa.insert(tr)
    .values(
        {c.name: sa.bindparam(c.name) for c in tr.c if c.name != "occurred_at"}
        | {"occurred_at": sa.func.clock_timestamp()}
    )
    .returning(tr.c.occurred_at)
)


async def transition(
    conn: Connection,
    principal: Principal,
    customer_id: uuid.UUID,
    data: TransitionCreate,
    *,
    expected: frozenset[int] | None,
) -> tuple[Transition, int]:
    """Move a customer to another stage along an edge of the graph; answers the transition
    and the customer's new version (their ETag). ``expected``: the customer's versions
    ``If-Match`` accepts."""
    await graph.hold(conn)
    customer = await customers.lock_for_stage_change(conn, customer_id)
    check_version(customer["version"], expected)
    current = customer["lifecycle_stage"]
    if data.to not in await graph.names(conn):
        raise ValidationFailed.for_field("to", f"no stage is named {data.to}")
    allowed = await graph.targets(conn, current)
    if data.to not in allowed:
        detail = (
            f"The customer is already in {current}."
            if data.to == current
            else f"A customer in {current} cannot move to {data.to}."
        )
        targets = ", ".join(allowed) if allowed else "none"
        raise Conflict(
            f"{detail} From {current} they may move to: {targets}.",
            errors=[FieldError(field="to", message=f"allowed from {current}: {targets}")],
            extensions={"current": current, "allowed": allowed},
        )
    version = await customers.set_stage(conn, customer_id, data.to)
    values: dict[str, Any] = {
        "customer_id": customer_id,
        "id": new_id(),
        "from_stage": current,
        "to_stage": data.to,
        "reason": data.reason,
        "automatic": False,
        "rule": None,
        "actor_key_id": principal.key_id,
    }
    values["occurred_at"] = await _INSERT.fetchval(conn, **values)
    made = Transition.model_validate(values)
    await events.record(
        conn,
        EventType.LIFECYCLE_TRANSITIONED,
        made.model_dump(mode="json"),
        customer_id=customer_id,
    )
    return made, version


async def _require_customer(conn: Queryable, customer_id: uuid.UUID) -> Record:
    row = await customers.stage_row(conn, customer_id)
    if row is None:
        raise NotFound(f"No customer with id {customer_id}.")
    return row


async def list_transitions(
    conn: Queryable, customer_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Transition], str | None]:
    """A live customer's transitions, newest first."""
    await _require_customer(conn, customer_id)
    query = sa.select(tr).where(tr.c.customer_id == customer_id)
    rows = await db.fetch(conn, HISTORY.apply(query, cursor, limit))
    page, next_cursor = HISTORY.cut(rows, limit, _history_key)
    return [Transition.model_validate(dict(row)) for row in page], next_cursor


_GET = Compiled.of(
    sa.select(tr).where(
        tr.c.customer_id == sa.bindparam("customer_id"), tr.c.id == sa.bindparam("id")
    )
)


async def get_transition(
    conn: Queryable, customer_id: uuid.UUID, transition_id: uuid.UUID
) -> Transition:
    await _require_customer(conn, customer_id)
    row = await _GET.fetchrow(conn, customer_id=customer_id, id=transition_id)
    if row is None:
        raise NotFound(f"Customer {customer_id} has no transition with id {transition_id}.")
    return Transition.model_validate(dict(row))


def _lifecycles() -> Compiled:
    given = (
        sa.func.unnest(
            sa.bindparam("customer_ids", type_=sa.ARRAY(sa.Uuid)),
            sa.bindparam("stages", type_=sa.ARRAY(sa.Text)),
            sa.bindparam("created_ats", type_=sa.ARRAY(sa.DateTime(timezone=True))),
        )
        .table_valued("customer_id", "stage", "created_at")
        .render_derived(name="customer")
    )
    moved_at = (
        sa.select(tr.c.occurred_at)
        .where(tr.c.customer_id == given.c.customer_id)
        .order_by(tr.c.occurred_at.desc(), tr.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return Compiled.of(
        sa.select(
            given.c.customer_id,
            given.c.stage,
            sa.func.coalesce(moved_at, given.c.created_at).label("since"),
            graph.targets_of(given.c.stage).label("allowed"),
        )
    )


_LIFECYCLES = _lifecycles()


async def lifecycles(
    conn: Queryable, customers: Sequence[CustomerStage]
) -> dict[CustomerStage, CustomerLifecycle]:
    """Each of these live customers' stage, since when, and where they may move from it:
    one statement for any number of customers."""
    rows = await _LIFECYCLES.fetch(
        conn,
        customer_ids=[c.customer_id for c in customers],
        stages=[c.stage for c in customers],
        created_ats=[c.created_at for c in customers],
    )
    given = {(c.customer_id, c.stage): c for c in customers}
    return {
        given[row["customer_id"], row["stage"]]: CustomerLifecycle.model_validate(dict(row))
        for row in rows
    }


async def customer_lifecycle(conn: Queryable, customer_id: uuid.UUID) -> CustomerLifecycle:
    """A live customer's stage, since when, and where they may move from it."""
    customer = await _require_customer(conn, customer_id)
    held = CustomerStage(customer_id, customer["lifecycle_stage"], customer["created_at"])
    return (await lifecycles(conn, [held]))[held]


_FIRST_PAGES = Compiled.of(HISTORY.first_pages(sa.select(tr), tr.c.customer_id))


async def transitions_by_customer(
    conn: Queryable, customer_ids: Sequence[uuid.UUID], *, limit: int
) -> dict[uuid.UUID, tuple[list[Transition], str | None]]:
    """The first page of transitions of each of these live customers, newest first; those
    never moved are left out. One statement for any number of customers."""
    rows = await _FIRST_PAGES.fetch(conn, customer_ids=list(customer_ids), rows=limit + 1)
    pages = HISTORY.cut_pages(rows, limit, _history_key, lambda row: row["customer_id"])
    return {
        customer_id: ([Transition.model_validate(dict(row)) for row in page], after)
        for customer_id, (page, after) in pages.items()
    }


def acts_on(
    customer_id: sa.ColumnElement[Any], type_: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """SQL: whether ``on_interaction`` has anything to do for such an interaction."""
    return sa.and_(
        type_ == db.constant(InteractionType.PURCHASE.value), rules.purchase_applies(customer_id)
    )


async def on_interaction(conn: Connection, interaction: Interaction) -> None:
    """What a recorded interaction sets off, in its transaction: a purchase may move its
    buyer (``first_purchase``, ``win_back``). Other interactions cost nothing."""
    if interaction.type is InteractionType.PURCHASE:
        await rules.on_purchase(conn, interaction.customer_id)
