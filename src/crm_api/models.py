"""Every domain's tables on one MetaData: what Alembic compares the migrations against."""

from crm_api.analytics.models import item_popularity, recommendation_refreshes, recommendation_rules
from crm_api.api_keys.models import api_keys
from crm_api.campaigns.models import campaigns
from crm_api.core.db import metadata
from crm_api.core.idempotency import idempotency_keys
from crm_api.core.ratelimit import rate_limit_buckets
from crm_api.customers.models import customers
from crm_api.events.models import events
from crm_api.interactions.models import interaction_items, interactions
from crm_api.lifecycle.models import (
    lifecycle_edges,
    lifecycle_graph,
    lifecycle_rules,
    lifecycle_stages,
    lifecycle_transitions,
)
from crm_api.loyalty.models import (
    loyalty_accounts,
    loyalty_entries,
    loyalty_lot_uses,
    loyalty_lots,
    loyalty_programs,
    loyalty_rewards,
)
from crm_api.scoring.models import customer_scores, scoring_runs
from crm_api.segments.models import segment_members, segment_membership_history, segments
from crm_api.webhooks.models import (
    webhook_attempts,
    webhook_deliveries,
    webhook_endpoints,
    webhook_fanout,
)

__all__ = [
    "api_keys",
    "campaigns",
    "customer_scores",
    "customers",
    "events",
    "idempotency_keys",
    "interaction_items",
    "interactions",
    "item_popularity",
    "lifecycle_edges",
    "lifecycle_graph",
    "lifecycle_rules",
    "lifecycle_stages",
    "lifecycle_transitions",
    "loyalty_accounts",
    "loyalty_entries",
    "loyalty_lot_uses",
    "loyalty_lots",
    "loyalty_programs",
    "loyalty_rewards",
    "metadata",
    "rate_limit_buckets",
    "recommendation_refreshes",
    "recommendation_rules",
    "scoring_runs",
    "segment_members",
    "segment_membership_history",
    "segments",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "webhook_fanout",
]
