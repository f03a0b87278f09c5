"""Who is calling: API keys from ``Authorization: Bearer`` or ``X-API-Key``, and scope checks.

Verified keys are cached per process for ``api_key_cache_seconds`` so the hot path does
not pay a database round trip per request; a revocation made through this process takes
effect at once, one made elsewhere within that window.
"""

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from crm_api.core.db import Connection, Database
from crm_api.core.errors import Forbidden, Unauthorized
from crm_api.core.scopes import Scope


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    valid_until: datetime | None = None  # when the secret it was verified by stops working

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def sees_pii(self) -> bool:
        return Scope.PII_READ in self.scopes


def hash_secret(secret: str) -> bytes:
    # Keys carry 256 random bits, so a fast hash is as safe as a slow one here.
    return hashlib.sha256(secret.encode()).digest()


Lookup = Callable[[Connection, bytes], Awaitable[Principal | None]]


class Authenticator:
    def __init__(self, db: Database, lookup: Lookup, cache_seconds: float) -> None:
        self._db = db
        self._lookup = lookup
        self._ttl = cache_seconds
        self._cache: dict[bytes, tuple[Principal, float]] = {}

    async def verify(self, secret: str) -> Principal | None:
        digest = hash_secret(secret)
        hit = self._cache.get(digest)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self._db.connection() as conn:
            principal = await self._lookup(conn, digest)
        if principal is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) > 10_000:
            self._cache.clear()
        ttl = self._ttl
        if principal.valid_until is not None:  # never trust a key past its expiry
            ttl = min(ttl, (principal.valid_until - datetime.now(UTC)).total_seconds())
        self._cache[digest] = (principal, now + ttl)
        return principal

    def forget(self, key_id: uuid.UUID) -> None:
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="`Authorization: Bearer <api key>`"
)
_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="`X-API-Key: <api key>`"
)


async def authenticate(
    request: Request,
    required: SecurityScopes,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    secret = bearer.credentials if bearer is not None else header
    if not secret:
        raise Unauthorized(
            "An API key is required: send `Authorization: Bearer <key>` or `X-API-Key`."
        )
    principal = await request.app.state.authenticator.verify(secret)
    if principal is None:
        raise Unauthorized("The API key is unknown, revoked or expired.")
    missing = [s for s in required.scopes if not principal.can(s)]
    if missing:
        raise Forbidden(f"This API key lacks the scope {', '.join(missing)}.")
    return principal


def requires(*scopes: Scope) -> Any:
    """An ``Annotated`` principal that must hold ``scopes``; documented in the OpenAPI spec."""
    return Annotated[Principal, Security(authenticate, scopes=[str(s) for s in scopes])]


Admin = requires(Scope.ADMIN)
