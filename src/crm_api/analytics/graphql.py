"""GraphQL transport of analytics (scope `analytics:read`)."""

import strawberry


@strawberry.type
class AnalyticsQueries:
    pass
