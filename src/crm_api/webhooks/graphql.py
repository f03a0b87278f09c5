"""GraphQL transport of webhook endpoints and deliveries (scope `webhooks:manage`)."""

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, get_args

import strawberry
from strawberry import relay

from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent, idempotent_delete
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, page_size
from crm_api.graphql.permissions import needs
from crm_api.webhooks import schemas, service
from crm_api.webhooks.models import webhook_deliveries, webhook_endpoints
from crm_api.webhooks.targets import policy_for

# Made from the REST literal (PENDING for "pending", ...), so the two cannot drift apart;
# fields holding the literal's strings serialize as these names.
WebhookDeliveryStatus = strawberry.enum(
    Enum("WebhookDeliveryStatus", {s.upper(): s for s in get_args(schemas.DeliveryStatus)}),
    description="Where a delivery stands: waiting, being sent, or over.",
)


@strawberry.type(description="One POST of a delivery and what the receiver answered.")
class WebhookAttempt:
    id: strawberry.ID
    attempted_at: datetime
    status_code: int | None = strawberry.field(description="null when no answer came.")
    duration_ms: int
    response_body: str | None = strawberry.field(description="The start of the answer.")
    error: str | None


@strawberry.type(description="One event owed to one endpoint, attempted until it succeeds.")
class WebhookDelivery(Node):
    id: strawberry.ID = strawberry.field(
        description="Also the `webhook-id` header, the same on every attempt."
    )
    endpoint_id: strawberry.ID
    event_id: strawberry.ID
    event_type: str
    status: WebhookDeliveryStatus  # type: ignore[valid-type]
    attempts: int
    next_attempt_at: datetime | None = strawberry.field(
        description=schemas.WebhookDelivery.model_fields["next_attempt_at"].description
    )
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None

    @classmethod
    def of(cls, model: schemas.WebhookDelivery) -> "WebhookDelivery":
        return from_model(cls, model)


@strawberry.type(description="A delivery with the log of its attempts.")
class WebhookDeliveryDetail(WebhookDelivery):
    attempt_log: list[WebhookAttempt] = strawberry.field(description="Every attempt, oldest first.")

    @classmethod
    def of(cls, model: schemas.WebhookDeliveryDetail) -> "WebhookDeliveryDetail":  # type: ignore[override]
        attempts = [from_model(WebhookAttempt, a) for a in model.attempt_log]
        return from_model(cls, model, attempt_log=attempts)


@strawberry.type(description="A URL subscribed to event types; deliveries to it are signed.")
class WebhookEndpoint(Node):
    id: strawberry.ID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = strawberry.field(
        description="Why the service disabled it, if it did."
    )
    receives_pii: bool = strawberry.field(
        description="Whether payloads keep personal fields: only if a key with pii:read created it."
    )
    consecutive_failures: int
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until when the rotated-out secret still signs alongside the new one."
    )
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(description="Increments on every change; see ifMatchVersion.")

    @strawberry.field(
        extensions=needs(Scope.WEBHOOKS_MANAGE), description="Its deliveries, newest first."
    )
    async def deliveries(
        self,
        info: Info,
        first: int = 50,
        after: str | None = None,
        status: WebhookDeliveryStatus | None = None,  # type: ignore[valid-type]
        event_type: str | None = None,
        since: Annotated[
            datetime | None, strawberry.argument(description="Created at or after.")
        ] = None,
    ) -> relay.Connection[WebhookDelivery]:
        limit = page_size(first)
        filters = validated(
            schemas.DeliveryFilters,
            {"status": status and status.value, "event_type": event_type, "since": since},
        )
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.page_deliveries(
                    conn, uuid.UUID(self.id), filters, cursor=after, limit=limit
                )
        return connection(
            page,
            node=lambda item: WebhookDelivery.of(item[0]),
            cursor_of=lambda item: item[1],
            has_next_page=next_cursor is not None,
        )

    @classmethod
    def of(cls, model: schemas.WebhookEndpoint) -> "WebhookEndpoint":
        return from_model(cls, model)


findable(
    WebhookEndpoint,
    webhook_endpoints.c.id,
    Scope.WEBHOOKS_MANAGE,
    lambda conn, principal, id, parent: service.get_endpoint(conn, id),
)
findable(
    WebhookDelivery,
    webhook_deliveries.c.id,
    Scope.WEBHOOKS_MANAGE,
    lambda conn, principal, id, parent: service.get_delivery(conn, id),
    render=WebhookDeliveryDetail.of,  # with its attempts, as webhookDelivery answers
)


@strawberry.type(description="An endpoint with its new signing secret: shown only this once.")
class WebhookEndpointWithSecret:
    endpoint: WebhookEndpoint
    secret: str = strawberry.field(
        description="The signing secret (`whsec_` + base64). Store it safely; it is not "
        "shown again."
    )

    @classmethod
    def of(cls, model: schemas.WebhookEndpointWithSecret) -> "WebhookEndpointWithSecret":
        return cls(endpoint=WebhookEndpoint.of(model), secret=model.secret)


@strawberry.type
class WebhookReplayReport:
    scheduled: int = strawberry.field(description="Deliveries queued by this replay.")


@strawberry.input(description="A new endpoint; fields left out take their defaults.")
class WebhookEndpointInput:
    url: str = strawberry.field(
        description="Where deliveries are POSTed; http or https. Redirects are not followed."
    )
    description: str | None = strawberry.UNSET
    event_types: list[str] | None = strawberry.field(
        default=strawberry.UNSET,
        description="Event types to receive: `customer.created`, `customer.*` for a "
        "resource's, `*` (the default) for all.",
    )
    enabled: bool | None = strawberry.field(default=strawberry.UNSET, description="Default true.")


@strawberry.input(
    description="Fields left out stay as they are; null clears the description. "
    "Enabling an endpoint clears its run of failures."
)
class WebhookEndpointPatchInput:
    url: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    event_types: list[str] | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET


@strawberry.type
class WebhookQueries:
    @strawberry.field(extensions=needs(Scope.WEBHOOKS_MANAGE), description="null if unknown.")
    async def webhook_endpoint(self, info: Info, id: strawberry.ID) -> WebhookEndpoint | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_endpoint(conn, parse_id(id)))
        return None if found is None else WebhookEndpoint.of(found)

    @strawberry.field(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Endpoints, oldest first; cursors are REST's. Secrets are never shown again.",
    )
    async def webhook_endpoints(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> relay.Connection[WebhookEndpoint]:
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_endpoints(conn, cursor=after, limit=limit)
        return connection(
            page,
            node=WebhookEndpoint.of,
            cursor_of=lambda e: service.ENDPOINTS.encode((e.created_at, e.id)),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="One delivery with every attempt; null if unknown.",
    )
    async def webhook_delivery(self, info: Info, id: strawberry.ID) -> WebhookDeliveryDetail | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_delivery(conn, parse_id(id)))
        return None if found is None else WebhookDeliveryDetail.of(found)


@strawberry.type
class WebhookMutations:
    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Subscribe a URL to event types. Payloads keep personal fields only when "
        "the creating key holds pii:read.",
    )
    async def create_webhook_endpoint(
        self, info: Info, input: WebhookEndpointInput, idempotency_key: IdempotencyKey = None
    ) -> WebhookEndpointWithSecret:
        data = validated(schemas.WebhookEndpointCreate, plain(input))
        policy = policy_for(info.context.settings)
        created = await idempotent(
            info,
            idempotency_key,
            schemas.WebhookEndpointWithSecret,
            lambda conn: service.create_endpoint(conn, info.context.principal, data, policy),
        )
        return WebhookEndpointWithSecret.of(created)

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Change some fields; with ifMatchVersion, only if still at that version. "
        "Disabling fails the deliveries still queued for it.",
    )
    async def update_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,
        input: WebhookEndpointPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> WebhookEndpoint:
        endpoint_id = parse_id(id)
        patch = validated(schemas.WebhookEndpointUpdate, plain(input))
        policy = policy_for(info.context.settings)
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.WebhookEndpoint,
            lambda conn: service.update_endpoint(
                conn, info.context.principal, endpoint_id, patch, policy, expected=expected
            ),
        )
        return WebhookEndpoint.of(updated)

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Delete an endpoint and its delivery history; answers its id.",
    )
    async def delete_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> strawberry.ID:
        return await idempotent_delete(
            info,
            id,
            if_match_version,
            idempotency_key,
            lambda conn, target, expected: service.delete_endpoint(conn, target, expected=expected),
        )

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Issue a new signing secret, shown only now. For "
        "CRM_WEBHOOK_SECRET_GRACE_HOURS the previous one keeps signing too.",
    )
    async def rotate_webhook_secret(
        self, info: Info, id: strawberry.ID, idempotency_key: IdempotencyKey = None
    ) -> WebhookEndpointWithSecret:
        endpoint_id = parse_id(id)
        grace = timedelta(hours=info.context.settings.webhook_secret_grace_hours)
        rotated = await idempotent(
            info,
            idempotency_key,
            schemas.WebhookEndpointWithSecret,
            lambda conn: service.rotate_secret(conn, endpoint_id, grace),
        )
        return WebhookEndpointWithSecret.of(rotated)

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Attempt a delivery again now (same webhook-id), whatever became of it.",
    )
    async def retry_webhook_delivery(
        self, info: Info, id: strawberry.ID, idempotency_key: IdempotencyKey = None
    ) -> WebhookDelivery:
        delivery_id = parse_id(id)
        delivery = await idempotent(
            info,
            idempotency_key,
            schemas.WebhookDelivery,
            lambda conn: service.retry_delivery(conn, delivery_id),
        )
        return WebhookDelivery.of(delivery)

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Send again every subscribed event that occurred from since to until "
        "(default: now). Events it already received keep their webhook-id.",
    )
    async def replay_webhook_endpoint(
        self,
        info: Info,
        id: strawberry.ID,
        since: datetime,
        until: datetime | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> WebhookReplayReport:
        endpoint_id = parse_id(id)
        request = validated(schemas.ReplayRequest, {"since": since, "until": until})
        scheduled = await idempotent(
            info, idempotency_key, int, lambda conn: service.replay(conn, endpoint_id, request)
        )
        return WebhookReplayReport(scheduled=scheduled)

    @strawberry.mutation(
        extensions=needs(Scope.WEBHOOKS_MANAGE),
        description="Send this endpoint a webhook.test event (to it alone).",
    )
    async def test_webhook_endpoint(
        self, info: Info, id: strawberry.ID, idempotency_key: IdempotencyKey = None
    ) -> WebhookDelivery:
        endpoint_id = parse_id(id)
        delivery = await idempotent(
            info,
            idempotency_key,
            schemas.WebhookDelivery,
            lambda conn: service.send_test(conn, endpoint_id),
        )
        return WebhookDelivery.of(delivery)
