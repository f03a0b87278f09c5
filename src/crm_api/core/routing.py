"""Routers for the API's domains, with the conventions every operation shares."""

from typing import Any

from fastapi import APIRouter

from crm_api.core.errors import responses
from crm_api.core.openapi import operation_id


def domain_router(*, tag: str, prefix: str = "", authenticated: bool = True) -> APIRouter:
    """A router whose operations are named ``<domain>_<verb>`` and declare their problems."""
    common: dict[int | str, Any] = responses(401, 403, 422) if authenticated else {}
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        responses=common,
        generate_unique_id_function=operation_id,
    )
