"""The GraphQL schema, assembled from the domains' graphql modules."""

import strawberry
from strawberry.fastapi import GraphQLRouter

from crm_api.customers.graphql import CustomerQueries
from crm_api.graphql.context import get_context


@strawberry.type
class Query(CustomerQueries):
    pass


schema = strawberry.Schema(query=Query)


def graphql_router() -> GraphQLRouter:
    return GraphQLRouter(schema, context_getter=get_context, graphql_ide=None)
