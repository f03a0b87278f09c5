"""GraphQL transport of customers."""

import uuid

import strawberry
from strawberry.types import Info

from crm_api.core.scopes import Scope
from crm_api.customers import service


@strawberry.type(name="Customer")
class CustomerType:
    id: strawberry.ID
    email: str | None


@strawberry.type
class CustomerQueries:
    @strawberry.field
    async def customer(self, info: Info, id: strawberry.ID) -> CustomerType | None:
        ctx = info.context
        if not ctx.principal.can(Scope.CUSTOMERS_READ):
            raise PermissionError("needs customers:read")
        async with ctx.db.connection() as conn:
            c = await service.get_customer(conn, ctx.principal, uuid.UUID(id))
        return CustomerType(id=strawberry.ID(str(c.id)), email=c.email)
