"""Scope checks on fields: the same scopes as REST, declared per field, visible in the SDL."""

from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location
from strawberry.types import Info

from crm_api.core.errors import Forbidden
from crm_api.core.scopes import Scope


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION], description="The API key scope this field needs."
)
class RequiresScope:
    scope: str


class HasScope(BasePermission):
    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._schema_directive = RequiresScope(scope=str(scope))

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return info.context.principal.can(self.scope)

    def on_unauthorized(self) -> None:
        raise Forbidden(f"This API key lacks the scope {self.scope}.")


def needs(scope: Scope) -> list[FieldExtension]:
    """Field extensions refusing callers whose key lacks ``scope`` (write implies read)."""
    return [PermissionExtension(permissions=[HasScope(scope)])]
