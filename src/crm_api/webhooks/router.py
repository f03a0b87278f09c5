"""REST transport of webhook endpoints and deliveries (scope `webhooks:manage`)."""

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.errors import responses
from crm_api.core.http import IfMatch, etag, expected_versions
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work
from crm_api.webhooks import service
from crm_api.webhooks.schemas import (
    DeliveryFilters,
    ReplayReport,
    ReplayRequest,
    WebhookDelivery,
    WebhookDeliveryDetail,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from crm_api.webhooks.targets import TargetPolicy, policy_for

router = domain_router(tag="webhook-endpoints")
deliveries_router = domain_router(tag="webhook-deliveries")
Manager = requires(Scope.WEBHOOKS_MANAGE)
Writing = unit_of_work(Scope.WEBHOOKS_MANAGE)
EndpointId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id.")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id (its `webhook-id`).")]
ENDPOINTS = "/v1/webhook-endpoints"


def _policy(request: Request) -> TargetPolicy:
    return policy_for(request.app.state.settings)


def _headers(endpoint: WebhookEndpoint) -> dict[str, str]:
    return {"ETag": etag(endpoint.version), "Location": f"{ENDPOINTS}/{endpoint.id}"}


@router.post(
    ENDPOINTS, status_code=201, response_model=WebhookEndpointWithSecret, responses=responses(409)
)
async def webhook_endpoints_create(
    body: WebhookEndpointCreate, request: Request, uow: Writing
) -> Response:
    """Subscribe a URL to event types. The signing secret is in this response only.

    Payloads keep personal fields only when the creating key holds `pii:read`.
    Emits `webhook_endpoint.created`.
    """
    async with uow:
        endpoint = await service.create_endpoint(uow.conn, uow.principal, body, _policy(request))
        return await uow.commit(endpoint, status_code=201, headers=_headers(endpoint))


@router.get(ENDPOINTS, response_model=Page[WebhookEndpoint])
async def webhook_endpoints_list(
    principal: Manager, request: Request, cursor: Cursor = None, limit: Limit = 50
) -> Page[WebhookEndpoint]:
    """List endpoints, oldest first. Secrets are never shown again."""
    data, next_cursor = await service.list_endpoints(reads(request), cursor=cursor, limit=limit)
    return Page[WebhookEndpoint](
        data=data, next_cursor=next_cursor, has_more=next_cursor is not None
    )


@router.get(
    f"{ENDPOINTS}/{{endpoint_id}}", response_model=WebhookEndpoint, responses=responses(404)
)
async def webhook_endpoints_get(
    endpoint_id: EndpointId, principal: Manager, request: Request
) -> Response:
    """Get one endpoint, with its run of failures and why it was disabled, if it was."""
    endpoint = await service.get_endpoint(reads(request), endpoint_id)
    return Response(
        endpoint.model_dump_json(), media_type="application/json", headers=_headers(endpoint)
    )


@router.patch(
    f"{ENDPOINTS}/{{endpoint_id}}",
    response_model=WebhookEndpoint,
    responses=responses(404, 409, 412),
)
async def webhook_endpoints_update(
    endpoint_id: EndpointId,
    body: WebhookEndpointUpdate,
    request: Request,
    uow: Writing,
    if_match: IfMatch = None,
) -> Response:
    """Change some fields; those left out stay. Honours `If-Match`.

    Disabling fails the deliveries still queued for it (replay them after enabling it
    again); enabling clears its run of failures. Emits `webhook_endpoint.updated`.
    """
    async with uow:
        endpoint = await service.update_endpoint(
            uow.conn,
            uow.principal,
            endpoint_id,
            body,
            _policy(request),
            expected=expected_versions(if_match),
        )
        return await uow.commit(endpoint, headers=_headers(endpoint))


@router.delete(f"{ENDPOINTS}/{{endpoint_id}}", status_code=204, responses=responses(404, 412))
async def webhook_endpoints_delete(
    endpoint_id: EndpointId, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Delete an endpoint and its delivery history. Emits `webhook_endpoint.deleted`."""
    async with uow:
        await service.delete_endpoint(uow.conn, endpoint_id, expected=expected_versions(if_match))
        return await uow.commit(status_code=204)


@router.post(
    f"{ENDPOINTS}/{{endpoint_id}}/rotate-secret",
    response_model=WebhookEndpointWithSecret,
    responses=responses(404),
)
async def webhook_endpoints_rotate(
    endpoint_id: EndpointId, request: Request, uow: Writing
) -> Response:
    """Issue a new signing secret, shown only now. For `CRM_WEBHOOK_SECRET_GRACE_HOURS`
    the previous secret keeps signing too: `webhook-signature` then carries both."""
    grace = timedelta(hours=request.app.state.settings.webhook_secret_grace_hours)
    async with uow:
        endpoint = await service.rotate_secret(uow.conn, endpoint_id, grace)
        return await uow.commit(endpoint, headers=_headers(endpoint))


@router.get(
    f"{ENDPOINTS}/{{endpoint_id}}/deliveries",
    response_model=Page[WebhookDelivery],
    responses=responses(404),
)
async def webhook_endpoints_deliveries(
    endpoint_id: EndpointId,
    principal: Manager,
    request: Request,
    filters: Annotated[DeliveryFilters, Query()],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[WebhookDelivery]:
    """An endpoint's deliveries, newest first."""
    data, next_cursor = await service.list_deliveries(
        reads(request), endpoint_id, filters, cursor=cursor, limit=limit
    )
    return Page[WebhookDelivery](
        data=data, next_cursor=next_cursor, has_more=next_cursor is not None
    )


@router.post(
    f"{ENDPOINTS}/{{endpoint_id}}/replay",
    status_code=202,
    response_model=ReplayReport,
    responses=responses(404, 409),
)
async def webhook_endpoints_replay(
    endpoint_id: EndpointId, body: ReplayRequest, uow: Writing
) -> Response:
    """Send again every subscribed event that occurred in a time window.

    Events it already received keep their `webhook-id`, so a receiver can recognise them.
    """
    async with uow:
        scheduled = await service.replay(uow.conn, endpoint_id, body)
        return await uow.commit(ReplayReport(scheduled=scheduled), status_code=202)


@router.post(
    f"{ENDPOINTS}/{{endpoint_id}}/test",
    status_code=202,
    response_model=WebhookDelivery,
    responses=responses(404, 409),
)
async def webhook_endpoints_test(endpoint_id: EndpointId, uow: Writing) -> Response:
    """Send this endpoint a `webhook.test` event (to it alone)."""
    async with uow:
        delivery = await service.send_test(uow.conn, endpoint_id)
        return await uow.commit(delivery, status_code=202)


@deliveries_router.get(
    "/v1/webhook-deliveries/{delivery_id}",
    response_model=WebhookDeliveryDetail,
    responses=responses(404),
)
async def webhook_deliveries_get(
    delivery_id: DeliveryId, principal: Manager, request: Request
) -> WebhookDeliveryDetail:
    """One delivery with every attempt: status code, duration, start of the answer, error."""
    return await service.get_delivery(reads(request), delivery_id)


@deliveries_router.post(
    "/v1/webhook-deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=WebhookDelivery,
    responses=responses(404, 409),
)
async def webhook_deliveries_retry(delivery_id: DeliveryId, uow: Writing) -> Response:
    """Attempt a delivery again now (same `webhook-id`), whatever became of it."""
    async with uow:
        delivery = await service.retry_delivery(uow.conn, delivery_id)
        return await uow.commit(delivery, status_code=202)
