"""REST transport of the lifecycle: the stage graph, its rules and customers' transitions."""

import uuid
from typing import Annotated

from fastapi import Path, Request
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.errors import responses
from crm_api.core.http import IfMatch, etag, expected_versions
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work
from crm_api.lifecycle import service
from crm_api.lifecycle.schemas import (
    CustomerLifecycle,
    LifecycleRule,
    RuleName,
    RuleUpdate,
    StageGraph,
    StagesReplace,
    Transition,
    TransitionCreate,
)

# One tag per operationId domain (`<domain>_<verb>`, see core/openapi.py).
stages_router = domain_router(prefix="/v1/lifecycle", tag="lifecycle-stages")
rules_router = domain_router(prefix="/v1/lifecycle", tag="lifecycle-rules")
transitions_router = domain_router(prefix="/v1/customers", tag="lifecycle-transitions")
customers_router = domain_router(prefix="/v1/customers", tag="customers")
Reader = requires(Scope.LIFECYCLE_READ)
Writing = unit_of_work(Scope.LIFECYCLE_WRITE)
Administering = unit_of_work(Scope.ADMIN)
CustomerId = Annotated[uuid.UUID, Path(description="The customer's id.")]
TransitionId = Annotated[uuid.UUID, Path(description="The transition's id.")]
Name = Annotated[RuleName, Path(description="The rule's name.")]


def _json(model: StageGraph | LifecycleRule) -> Response:
    return Response(
        model.model_dump_json(),
        media_type="application/json",
        headers={"ETag": etag(model.version)},
    )


@stages_router.get("/stages", response_model=StageGraph)
async def lifecycle_stages_get(principal: Reader, request: Request) -> Response:
    """The stage graph: every stage with the stages a customer may move to from it. The
    `ETag` (its version) goes into `If-Match` when replacing it."""
    return _json(await service.get_stages(reads(request)))


@stages_router.put("/stages", response_model=StageGraph, responses=responses(409, 412))
async def lifecycle_stages_replace(
    body: StagesReplace, uow: Administering, if_match: IfMatch = None
) -> Response:
    """Replace the whole graph (admin only). Honours `If-Match`.

    Refused with 422 (naming the fields) when names repeat, a target names no stage or
    the stage itself, `prospect` is missing (every customer starts there) or a stage is
    unreachable from `prospect`; with 409 when customers (live or deleted) are in a stage
    the new graph lacks, naming the stages and how many customers hold each, or when a
    switched-on rule moves customers between such stages.
    """
    async with uow:
        graph = await service.replace_stages(uow.conn, body, expected=expected_versions(if_match))
        return await uow.commit(graph, headers={"ETag": etag(graph.version)})


@rules_router.get("/rules", response_model=list[LifecycleRule])
async def lifecycle_rules_list(principal: Reader, request: Request) -> list[LifecycleRule]:
    """The automatic transitions and whether each is switched on.

    Switched-on rules move customers on the write that triggers them (a purchase), after
    a churn scoring run and periodically in the worker; each move is recorded as
    automatic with the rule's name and announced as `lifecycle.transitioned`.
    """
    return await service.list_rules(reads(request))


@rules_router.patch(
    "/rules/{name}", response_model=LifecycleRule, responses=responses(404, 409, 412)
)
async def lifecycle_rules_update(
    name: Name, body: RuleUpdate, uow: Administering, if_match: IfMatch = None
) -> Response:
    """Switch a rule on or off or change its settings (admin only). Honours `If-Match`.

    A rule can be on only while the graph has the stages it moves customers between (409).
    """
    async with uow:
        rule = await service.update_rule(uow.conn, name, body, expected=expected_versions(if_match))
        return await uow.commit(rule, headers={"ETag": etag(rule.version)})


@transitions_router.post(
    "/{customer_id}/lifecycle/transitions",
    status_code=201,
    response_model=Transition,
    responses=responses(404, 409, 412),
)
async def lifecycle_transitions_create(
    customer_id: CustomerId, body: TransitionCreate, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Move a customer to another stage. Honours `If-Match` with the customer's ETag.

    Allowed only along an edge of the graph: otherwise (or if the customer already is in
    that stage) a 409 problem whose `current` and `allowed` members name the customer's
    stage and the stages they may move to. Transitions of one customer happen one after
    the other. Changes the customer's version (and ETag), which the response's `ETag`
    carries; emits `lifecycle.transitioned`.
    """
    async with uow:
        made, version = await service.transition(
            uow.conn, uow.principal, customer_id, body, expected=expected_versions(if_match)
        )
        headers = {
            "Location": f"/v1/customers/{customer_id}/lifecycle/transitions/{made.id}",
            "ETag": etag(version),
        }
        return await uow.commit(made, status_code=201, headers=headers)


@transitions_router.get(
    "/{customer_id}/lifecycle/transitions",
    response_model=Page[Transition],
    responses=responses(404),
)
async def lifecycle_transitions_list(
    customer_id: CustomerId,
    principal: Reader,
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Transition]:
    """The customer's transitions, newest first: manual ones with the API key that made
    them, automatic ones with the rule."""
    data, next_cursor = await service.list_transitions(
        reads(request), customer_id, cursor=cursor, limit=limit
    )
    return Page[Transition](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@transitions_router.get(
    "/{customer_id}/lifecycle/transitions/{transition_id}",
    response_model=Transition,
    responses=responses(404),
)
async def lifecycle_transitions_get(
    customer_id: CustomerId, transition_id: TransitionId, principal: Reader, request: Request
) -> Transition:
    """One of the customer's transitions."""
    return await service.get_transition(reads(request), customer_id, transition_id)


@customers_router.get(
    "/{customer_id}/lifecycle", response_model=CustomerLifecycle, responses=responses(404)
)
async def customers_lifecycle(
    customer_id: CustomerId, principal: Reader, request: Request
) -> CustomerLifecycle:
    """The customer's stage, since when, and the stages they may move to now."""
    return await service.customer_lifecycle(reads(request), customer_id)
