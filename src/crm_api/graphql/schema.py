"""The GraphQL schema, assembled from the domains' graphql modules, and its router."""

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.config import StrawberryConfig

from crm_api.customers.graphql import CustomerMutations, CustomerQueries
from crm_api.graphql.context import get_context
from crm_api.graphql.errors import ProblemExtensions, log_unexpected
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
):
    pass


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Strawberry logs every error; a client's bad request is not an error of ours.
        log_unexpected(errors)


schema = Schema(
    query=Query,
    mutation=Mutation,
    extensions=[ProblemExtensions],
    config=StrawberryConfig(scalar_map=SCALARS | LOYALTY_SCALARS),
)


def graphql_router() -> GraphQLRouter:
    # GraphiQL loads from a CDN, which these machines cannot reach; off until served locally.
    return GraphQLRouter(schema, context_getter=get_context, graphql_ide=None)
