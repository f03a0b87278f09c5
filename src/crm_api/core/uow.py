"""One request, one transaction: the write path every mutating endpoint goes through.

A route takes a ``UnitOfWork`` (a plain dependency that checks the scope), opens it with
``async with uow:``, calls its service with ``uow.conn`` and ends with
``return await uow.commit(...)``, which stores the answer under the request's
Idempotency-Key (when one was sent) and commits *before* the response leaves. Anything
raised before that rolls back, and the key is freed for a retry. Opening the unit inside
the route rather than in a yield dependency saves ~100 us of framework work per write.

A route whose service can often do its work in one self-contained statement asks for a
``deferred`` unit: it takes no connection and opens no transaction until the route calls
``uow.begin`` (or at once, when an Idempotency-Key must commit with the change). A lone
statement is atomic by itself, and BEGIN and COMMIT were two of a simple write's three
round trips; holding no connection lets such statements share one (see coalescing.py).
"""

from collections.abc import Mapping
from contextlib import suppress
from datetime import timedelta
from typing import Annotated, Any

from asyncpg.transaction import Transaction
from fastapi import Depends, Header, Request
from pydantic import BaseModel
from starlette.responses import Response

from crm_api.core import idempotency
from crm_api.core.auth import Principal, requires
from crm_api.core.db import Connection, Queryable
from crm_api.core.errors import DATABASE_UNAVAILABLE
from crm_api.core.scopes import Scope

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Makes a write safe to retry: the same key with the same request replays the stored "
            "response for 24 h; with a different request it is a 422; while the first is still "
            "running, a 409. Keys are per API key; 1-255 printable ASCII characters."
        ),
    ),
]
# Headers worth replaying with a stored answer.
_REPLAYED_HEADERS = ("location", "etag", "content-type")


class IdempotentReplay(Exception):
    """Raised to answer a request with the response stored for its Idempotency-Key."""

    def __init__(self, stored: idempotency.StoredResponse) -> None:
        self.stored = stored


async def replay_stored(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    headers = dict(exc.stored.headers)
    headers["Idempotent-Replayed"] = "true"
    return Response(exc.stored.body, status_code=exc.stored.status_code, headers=headers)


class UnitOfWork:
    conn: Connection  # from ``begin`` on

    def __init__(
        self, request: Request, principal: Principal, key: str | None, *, deferred: bool
    ) -> None:
        self.principal = principal
        self._request = request
        self._key = key
        self._deferred = deferred
        self._claim: idempotency.Claim | None = None
        self._transaction: Transaction | None = None
        self.committed = False

    async def __aenter__(self) -> "UnitOfWork":
        self._pool = self._request.app.state.db.pool
        if self._key is not None or not self._deferred:
            await self.begin()
        return self

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    async def begin(self) -> Connection:
        """The unit's connection, its transaction opened (and its Idempotency-Key
        claimed) on the first call."""
        if self._transaction is None:
            conn = await self._pool.acquire()
            try:
                if self._key is not None:
                    self._claim = await _claim(self._request, conn, self.principal, self._key)
                transaction = conn.transaction()
                await transaction.start()
            except BaseException:
                await self._pool.release(conn)
                raise
            self.conn, self._transaction = conn, transaction
        return self.conn

    async def __aexit__(self, *exc_info: object) -> None:
        if self._transaction is None:
            return  # nothing taken
        try:
            if not self.committed:
                # When the database dropped the connection, the transaction went with it,
                # and the error that says so is already on its way to the client.
                with suppress(*DATABASE_UNAVAILABLE):
                    await self._transaction.rollback()
                    if self._claim is not None:
                        await idempotency.release(self.conn, self._claim)
        finally:
            await self._pool.release(self.conn)

    async def commit(
        self,
        body: BaseModel | bytes | None = None,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "application/json",
    ) -> Response:
        content = body.model_dump_json().encode() if isinstance(body, BaseModel) else (body or b"")
        response = Response(
            content or None, status_code=status_code, headers=headers, media_type=media_type
        )
        if self._claim is not None:
            kept = {
                k.decode(): v.decode()
                for k, v in response.raw_headers
                if k.decode() in _REPLAYED_HEADERS
            }
            await idempotency.complete(
                self.conn, self._claim, idempotency.StoredResponse(status_code, content, kept)
            )
        if self._transaction is not None:
            await self._transaction.commit()
        self.committed = True
        return response


def unit_of_work(*scopes: Scope, deferred: bool = False) -> Any:
    """A ``UnitOfWork`` dependency for a write that needs ``scopes``."""

    async def prepare(
        request: Request, principal: requires(*scopes), key: IdempotencyKey = None
    ) -> UnitOfWork:
        return UnitOfWork(request, principal, key, deferred=deferred)

    return Annotated[UnitOfWork, Depends(prepare)]


async def _claim(
    request: Request, conn: Connection, principal: Principal, key: str
) -> idempotency.Claim:
    print_ = idempotency.fingerprint(
        request.method, request.url.path, request.url.query, await request.body()
    )
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    outcome = await idempotency.claim(conn, principal.key_id, key, print_, ttl)
    if isinstance(outcome, idempotency.StoredResponse):
        raise IdempotentReplay(outcome)
    return outcome


def reads(request: Request) -> Queryable:
    """Where a read runs: the pool, each statement borrowing a connection for its duration.

    A plain call, not a dependency: every dependency FastAPI solves costs ~80 Python
    calls per request, a tenth of a cached GET.
    """
    return request.app.state.db.pool
