"""REST transport of scorers, scoring runs and customers' scores."""

import uuid
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.errors import responses
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work
from crm_api.scoring import service
from crm_api.scoring.schemas import (
    ChurnRisk,
    CustomerScore,
    LifetimeValue,
    Run,
    RunCreate,
    RunFilters,
    ScorerInfo,
)

router = domain_router(tag="scoring")
Reader = requires(Scope.SCORING_READ)
Writing = unit_of_work(Scope.SCORING_WRITE)
CustomerId = Annotated[uuid.UUID, Path(description="The customer's id.")]
RunId = Annotated[uuid.UUID, Path(description="The scoring run's id.")]


@router.get("/v1/scorers", response_model=list[ScorerInfo])
async def scoring_scorers(principal: Reader) -> list[ScorerInfo]:
    """The installed scorers, built-in and plugged in, with their config JSON schemas."""
    return service.list_scorers()


@router.post("/v1/scoring/runs", status_code=202, response_model=Run)
async def scoring_start(body: RunCreate, uow: Writing) -> Response:
    """Queue a run: the worker extracts features as of `observation_end`, fits the scorer
    and scores every live customer. Follow `Location` for its status and progress.
    Emits `scoring.run_completed`, and for churn scorers `customer.churn_risk_changed` for
    each customer who crossed `CRM_CHURN_RISK_THRESHOLD`.
    """
    async with uow:
        run = await service.create_run(uow.conn, uow.principal, body)
        return await uow.commit(
            run, status_code=202, headers={"Location": f"/v1/scoring/runs/{run.id}"}
        )


@router.get("/v1/scoring/runs", response_model=Page[Run])
async def scoring_runs(
    principal: Reader,
    request: Request,
    filters: Annotated[RunFilters, Query()],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Run]:
    """Runs, newest first."""
    data, next_cursor = await service.list_runs(reads(request), filters, cursor=cursor, limit=limit)
    return Page[Run](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.get("/v1/scoring/runs/{run_id}", response_model=Run, responses=responses(404))
async def scoring_run(run_id: RunId, principal: Reader, request: Request) -> Run:
    """A run: status, progress, fitted parameters, diagnostics and counts."""
    return await service.get_run(reads(request), run_id)


@router.get(
    "/v1/customers/{customer_id}/scores",
    response_model=list[CustomerScore],
    responses=responses(404),
)
async def scoring_scores(
    customer_id: CustomerId, principal: Reader, request: Request
) -> list[CustomerScore]:
    """The customer's latest score from every scorer that has scored them."""
    return await service.customer_scores(reads(request), customer_id)


@router.get("/v1/customers/{customer_id}/churn", response_model=ChurnRisk, responses=responses(404))
async def scoring_churn(customer_id: CustomerId, principal: Reader, request: Request) -> ChurnRisk:
    """The customer's churn probability from the latest churn run."""
    return await service.churn_of(reads(request), customer_id)


@router.get(
    "/v1/customers/{customer_id}/clv", response_model=LifetimeValue, responses=responses(404)
)
async def scoring_clv(
    customer_id: CustomerId, principal: Reader, request: Request
) -> LifetimeValue:
    """The customer's lifetime value from the latest CLV run."""
    return await service.clv_of(reads(request), customer_id)


@router.get("/v1/churn/at-risk", response_model=Page[ChurnRisk])
async def scoring_risks(
    principal: Reader,
    request: Request,
    threshold: Annotated[
        float | None,
        Query(ge=0, le=1, description="Default `CRM_CHURN_RISK_THRESHOLD`."),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ChurnRisk]:
    """Customers of the latest churn run at or above the threshold, riskiest first."""
    if threshold is None:
        threshold = request.app.state.settings.churn_risk_threshold
    data, next_cursor = await service.at_risk(
        reads(request), threshold=threshold, cursor=cursor, limit=limit
    )
    return Page[ChurnRisk](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)
