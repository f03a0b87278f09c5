"""One request, one transaction: the write path every mutating endpoint goes through.

A route takes a ``UnitOfWork``, calls its service with ``uow.conn`` and ends with
``await uow.commit(...)``, which stores the answer under the request's Idempotency-Key
(when one was sent) and commits *before* the response leaves. Anything raised before that
rolls back, and the key is freed for a retry.
"""

import re
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from pydantic import BaseModel
from starlette.responses import Response

from crm_api.core import idempotency
from crm_api.core.auth import Principal, authenticate
from crm_api.core.db import Connection
from crm_api.core.errors import ValidationFailed
from crm_api.core.scopes import Scope

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Makes a POST safe to retry: the same key with the same request replays the stored "
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
    def __init__(self, conn: Connection, principal: Principal, claim: idempotency.Claim | None):
        self.conn = conn
        self.principal = principal
        self._claim = claim
        self._transaction = conn.transaction()
        self.committed = False

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
        await self._transaction.commit()
        self.committed = True
        return response


def unit_of_work(*scopes: Scope) -> Any:
    """A ``UnitOfWork`` dependency for a write that needs ``scopes``."""

    async def open_unit(
        request: Request,
        principal: Annotated[Principal, Security(authenticate, scopes=[str(s) for s in scopes])],
        key: IdempotencyKey = None,
    ) -> AsyncIterator[UnitOfWork]:
        claim: idempotency.Claim | None = None
        async with request.app.state.db.connection() as conn:
            if key is not None and request.method == "POST":
                claim = await _claim(request, conn, principal, key)
            unit = UnitOfWork(conn, principal, claim)
            await unit._transaction.start()
            try:
                yield unit
            finally:
                if not unit.committed:
                    await unit._transaction.rollback()
                    if claim is not None:
                        await idempotency.release(conn, claim)

    return Annotated[UnitOfWork, Depends(open_unit, scope="function")]


async def _claim(
    request: Request, conn: Connection, principal: Principal, key: str
) -> idempotency.Claim:
    if not _KEY.match(key):
        raise ValidationFailed.for_field(
            "Idempotency-Key", "must be 1-255 printable ASCII characters", location="header"
        )
    print_ = idempotency.fingerprint(
        request.method, request.url.path, request.url.query, await request.body()
    )
    ttl = timedelta(hours=request.app.state.settings.idempotency_ttl_hours)
    outcome = await idempotency.claim(conn, principal.key_id, key, print_, ttl)
    if isinstance(outcome, idempotency.StoredResponse):
        raise IdempotentReplay(outcome)
    return outcome


async def open_connection(request: Request) -> AsyncIterator[Connection]:
    async with request.app.state.db.connection() as conn:
        yield conn


Conn = Annotated[Connection, Depends(open_connection, scope="function")]
