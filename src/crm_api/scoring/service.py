"""Scoring runs and scores: the rules behind REST, GraphQL and the worker's runs."""

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.dialects.postgresql import distinct_on

from crm_api.core import db
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection, Queryable
from crm_api.core.errors import FieldError, NotFound, ValidationFailed, field_errors
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.customers import service as customers
from crm_api.scoring import registry
from crm_api.scoring.models import customer_scores as s
from crm_api.scoring.models import scoring_runs as r
from crm_api.scoring.protocol import Scorer, ScorerKind
from crm_api.scoring.schemas import (
    ChurnRisk,
    CustomerScore,
    LifetimeValue,
    Run,
    RunCreate,
    RunFilters,
    ScorerInfo,
)

# A trigger-free wake-up: the API notifies this channel when it queues a run.
JOBS_CHANNEL = "crm_jobs"
RUNS = Keyset("scoring_runs", [r.c.created_at, r.c.id], descending=True)
AT_RISK = Keyset("at_risk", [s.c.score, s.c.customer_id], descending=True)


def describe(scorer: type[Scorer]) -> ScorerInfo:
    doc = (scorer.__doc__ or "").strip()
    return ScorerInfo(
        name=scorer.name,
        version=scorer.version,
        kind=scorer.kind,
        description=doc.split("\n\n")[0].replace("\n", " "),
        config_schema=scorer.Config.model_json_schema(),
    )


def list_scorers() -> list[ScorerInfo]:
    return [describe(scorer) for scorer in registry.available().values()]


def configure(scorer: type[Scorer], config: dict[str, Any]) -> BaseModel:
    """The scorer's validated config; a 422 naming ``config.<field>`` otherwise."""
    try:
        return scorer.Config.model_validate(config)
    except ValidationError as exc:
        errors = [
            FieldError(field=f"config.{e.field}", message=e.message, location="body")
            for e in field_errors(exc.errors())
        ]
        raise ValidationFailed(f"The {scorer.name} config is invalid.", errors=errors) from None


def present(row: db.Record) -> Run:
    return Run.model_validate(dict(row))


_WAKE = Compiled.of(sa.select(sa.func.pg_notify(JOBS_CHANNEL, "")))


async def create_run(conn: Connection, principal: Principal, data: RunCreate) -> Run:
    """Queue a run; the worker fits the model and scores every live customer."""
    available = registry.available()
    scorer = available.get(data.scorer)
    if scorer is None:
        raise ValidationFailed.for_field(
            "scorer", f"unknown scorer; available: {', '.join(available) or 'none'}"
        )
    config = configure(scorer, data.config)
    row = await db.fetchrow(
        conn,
        sa.insert(r)
        .values(
            id=new_id(),
            scorer=scorer.name,
            scorer_version=scorer.version,
            kind=str(scorer.kind),
            config=config.model_dump(mode="json"),
            observation_end=data.observation_end or datetime.now(UTC).date(),
            time_unit=str(data.time_unit),
            currency=data.currency,
            created_by=principal.key_id,
        )
        .returning(r),
    )
    assert row is not None
    await _WAKE.execute(conn)
    return present(row)


_GET = Compiled.of(sa.select(r).where(r.c.id == sa.bindparam("id")))


async def get_run(conn: Queryable, run_id: uuid.UUID) -> Run:
    row = await _GET.fetchrow(conn, id=run_id)
    if row is None:
        raise NotFound(f"No scoring run with id {run_id}.")
    return present(row)


async def list_runs(
    conn: Queryable, filters: RunFilters, *, cursor: str | None, limit: int
) -> tuple[list[Run], str | None]:
    query = sa.select(r)
    if filters.scorer is not None:
        query = query.where(r.c.scorer == filters.scorer)
    rows = await db.fetch(conn, RUNS.apply(query, cursor, limit))
    page, next_cursor = RUNS.cut(rows, limit, lambda row: (row["created_at"], row["id"]))
    return [present(row) for row in page], next_cursor


# -- reading scores -----------------------------------------------------------------

_CUSTOMERS = sa.bindparam("customer_ids", type_=sa.ARRAY(sa.Uuid))
_LATEST_PER_SCORER = Compiled.of(
    sa.select(s, r.c.finished_at.label("scored_at"))
    .join(r, r.c.id == s.c.run_id)
    .where(s.c.customer_id == sa.any_(_CUSTOMERS), r.c.status == "succeeded")
    .order_by(s.c.customer_id, s.c.scorer, r.c.finished_at.desc())
    .ext(distinct_on(s.c.customer_id, s.c.scorer))
)
_IS_LIVE = Compiled.of(sa.select(customers.is_live(sa.bindparam("customer_id"))))


async def _require_customer(conn: Queryable, customer_id: uuid.UUID) -> None:
    if not await _IS_LIVE.fetchval(conn, customer_id=customer_id):
        raise NotFound(f"No customer with id {customer_id}.")


def _score(row: db.Record) -> CustomerScore:
    return CustomerScore.model_validate(dict(row))


async def scores_by_customer(
    conn: Queryable, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CustomerScore]]:
    """Each customer's latest score from each scorer that scored them, by scorer name;
    customers never scored are left out. One statement for any number of customers."""
    found: dict[uuid.UUID, list[CustomerScore]] = defaultdict(list)
    for row in await _LATEST_PER_SCORER.fetch(conn, customer_ids=list(customer_ids)):
        found[row["customer_id"]].append(_score(row))
    return found


async def customer_scores(conn: Queryable, customer_id: uuid.UUID) -> list[CustomerScore]:
    """The customer's latest score from each scorer that scored them."""
    await _require_customer(conn, customer_id)
    return (await scores_by_customer(conn, [customer_id])).get(customer_id, [])


def latest_run(kind: ScorerKind) -> sa.ScalarSelect[Any]:
    """SQL: the id of the latest succeeded run of a scorer of ``kind``."""
    return (
        sa.select(r.c.id)
        .where(r.c.kind == str(kind), r.c.status == "succeeded")
        .order_by(r.c.finished_at.desc())
        .limit(1)
        .scalar_subquery()
    )


def _latest_of_kind(kind: ScorerKind) -> Compiled:
    return Compiled.of(
        sa.select(s, r.c.finished_at.label("scored_at"), r.c.currency)
        .join(r, r.c.id == s.c.run_id)
        .where(
            s.c.customer_id == sa.any_(_CUSTOMERS),
            s.c.run_id == latest_run(kind),
            s.c.score.isnot(None),
        )
    )


_LATEST_CHURN = _latest_of_kind(ScorerKind.CHURN)
_LATEST_CLV = _latest_of_kind(ScorerKind.CLV)


async def churn_by_customer(
    conn: Queryable, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ChurnRisk]:
    """Churn from the latest churn run of each of these customers it scored; one statement."""
    rows = await _LATEST_CHURN.fetch(conn, customer_ids=list(customer_ids))
    return {row["customer_id"]: _churn(row) for row in rows}


async def churn_of(conn: Queryable, customer_id: uuid.UUID) -> ChurnRisk:
    await _require_customer(conn, customer_id)
    found = (await churn_by_customer(conn, [customer_id])).get(customer_id)
    if found is None:
        raise NotFound("This customer has no churn score yet: run a churn scorer first.")
    return found


def _churn(row: db.Record) -> ChurnRisk:
    details = row["details"]
    return ChurnRisk(
        customer_id=row["customer_id"],
        churn_probability=row["score"],
        p_alive=details.get("p_alive"),
        expected_purchases=details.get("expected_purchases"),
        scorer=row["scorer"],
        run_id=row["run_id"],
        scored_at=row["scored_at"],
    )


async def clv_by_customer(
    conn: Queryable, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, LifetimeValue]:
    """Lifetime value from the latest CLV run of each of these customers it scored; one
    statement."""
    rows = await _LATEST_CLV.fetch(conn, customer_ids=list(customer_ids))
    return {
        row["customer_id"]: LifetimeValue(
            customer_id=row["customer_id"],
            clv=row["score"],
            currency=row["currency"],
            details=row["details"],
            scorer=row["scorer"],
            run_id=row["run_id"],
            scored_at=row["scored_at"],
        )
        for row in rows
    }


async def clv_of(conn: Queryable, customer_id: uuid.UUID) -> LifetimeValue:
    await _require_customer(conn, customer_id)
    found = (await clv_by_customer(conn, [customer_id])).get(customer_id)
    if found is None:
        raise NotFound("This customer has no lifetime value yet: run a CLV scorer first.")
    return found


async def at_risk(
    conn: Queryable, *, threshold: float, cursor: str | None, limit: int
) -> tuple[list[ChurnRisk], str | None]:
    """Customers of the latest churn run at or above ``threshold``, riskiest first."""
    query = (
        sa.select(s, r.c.finished_at.label("scored_at"))
        .join(r, r.c.id == s.c.run_id)
        .where(
            s.c.run_id == latest_run(ScorerKind.CHURN),
            s.c.score >= threshold,
            customers.is_live(s.c.customer_id),
        )
    )
    rows = await db.fetch(conn, AT_RISK.apply(query, cursor, limit))
    page, next_cursor = AT_RISK.cut(rows, limit, lambda row: (row["score"], row["customer_id"]))
    return [_churn(row) for row in page], next_cursor
