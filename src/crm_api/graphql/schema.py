"""The GraphQL schema, assembled from the domains' graphql modules, and its router."""

from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from starlette.websockets import WebSocket
from strawberry.fastapi import GraphQLRouter
from strawberry.http.websocket_origin import normalize_origin
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES, StreamResult
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from crm_api.analytics.graphql import AnalyticsQueries
from crm_api.analytics.profile_graphql import ProfileQueries
from crm_api.campaigns.graphql import CampaignMutations, CampaignQueries
from crm_api.customers.graphql import CustomerMutations, CustomerQueries
from crm_api.events.graphql import EventSubscriptions
from crm_api.graphql import ide
from crm_api.graphql.context import Context, SocketRateLimit, get_context
from crm_api.graphql.errors import ProblemExtensions, log_unexpected
from crm_api.graphql.limits import SafetyLimits
from crm_api.graphql.node import NodeQueries
from crm_api.graphql.scalars import SCALARS
from crm_api.interactions.graphql import InteractionMutations, InteractionQueries
from crm_api.lifecycle.graphql import LifecycleMutations, LifecycleQueries
from crm_api.loyalty.graphql import SCALARS as LOYALTY_SCALARS
from crm_api.loyalty.graphql import LoyaltyMutations, LoyaltyQueries
from crm_api.scoring.graphql import ScoringMutations, ScoringQueries
from crm_api.segments.graphql import SegmentMutations, SegmentQueries
from crm_api.webhooks.graphql import WebhookMutations, WebhookQueries


@strawberry.type
class Query(
    CustomerQueries,
    InteractionQueries,
    WebhookQueries,
    ScoringQueries,
    SegmentQueries,
    LifecycleQueries,
    LoyaltyQueries,
    NodeQueries,
    AnalyticsQueries,
    CampaignQueries,
    ProfileQueries,
):
    pass


@strawberry.type
class Mutation(
    CustomerMutations,
    InteractionMutations,
    WebhookMutations,
    ScoringMutations,
    SegmentMutations,
    LifecycleMutations,
    LoyaltyMutations,
    CampaignMutations,
):
    pass


@strawberry.type
class Subscription(EventSubscriptions):
    pass


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Strawberry logs every error; a client's bad request is not an error of ours.
        log_unexpected(errors)

    async def execute(
        self,
        *args: Any,
        allowed_operation_types: Iterable[OperationType] | None = None,
        **kwargs: Any,
    ) -> ExecutionResult:
        # Subscriptions stream over a websocket; executed once over HTTP they would resolve
        # to nothing, so HTTP refuses them (400, "subscriptions are not allowed ...").
        allowed = set(allowed_operation_types or DEFAULT_ALLOWED_OPERATION_TYPES)
        allowed.discard(OperationType.SUBSCRIPTION)
        return await super().execute(*args, allowed_operation_types=allowed, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> StreamResult:
        # A websocket carries subscriptions only: queries and mutations go over HTTP, each
        # in a request of its own (a socket's context, DataLoader caches included, would
        # outlive them).
        kwargs["allowed_operation_types"] = {OperationType.SUBSCRIPTION}
        return await super().stream(*args, **kwargs)


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[ProblemExtensions, SafetyLimits, SocketRateLimit],
    config=StrawberryConfig(scalar_map=SCALARS | LOYALTY_SCALARS),
)


class Router(GraphQLRouter):
    """`/graphql` over HTTP, and over websockets (graphql-transport-ws) for subscriptions."""

    async def on_ws_connect(self, context: Context) -> UnsetType:
        await context.sign_in_socket()
        return UNSET

    def is_websocket_origin_allowed(self, request: WebSocket, origin: str) -> bool:
        # Pages on the origins CORS admits may subscribe as well: a key authenticates them,
        # never a cookie, so a page gains nothing it was not given.
        allowed = request.app.state.settings.cors_origins
        page = normalize_origin(origin)  # None for "null" and other non-origins
        return "*" in allowed or (page is not None and page in map(normalize_origin, allowed))


def graphql_router() -> GraphQLRouter:
    # Strawberry's GraphiQL page loads from a CDN; ours is served from the package.
    router = Router(schema, context_getter=get_context, graphql_ide=None)
    ide.serve(router)
    return router
