"""REST transport of analytics: KPIs, cohorts, affinities, recommendations and sentiment."""

from crm_api.core.auth import requires
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope

router = domain_router(tag="analytics")
Reader = requires(Scope.ANALYTICS_READ)
