"""Operational endpoints: liveness and readiness, for load balancers and orchestrators."""

import asyncio

from fastapi import APIRouter, Request
from pydantic import BaseModel

from crm_api.core.errors import ServiceUnavailable, responses

router = APIRouter(tags=["operations"])
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
