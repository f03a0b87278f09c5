"""Per-request GraphQL context: the caller, the database, and DataLoaders made per request."""

from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from strawberry.fastapi import BaseContext

from crm_api.core.auth import Principal, authenticate
from crm_api.core.db import Database


@dataclass
class Context(BaseContext):
    principal: Principal
    db: Database
    loaders: dict[str, Any] = field(default_factory=dict)


async def get_context(request: Request, principal: Principal = Depends(authenticate)) -> Context:
    return Context(principal=principal, db=request.app.state.db)
