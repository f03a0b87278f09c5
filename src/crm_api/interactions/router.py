"""REST transport of the interaction timeline."""

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.channels import Channel
from crm_api.core.errors import responses
from crm_api.core.ndjson import IMPORT_REQUEST_BODY, ImportReport, read_ndjson
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.types import Timestamp
from crm_api.core.uow import reads, unit_of_work
from crm_api.interactions import importer, service
from crm_api.interactions.schemas import (
    Interaction,
    InteractionCreate,
    InteractionFilters,
    InteractionType,
)

router = domain_router(tag="interactions")
Reader = requires(Scope.INTERACTIONS_READ)
Writing = unit_of_work(Scope.INTERACTIONS_WRITE)
# Most interactions are recorded by one self-contained statement (see service.Recorder).
Recording = unit_of_work(Scope.INTERACTIONS_WRITE, deferred=True)


def _filters(
    type: Annotated[
        list[InteractionType], Query(description="Any of these types (repeatable).")
    ] = [],
    channel: Annotated[
        list[Channel], Query(description="Any of these channels (repeatable).")
    ] = [],
    since: Annotated[Timestamp | None, Query(description="occurred_at >= since.")] = None,
    until: Annotated[Timestamp | None, Query(description="occurred_at < until.")] = None,
) -> InteractionFilters:
    return InteractionFilters(types=type, channels=channel, since=since, until=until)


Filters = Annotated[InteractionFilters, Depends(_filters)]


@router.post(
    "/v1/interactions", status_code=201, response_model=Interaction, responses=responses(409)
)
async def interactions_create(
    body: InteractionCreate, uow: Recording, request: Request
) -> Response:
    """Record an interaction on a customer's timeline. Emits `interaction.created`.

    Feedback and support with a subject or body get a `sentiment` score (VADER's compound
    score of that text, -1 to 1); a feedback scoring below `CRM_SENTIMENT_NEGATIVE_THRESHOLD`
    (default -0.5) also emits `feedback.negative`, so service can act on it.

    Interactions are immutable facts: there is no update or delete. An `external_id`
    already recorded for the customer is a 409, so retried syncs cannot duplicate facts.

    A purchase earns points in every loyalty programme with auto-earn in its currency; a
    refund naming its purchase in `refund_of` takes back the refunded share of them.

    Costs feed profitability: line items may carry `unit_cost`, and any interaction a
    `service_cost` (a support call, a visit) with the `currency` it is in.
    """
    negative_below = request.app.state.settings.sentiment_negative_threshold
    async with uow:
        interaction = None
        if not uow.in_transaction:  # no Idempotency-Key to commit with it
            recorder: service.Recorder = request.app.state.interaction_recorder
            interaction = await recorder.record(body, negative_below=negative_below)
        if interaction is None:
            interaction = await service.record_interaction(
                await uow.begin(), uow.principal, body, negative_below=negative_below
            )
        return await uow.commit(
            interaction,
            status_code=201,
            headers={"Location": f"/v1/interactions/{interaction.id}"},
        )


@router.get("/v1/interactions", response_model=Page[Interaction])
async def interactions_list(
    principal: Reader,
    request: Request,
    filters: Filters,
    customer_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Interaction]:
    """List interactions, newest first."""
    filters = filters.model_copy(update={"customer_id": customer_id})
    data, next_cursor = await service.list_interactions(
        reads(request), principal, filters, cursor=cursor, limit=limit
    )
    return Page[Interaction](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.post(
    "/v1/interactions/import",
    response_model=ImportReport,
    openapi_extra={"requestBody": IMPORT_REQUEST_BODY},
    responses=responses(409, 415),
)
async def interactions_import(request: Request, uow: Writing) -> Response:
    """Record interactions from NDJSON, one per line.

    Bad lines are reported with their line number and never block the good ones. Lines
    whose `external_id` is already recorded for their customer are counted as unchanged.
    """
    async with uow:
        report = await importer.import_interactions(
            uow.conn,
            uow.principal,
            await read_ndjson(request),
            negative_below=request.app.state.settings.sentiment_negative_threshold,
        )
        return await uow.commit(report)


@router.get(
    "/v1/interactions/{interaction_id}", response_model=Interaction, responses=responses(404)
)
async def interactions_get(
    interaction_id: Annotated[uuid.UUID, Path()], principal: Reader, request: Request
) -> Interaction:
    """Get one interaction."""
    return await service.get_interaction(reads(request), principal, interaction_id)


@router.get(
    "/v1/customers/{customer_id}/interactions",
    response_model=Page[Interaction],
    responses=responses(404),
)
async def interactions_timeline(
    customer_id: Annotated[uuid.UUID, Path()],
    principal: Reader,
    request: Request,
    filters: Filters,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Interaction]:
    """A customer's timeline, newest first."""
    data, next_cursor = await service.customer_timeline(
        reads(request), principal, customer_id, filters, cursor=cursor, limit=limit
    )
    return Page[Interaction](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)
