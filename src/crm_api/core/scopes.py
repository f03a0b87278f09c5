"""API key scopes: ``resource:action``; a write scope implies its read, ``admin`` implies all."""

from enum import StrEnum


class Scope(StrEnum):
    ADMIN = "admin"
    CUSTOMERS_READ = "customers:read"
    CUSTOMERS_WRITE = "customers:write"
    INTERACTIONS_READ = "interactions:read"
    INTERACTIONS_WRITE = "interactions:write"
    EVENTS_READ = "events:read"
    PII_READ = "pii:read"
    WEBHOOKS_MANAGE = "webhooks:manage"
    SEGMENTS_READ = "segments:read"
    SEGMENTS_WRITE = "segments:write"
    SCORING_READ = "scoring:read"
    SCORING_WRITE = "scoring:write"
    LOYALTY_READ = "loyalty:read"
    LOYALTY_WRITE = "loyalty:write"
    LIFECYCLE_READ = "lifecycle:read"
    LIFECYCLE_WRITE = "lifecycle:write"
    ANALYTICS_READ = "analytics:read"
    CAMPAIGNS_READ = "campaigns:read"
    CAMPAIGNS_WRITE = "campaigns:write"
    METRICS_READ = "metrics:read"


def expand(scopes: set[str] | frozenset[str]) -> frozenset[str]:
    """The scopes a key effectively holds, implications included."""
    if Scope.ADMIN in scopes:
        return frozenset(Scope)
    implied = {s.removesuffix(":write") + ":read" for s in scopes if s.endswith(":write")}
    return frozenset(scopes) | implied
