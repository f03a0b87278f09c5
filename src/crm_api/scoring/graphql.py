"""GraphQL transport of scorers, scoring runs and customers' scores."""

import uuid
from datetime import date, datetime
from typing import Annotated

import strawberry
from strawberry import relay
from strawberry.scalars import JSON

from crm_api.core.errors import ValidationFailed
from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, page_size
from crm_api.graphql.permissions import needs
from crm_api.scoring import schemas, service
from crm_api.scoring.models import scoring_runs
from crm_api.scoring.protocol import ScorerKind, TimeUnit

strawberry.enum(ScorerKind, name="ScorerKind")
strawberry.enum(TimeUnit, name="TimeUnit")


@strawberry.type(description="An installed scorer, built in or plugged in.")
class Scorer:
    name: str
    version: str
    kind: ScorerKind
    description: str
    config_schema: JSON = strawberry.field(description="JSON Schema of a run's config.")


@strawberry.type(description="One fit of a scorer and the scores it wrote.")
class ScoringRun(Node):
    id: strawberry.ID
    scorer: str
    scorer_version: str
    kind: ScorerKind
    config: JSON
    observation_end: date
    time_unit: TimeUnit
    currency: str | None
    status: str = strawberry.field(description="queued, running, succeeded or failed.")
    progress: float
    parameters: JSON | None
    diagnostics: JSON | None
    customers_scored: int | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, model: schemas.Run) -> "ScoringRun":
        return from_model(cls, model)


findable(
    ScoringRun,
    scoring_runs.c.id,
    Scope.SCORING_READ,
    lambda conn, principal, id, parent: service.get_run(conn, id),
)


@strawberry.type(description="A customer's latest score from one scorer.")
class CustomerScore:
    scorer: str
    kind: ScorerKind
    run_id: strawberry.ID
    scored_at: datetime
    score: float | None
    label: str | None
    details: JSON


@strawberry.type(description="Churn probability from the latest churn run.")
class ChurnRisk:
    customer_id: strawberry.ID
    churn_probability: float
    p_alive: float | None
    expected_purchases: float | None
    scorer: str
    run_id: strawberry.ID
    scored_at: datetime


@strawberry.type(description="Lifetime value from the latest CLV run, in major units.")
class LifetimeValue:
    clv: float
    currency: str | None
    details: JSON
    scorer: str
    run_id: strawberry.ID
    scored_at: datetime


@strawberry.input(description="A scoring run to queue; see the Scorer's configSchema.")
class ScoringRunInput:
    scorer: str
    config: JSON | None = strawberry.UNSET
    observation_end: date | None = strawberry.UNSET
    time_unit: TimeUnit | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET


async def scores_of(info: Info, customer_id: uuid.UUID) -> list[CustomerScore]:
    """A listed customer's scores, batched with the other customers' of the request."""
    found = await info.context.batched("scores", service.scores_by_customer, customer_id, [])
    return [from_model(CustomerScore, s) for s in found]


async def churn_of(info: Info, customer_id: uuid.UUID) -> ChurnRisk | None:
    found = await info.context.batched("churn", service.churn_by_customer, customer_id, None)
    return None if found is None else from_model(ChurnRisk, found)


async def clv_of(info: Info, customer_id: uuid.UUID) -> LifetimeValue | None:
    found = await info.context.batched("clv", service.clv_by_customer, customer_id, None)
    return None if found is None else from_model(LifetimeValue, found)


@strawberry.type
class ScoringQueries:
    @strawberry.field(extensions=needs(Scope.SCORING_READ), description="Installed scorers.")
    async def scorers(self, info: Info) -> list[Scorer]:
        return [from_model(Scorer, s) for s in service.list_scorers()]

    @strawberry.field(extensions=needs(Scope.SCORING_READ), description="null if unknown.")
    async def scoring_run(self, info: Info, id: strawberry.ID) -> ScoringRun | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_run(conn, parse_id(id)))
        return None if found is None else ScoringRun.of(found)

    @strawberry.field(extensions=needs(Scope.SCORING_READ), description="Runs, newest first.")
    async def scoring_runs(
        self, info: Info, first: int = 50, after: str | None = None, scorer: str | None = None
    ) -> relay.Connection[ScoringRun]:
        limit = page_size(first)
        filters = validated(schemas.RunFilters, {"scorer": scorer})
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_runs(
                    conn, filters, cursor=after, limit=limit
                )
        return connection(
            page,
            node=ScoringRun.of,
            cursor_of=lambda run: service.RUNS.encode((run.created_at, run.id)),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(
        extensions=needs(Scope.SCORING_READ),
        description="Customers of the latest churn run at or above the threshold, riskiest "
        "first (default threshold: CRM_CHURN_RISK_THRESHOLD).",
    )
    async def churn_at_risk(
        self,
        info: Info,
        threshold: Annotated[float | None, strawberry.argument(description="0 to 1.")] = None,
        first: int = 50,
        after: str | None = None,
    ) -> relay.Connection[ChurnRisk]:
        limit = page_size(first)
        if threshold is None:
            threshold = info.context.settings.churn_risk_threshold
        elif not 0 <= threshold <= 1:
            raise ValidationFailed.for_field("threshold", "must be between 0 and 1")
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.at_risk(
                    conn, threshold=threshold, cursor=after, limit=limit
                )
        return connection(
            page,
            node=lambda risk: from_model(ChurnRisk, risk),
            cursor_of=lambda risk: service.AT_RISK.encode(
                (risk.churn_probability, risk.customer_id)
            ),
            has_next_page=next_cursor is not None,
        )


@strawberry.type
class ScoringMutations:
    @strawberry.mutation(
        extensions=needs(Scope.SCORING_WRITE),
        description="Queue a run; the worker fits the scorer and scores every live customer.",
    )
    async def start_scoring_run(
        self, info: Info, input: ScoringRunInput, idempotency_key: IdempotencyKey = None
    ) -> ScoringRun:
        data = validated(schemas.RunCreate, plain(input))
        run = await idempotent(
            info,
            idempotency_key,
            schemas.Run,
            lambda conn: service.create_run(conn, info.context.principal, data),
        )
        return ScoringRun.of(run)
