"""Operational endpoints: liveness and readiness, for load balancers and orchestrators."""

import asyncio

from fastapi import Request
from pydantic import BaseModel

from crm_api.core.errors import ServiceUnavailable, responses
from crm_api.core.routing import domain_router

router = domain_router(tag="operations", authenticated=False)
READY_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
async def ops_health() -> Health:
    """The process is up and serving."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=responses(503))
async def ops_ready(request: Request) -> Health:
    """The process can reach its database."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with request.app.state.db.connection() as conn:
                await conn.fetchval("SELECT 1")
    except Exception as exc:
        raise ServiceUnavailable(
            f"The database is unreachable: {type(exc).__name__}.", headers={"Retry-After": "5"}
        ) from None
    return Health(status="ready")
