"""REST transport of API key management (scope `admin`)."""

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import Path, Query, Request
from starlette.responses import Response

from crm_api.api_keys import service
from crm_api.api_keys.schemas import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyRotate,
    ApiKeyUpdate,
    ApiKeyWithSecret,
)
from crm_api.core.auth import Admin
from crm_api.core.errors import responses
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import reads, unit_of_work

router = domain_router(prefix="/v1/api-keys", tag="api-keys")
Writing = unit_of_work(Scope.ADMIN)
KeyId = Annotated[uuid.UUID, Path(description="The API key's id.")]


@router.post("", status_code=201, response_model=ApiKeyWithSecret)
async def api_keys_create(body: ApiKeyCreate, uow: Writing) -> Response:
    """Issue a key. The secret is in this response only."""
    async with uow:
        key = await service.create_key(uow.conn, uow.principal.key_id, body)
        return await uow.commit(
            key, status_code=201, headers={"Location": f"/v1/api-keys/{key.id}"}
        )


@router.get("", response_model=Page[ApiKey])
async def api_keys_list(
    principal: Admin,
    request: Request,
    include_revoked: Annotated[bool, Query()] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ApiKey]:
    """List keys, oldest first. Secrets are never shown again."""
    data, next_cursor = await service.list_keys(
        reads(request), include_revoked=include_revoked, cursor=cursor, limit=limit
    )
    return Page[ApiKey](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@router.get("/{key_id}", response_model=ApiKey, responses=responses(404))
async def api_keys_get(key_id: KeyId, principal: Admin, request: Request) -> ApiKey:
    """Get one key's metadata."""
    return await service.get_key(reads(request), key_id)


@router.patch("/{key_id}", response_model=ApiKey, responses=responses(404))
async def api_keys_update(
    key_id: KeyId, body: ApiKeyUpdate, request: Request, uow: Writing
) -> Response:
    """Change a key's settings: fields left out stay; `rate_limit_per_minute: null` returns
    the key to the server's default. Other processes apply it within the key cache period."""
    async with uow:
        key = await service.update_key(uow.conn, key_id, body)
        response = await uow.commit(key)
        request.app.state.authenticator.forget(key_id)
        return response


@router.post("/{key_id}/revoke", response_model=ApiKey, responses=responses(404))
async def api_keys_revoke(key_id: KeyId, request: Request, uow: Writing) -> Response:
    """Revoke a key for good. Revoking twice is harmless."""
    async with uow:
        key = await service.revoke_key(uow.conn, key_id)
        response = await uow.commit(key)
        request.app.state.authenticator.forget(key_id)
        return response


@router.post("/{key_id}/rotate", response_model=ApiKeyWithSecret, responses=responses(404))
async def api_keys_rotate(
    key_id: KeyId, request: Request, uow: Writing, body: ApiKeyRotate | None = None
) -> Response:
    """Issue a new secret for a key (same id, name and scopes).

    The previous secret keeps working for `grace_period_seconds` (default 0).
    """
    grace = timedelta(seconds=(body or ApiKeyRotate()).grace_period_seconds)
    async with uow:
        key = await service.rotate_key(uow.conn, key_id, grace)
        response = await uow.commit(key)
        request.app.state.authenticator.forget(key_id)
        return response
