"""Automatic transitions: rules an admin switches on, each moving customers along one
edge of the graph (a rule skips customers whose stage has no edge to its target).

Each rule is one set-based statement whose data-modifying CTEs claim customers
(``FOR NO KEY UPDATE SKIP LOCKED``, so API writes never wait for it), move them, record
their transitions and announce them. It runs on the triggering write for one customer
(a purchase: ``first_purchase``, ``win_back``), in the transaction that stores a churn
run's scores (``churn_risk``), and in the worker for everyone, in batches, catching what
those missed (imported purchases, scores from before the rule was on, inactivity).
A customer a rule moved no longer matches it, so running the rules again moves nobody.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import ARRAY

from crm_api.config import Settings
from crm_api.core.db import Compiled, Connection, Database, Queryable, Record, constant
from crm_api.core.errors import Conflict, FieldError, NotFound, ValidationFailed, field_errors
from crm_api.core.http import check_version
from crm_api.customers import service as customers
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.interactions.models import interactions as i
from crm_api.lifecycle import graph
from crm_api.lifecycle.models import lifecycle_edges as e
from crm_api.lifecycle.models import lifecycle_rules as r
from crm_api.lifecycle.models import lifecycle_transitions as tr
from crm_api.lifecycle.schemas import (
    SETTINGS,
    START,
    ChurnRiskSettings,
    InactivitySettings,
    LifecycleRule,
    RuleName,
    RuleSettings,
    RuleUpdate,
)
from crm_api.scoring.models import customer_scores as s
from crm_api.scoring.protocol import ScorerKind
from crm_api.scoring.service import latest_run

BATCH = 1000
Where = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[bool]]


def _purchased(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.exists().where(i.c.customer_id == customer_id, i.c.type == "purchase")


def _churning(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        s.c.customer_id == customer_id,
        s.c.run_id == latest_run(ScorerKind.CHURN),
        s.c.score >= sa.bindparam("threshold", type_=sa.Float),
    )


def _inactive(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    # Activity is what the customer did: our own outbound messages do not count.
    since = sa.func.now() - sa.func.make_interval(0, 0, 0, sa.bindparam("days", type_=sa.Integer))
    return ~sa.exists().where(
        i.c.customer_id == customer_id,
        i.c.occurred_at > since,
        i.c.direction.is_distinct_from("outbound"),
    )


def _bought_after_churning(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    churned_at = (
        sa.select(sa.func.max(tr.c.occurred_at))
        .where(tr.c.customer_id == customer_id, tr.c.to_stage == "churned")
        .scalar_subquery()
    )
    return sa.exists().where(
        i.c.customer_id == customer_id,
        i.c.type == "purchase",
        i.c.occurred_at
        > sa.func.coalesce(churned_at, sa.literal_column("'-infinity'::timestamptz")),
    )


@dataclass(frozen=True)
class Definition:
    name: RuleName
    description: str
    sources: tuple[str, ...]
    target: Callable[[Any], str]
    matches: Where

    def needs(self, settings: RuleSettings) -> set[str]:
        return {*self.sources, self.target(settings)}


CATALOGUE = {
    d.name: d
    for d in (
        Definition(
            RuleName.FIRST_PURCHASE,
            "A prospect's first purchase moves them to onboarding (or active).",
            (START,),
            lambda settings: settings.target,
            _purchased,
        ),
        Definition(
            RuleName.CHURN_RISK,
            "Active and loyal customers whose churn probability in the latest churn run is at "
            "or above the threshold move to at_risk.",
            ("active", "loyal"),
            lambda _: "at_risk",
            _churning,
        ),
        Definition(
            RuleName.INACTIVITY,
            "At-risk customers without any interaction of theirs for `days` days move to churned.",
            ("at_risk",),
            lambda _: "churned",
            _inactive,
        ),
        Definition(
            RuleName.WIN_BACK,
            "A churned customer's purchase (made after they churned) moves them to won_back.",
            ("churned",),
            lambda _: "won_back",
            _bought_after_churning,
        ),
    )
}


def _among(stage: sa.ColumnElement[Any], stages: tuple[str, ...]) -> sa.ColumnElement[bool]:
    # = ANY(array) rather than IN: an IN list would be expanded per call, not compiled once.
    return stage == sa.any_(constant(list(stages), ARRAY(sa.Text)))


def _as_json(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A column as the API renders it: timestamps in UTC with `Z`, as pydantic writes them."""
    if isinstance(column.type, sa.DateTime):
        return sa.func.to_char(
            sa.func.timezone("UTC", column), sa.literal('YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        )
    return column


def _moving(rule: Definition, *, one_customer: bool) -> Compiled:
    """The statement applying ``rule`` to a batch of customers (or to one, waiting for
    its lock); it answers how many moved."""
    to_stage = sa.bindparam("to_stage", type_=sa.Text)

    def where(customer_id: sa.ColumnElement[Any], stage: sa.ColumnElement[Any]) -> Any:
        allowed = sa.exists().where(e.c.from_stage == stage, e.c.to_stage == to_stage)
        conditions = [_among(stage, rule.sources), allowed, rule.matches(customer_id)]
        if one_customer:
            conditions.append(customer_id == sa.bindparam("customer_id", type_=sa.Uuid))
        return sa.and_(*conditions)

    batch = sa.bindparam("batch", type_=sa.Integer)
    picked = customers.claim_for_stage_change(where, limit=batch, skip_locked=not one_customer).cte(
        "picked"
    )
    moved = customers.set_stages(picked, to_stage).cte("moved")
    recorded = (
        sa.insert(tr)
        .from_select(
            [
                "customer_id",
                "id",
                "from_stage",
                "to_stage",
                "reason",
                "automatic",
                "rule",
                "occurred_at",
            ],
            sa.select(
                moved.c.id,
                sa.func.uuid7(),
                moved.c.from_stage,
                moved.c.to_stage,
                sa.literal(rule.description, sa.Text),
                sa.true(),
                sa.literal(rule.name.value, sa.Text),
                sa.func.clock_timestamp(),  # as manual moves: see lifecycle.service
            ),
        )
        .returning(tr)
        .cte("recorded")
    )
    announced = events.recording(
        sa.select(
            sa.func.uuid7(),
            sa.literal(EventType.LIFECYCLE_TRANSITIONED.value, sa.Text),
            recorded.c.customer_id,
            sa.func.jsonb_build_object(
                *(x for c in recorded.c for x in (sa.literal(c.name, sa.Text), _as_json(c)))
            ),
        )
    ).cte("announced")
    return Compiled.of(sa.select(sa.func.count()).select_from(recorded).add_cte(announced))


_MOVE = {
    (name, one): _moving(d, one_customer=one)
    for name, d in CATALOGUE.items()
    for one in (False, True)
}
_RULES = Compiled.of(sa.select(r).order_by(r.c.name))
_GET = Compiled.of(sa.select(r).where(r.c.name == sa.bindparam("name")))
_RULE = Compiled.of(sa.select(r).where(r.c.name == sa.bindparam("name")).with_for_update())
_UPDATE = Compiled.of(
    sa.update(r)
    .where(r.c.name == sa.bindparam("name"))
    .values(
        enabled=sa.bindparam("enabled"),
        settings=sa.bindparam("settings"),
        version=r.c.version + 1,
        updated_at=sa.func.now(),
    )
    .returning(r)
)


def _settings(row: Record) -> RuleSettings:
    return SETTINGS[RuleName(row["name"])].model_validate(row["settings"])


def present(row: Record) -> LifecycleRule:
    rule = CATALOGUE[RuleName(row["name"])]
    settings = _settings(row)
    return LifecycleRule(
        name=rule.name,
        description=rule.description,
        enabled=row["enabled"],
        settings=settings.model_dump(mode="json"),
        from_stages=list(rule.sources),
        to_stage=rule.target(settings),
        updated_at=row["updated_at"],
        version=row["version"],
    )


def _parameters(row: Record, default_threshold: float | None = None) -> dict[str, Any]:
    settings = _settings(row)
    params: dict[str, Any] = {"to_stage": CATALOGUE[RuleName(row["name"])].target(settings)}
    if isinstance(settings, ChurnRiskSettings):
        params["threshold"] = (
            default_threshold if settings.threshold is None else settings.threshold
        )
    if isinstance(settings, InactivitySettings):
        params["days"] = settings.days
    return params


async def list_rules(conn: Queryable) -> list[LifecycleRule]:
    return [present(row) for row in await _RULES.fetch(conn)]


async def needed_stages(conn: Queryable) -> dict[str, set[str]]:
    """The stages each enabled rule moves customers between."""
    return {
        row["name"]: CATALOGUE[RuleName(row["name"])].needs(_settings(row))
        for row in await _RULES.fetch(conn)
        if row["enabled"]
    }


async def update_rule(
    conn: Connection, name: RuleName, patch: RuleUpdate, *, expected: frozenset[int] | None
) -> LifecycleRule:
    """Switch a rule on or off or change its settings. A rule can only be on while the
    graph has the stages it moves customers between."""
    await graph.hold(conn)
    row = await _RULE.fetchrow(conn, name=name.value)
    if row is None:  # the migration seeds every rule of the catalogue
        raise NotFound(f"No rule named {name}.")
    check_version(row["version"], expected)
    given = patch.model_fields_set
    if "enabled" in given and patch.enabled is None:
        raise ValidationFailed.for_field("enabled", "cannot be null")
    enabled = row["enabled"] if patch.enabled is None else patch.enabled
    try:
        settings = SETTINGS[name].model_validate({**row["settings"], **(patch.settings or {})})
    except ValidationError as exc:
        errors = [
            FieldError(field=f"settings.{f.field}", message=f.message)
            for f in field_errors(exc.errors(include_url=False))
        ]
        raise ValidationFailed(f"The settings of rule {name} are invalid.", errors=errors) from None
    if enabled and (missing := CATALOGUE[name].needs(settings) - await graph.names(conn)):
        raise Conflict(
            f"Rule {name} moves customers between stages the graph lacks: "
            f"{', '.join(sorted(missing))}.",
            errors=[
                FieldError(field="enabled", message=f"the graph lacks {', '.join(sorted(missing))}")
            ],
        )
    new = {"enabled": enabled, "settings": settings.model_dump(mode="json")}
    if all(row[k] == v for k, v in new.items()):
        return present(row)
    updated = await _UPDATE.fetchrow(conn, name=name.value, **new)
    assert updated is not None
    return present(updated)


# -- applying the rules ----------------------------------------------------------------

_ON_PURCHASE = (RuleName.FIRST_PURCHASE, RuleName.WIN_BACK)


def _applicable(customer_id: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """SQL: the switched-on purchase rules that concern ``customer_id``'s stage."""
    return sa.select(r).where(
        r.c.enabled,
        sa.or_(
            *(
                sa.and_(
                    r.c.name == constant(name.value),
                    _among(customers.stage_of(customer_id), CATALOGUE[name].sources),
                )
                for name in _ON_PURCHASE
            )
        ),
    )


_APPLICABLE = Compiled.of(_applicable(sa.bindparam("customer_id", type_=sa.Uuid)))


def purchase_applies(customer_id: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """SQL: whether a purchase by ``customer_id`` sets off a switched-on rule, for the
    statement recording it to answer, sparing most purchases a round trip."""
    return sa.exists(_applicable(customer_id))


async def on_purchase(conn: Connection, customer_id: uuid.UUID) -> None:
    """Apply the purchase rules to the buyer, in the purchase's transaction. Costs one
    small query unless a switched-on rule concerns the customer's stage."""
    rows = await _APPLICABLE.fetch(conn, customer_id=customer_id)
    if rows:
        await graph.hold(conn)
    for row in rows:
        params = _parameters(row)
        await _MOVE[RuleName(row["name"]), True].fetchval(
            conn, **params, customer_id=customer_id, batch=1
        )


async def _apply(conn: Connection, row: Record, default_threshold: float) -> int:
    """One batch of a rule, in the caller's transaction; how many customers moved."""
    await graph.hold(conn)
    params = _parameters(row, default_threshold)
    return await _MOVE[RuleName(row["name"]), False].fetchval(conn, **params, batch=BATCH)


async def after_churn_run(conn: Connection, default_threshold: float) -> int:
    """``churn_risk`` for the churn run stored in the caller's transaction (the latest
    one): customers another transaction holds are left to the worker."""
    row = await _GET.fetchrow(conn, name=RuleName.CHURN_RISK.value)
    if row is None or not row["enabled"]:
        return 0
    moved = 0
    while (count := await _apply(conn, row, default_threshold)) == BATCH:
        moved += count
    return moved + count


async def apply_due(db: Database, settings: Settings) -> int:
    """Every switched-on rule for everyone, in batches of their own short transactions."""
    moved = 0
    for row in await _RULES.fetch(db.pool):
        if not row["enabled"]:
            continue
        while True:
            async with db.transaction() as conn:
                count = await _apply(conn, row, settings.churn_risk_threshold)
            moved += count
            if count < BATCH:
                break
    return moved
