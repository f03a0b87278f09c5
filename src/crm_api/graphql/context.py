"""Per-request GraphQL context: the caller, the database, the settings and the DataLoaders.

A websocket's context lives as long as the connection: its caller is known once the
`connection_init` message brought the key (browsers cannot set a websocket's headers).
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graphql import GraphQLError
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from crm_api.config import Settings
from crm_api.core import ratelimit
from crm_api.core.auth import Authenticator, Principal, presented_secret
from crm_api.core.db import Connection, Database
from crm_api.core.errors import Unauthorized
from crm_api.events.live import LiveEvents

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Context(BaseContext):
    caller: Principal | Unauthorized  # who calls, or why nobody is signed in
    db: Database
    settings: Settings
    authenticator: Authenticator
    live_events: LiveEvents
    secret: str | None = None
    loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)

    @property
    def principal(self) -> Principal:
        """The caller; resolving a field without a valid key is unauthorized."""
        if isinstance(self.caller, Unauthorized):
            raise Unauthorized(self.caller.detail)
        return self.caller

    async def sign_in(self, secret: str | None) -> Principal:
        """Authenticate with ``secret``; unauthorized (and so for every later field) without
        a valid key."""
        self.secret = secret
        try:
            self.caller = await self.authenticator.authenticate(secret)
        except Unauthorized as refused:
            self.caller = refused
            raise
        return self.caller

    async def sign_in_again(self) -> Principal:
        """The caller verified anew, for operations outliving a request (subscriptions): a
        key revoked or expired meanwhile is refused from then on."""
        return await self.sign_in(self.secret)

    async def sign_in_socket(self) -> None:
        """Authenticate a websocket at `connection_init`: the key in its payload, under a
        header's name (`Authorization: Bearer <key>` or `X-API-Key`), else in the upgrade
        request's headers. Without a valid key the connection stays open and every field
        answers unauthorized, with the reason."""
        params = self.connection_params if isinstance(self.connection_params, dict) else {}
        given = {str(k).lower(): v for k, v in params.items() if isinstance(v, str)}
        assert self.request is not None
        with contextlib.suppress(Unauthorized):
            await self.sign_in(presented_secret(given) or presented_secret(self.request.headers))

    def loader(
        self, key: Hashable, load: Callable[[list[Any]], Awaitable[Sequence[Any]]]
    ) -> DataLoader[Any, Any]:
        """The request's DataLoader under ``key``, made on first use.

        Loaders live as long as the request, so batches and caches never mix callers.
        """
        if key not in self.loaders:
            self.loaders[key] = DataLoader(load_fn=load)
        return self.loaders[key]

    async def batched(
        self,
        key: Hashable,
        fetch: Callable[[Connection, list[K]], Awaitable[Mapping[K, V]]],
        item: K,
        default: V,
    ) -> V:
        """``item``'s value in ``fetch(conn, items)``, which a service answers with one
        statement for all the items resolvers ask ``key`` for together; ``default`` for
        those it leaves out. A page of customers' nested fields so costs a fixed number of
        statements, whatever its size."""

        async def load(items: list[K]) -> list[V]:
            async with self.db.connection() as conn:
                found = await fetch(conn, items)
            return [found.get(i, default) for i in items]

        return await self.loader(key, load).load(item)


Info = StrawberryInfo[Context, None]


async def get_context(connection: HTTPConnection) -> Context:
    state = connection.app.state
    context = Context(
        caller=Unauthorized("Send the API key in the connection_init payload."),
        db=state.db,
        settings=state.settings,
        authenticator=state.authenticator,
        live_events=state.live_events,
    )
    if connection.scope["type"] == "http":
        caller = await context.sign_in(presented_secret(connection.headers))
        await ratelimit.enforce(state, connection.scope, caller.key_id, caller.rate_limit)
    return context


class SocketRateLimit(SchemaExtension):
    """Counts each operation started over a websocket against its key's bucket, as
    ``get_context`` counts each HTTP request: a socket's operations arrive without a
    request of their own. Past the limit the operation ends at once with a `rate-limited`
    error, before anything runs."""

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        request = getattr(context, "request", None)
        if isinstance(request, WebSocket) and isinstance(context.caller, Principal):
            caller = context.caller
            try:
                await ratelimit.enforce(
                    request.app.state, request.scope, caller.key_id, caller.rate_limit
                )
            except ratelimit.RateLimited as refused:
                self.execution_context.pre_execution_errors = [
                    GraphQLError(refused.detail, original_error=refused)
                ]
        yield
