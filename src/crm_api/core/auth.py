"""Who is calling: API keys from ``Authorization: Bearer`` or ``X-API-Key``, and scope checks.

Verified keys are cached per process for ``api_key_cache_seconds`` so the hot path does
not pay a database round trip per request; a revocation made through this process takes
effect at once, one made elsewhere within that window.
"""

import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from crm_api.core import ratelimit
from crm_api.core.db import Connection, Database
from crm_api.core.errors import Forbidden, Unauthorized
from crm_api.core.scopes import Scope
from crm_api.core.single_flight import SingleFlight


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    valid_until: datetime | None = None  # when the secret it was verified by stops working
    rate_limit: int | None = None  # requests per minute in force for the key; None: unlimited

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
        self._lookups: SingleFlight[bytes, Principal | None] = SingleFlight()

    async def verify(self, secret: str) -> Principal | None:
        digest = hash_secret(secret)
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        # When an entry expires under load, one lookup serves every waiting request.
        return await self._lookups.run(digest, lambda: self._refresh(digest))

    async def _refresh(self, digest: bytes) -> Principal | None:
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
        self._cache[digest] = (principal, time.monotonic() + ttl)
        return principal

    async def authenticate(self, secret: str | None) -> Principal:
        """The caller presenting ``secret``; unauthorized without a valid key."""
        if not secret:
            raise Unauthorized(
                "An API key is required: send `Authorization: Bearer <key>` or `X-API-Key`."
            )
        principal = await self.verify(secret)
        if principal is None:
            raise Unauthorized("The API key is unknown, revoked or expired.")
        return principal

    def forget(self, key_id: uuid.UUID) -> None:
        for digest, (principal, _) in list(self._cache.items()):
            if principal.key_id == key_id:
                del self._cache[digest]


class ApiKeyAuth(SecurityBase):
    """The auth dependency of a route: one call reads the key and checks the scopes.

    It is its own OpenAPI security scheme (`bearer`, with the scopes as the requirement);
    the equivalent `X-API-Key` header is added to the document by ``core.openapi``.
    One plain dependency instead of a chain of them keeps the hot path short.
    """

    def __init__(self, scopes: tuple[str, ...]) -> None:
        self.model = HTTPBearerModel(description="`Authorization: Bearer <api key>`")
        self.scheme_name = BEARER_SCHEME
        self.scopes = scopes

    async def __call__(self, request: Request) -> Principal:
        principal = await request.app.state.authenticator.authenticate(
            presented_secret(request.headers)
        )
        # Before the scope check: a refused request costs a token as well.
        await ratelimit.enforce(
            request.app.state, request.scope, principal.key_id, principal.rate_limit
        )
        missing = [s for s in self.scopes if not principal.can(s)]
        if missing:
            raise Forbidden(f"This API key lacks the scope {', '.join(missing)}.")
        return principal


BEARER_SCHEME = "bearer"
API_KEY_HEADER = "X-API-Key"


def presented_secret(headers: Mapping[str, str]) -> str | None:
    """The key in ``headers`` (case-insensitive, or with lower-case names)."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return headers.get(API_KEY_HEADER.lower())


def requires(*scopes: Scope) -> Any:
    """An ``Annotated`` principal that must hold ``scopes``; documented in the OpenAPI spec."""
    names = tuple(str(s) for s in scopes)
    return Annotated[Principal, Security(ApiKeyAuth(names), scopes=list(names))]


Admin = requires(Scope.ADMIN)
Authenticated = requires()
