"""Per-request GraphQL context: the caller, the database, the settings and the DataLoaders."""

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from strawberry.dataloader import DataLoader
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from crm_api.config import Settings
from crm_api.core.auth import Authenticated, Principal
from crm_api.core.db import Database


@dataclass
class Context(BaseContext):
    principal: Principal
    db: Database
    settings: Settings
    loaders: dict[Hashable, DataLoader[Any, Any]] = field(default_factory=dict)

    def loader(
        self, key: Hashable, load: Callable[[list[Any]], Awaitable[Sequence[Any]]]
    ) -> DataLoader[Any, Any]:
        """The request's DataLoader under ``key``, made on first use.

        Loaders live as long as the request, so batches and caches never mix callers.
        """
        if key not in self.loaders:
            self.loaders[key] = DataLoader(load_fn=load)
        return self.loaders[key]


Info = StrawberryInfo[Context, None]


async def get_context(request: Request, principal: Authenticated) -> Context:
    return Context(
        principal=principal, db=request.app.state.db, settings=request.app.state.settings
    )
