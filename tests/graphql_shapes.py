"""A GraphQL type's own data, selected whole and compared with REST's JSON, led by the schema.

``selection`` selects every stored field of a type (not the related objects its resolvers
fetch), so a comparison with REST misses nothing the type carries; ``as_rest`` writes an
answer in REST's shape: snake_case names, enums by value, decimals as numbers (GraphQL's
Decimal is a string), timestamps as instants.
"""

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from strawberry.types.base import StrawberryList, StrawberryOptional
from strawberry.types.enum import StrawberryEnumDefinition

from crm_api.graphql.schema import schema


def _stored(type_name: str) -> list[tuple[str, Any]]:
    """(GraphQL name, type) of the fields ``type_name`` carries rather than resolves."""
    definition = schema.get_type_by_name(type_name)
    assert definition is not None, type_name
    name_of = schema.config.name_converter.get_graphql_name
    return [(name_of(f), f.type) for f in definition.fields if f.base_resolver is None]


def _named(type_: Any) -> Any:
    while isinstance(type_, StrawberryOptional | StrawberryList):
        type_ = type_.of_type
    return type_


def _object_name(type_: Any) -> str | None:
    definition = getattr(_named(type_), "__strawberry_definition__", None)
    return None if definition is None else definition.name


def selection(type_name: str) -> str:
    """Every stored field of ``type_name``, nested objects' included."""
    parts = []
    for name, type_ in _stored(type_name):
        inner = _object_name(type_)
        parts.append(name if inner is None else f"{name} {{ {selection(inner)} }}")
    return " ".join(parts)


def as_rest(value: Any, type_name: str) -> Any:
    """An answer selected with ``selection(type_name)`` as REST writes the same object."""
    return instants(_as_rest(value, schema.get_type_by_name(type_name).origin))


def _as_rest(value: Any, type_: Any) -> Any:
    if value is None:
        return None
    if isinstance(type_, StrawberryOptional):
        return _as_rest(value, type_.of_type)
    if isinstance(type_, StrawberryList):
        return [_as_rest(v, type_.of_type) for v in value]
    if isinstance(type_, StrawberryEnumDefinition):
        return next(v.value for v in type_.values if v.name == value)
    if type_ is Decimal:
        return float(value)
    definition = getattr(type_, "__strawberry_definition__", None)
    if definition is None or not isinstance(value, dict):
        return value
    name_of = schema.config.name_converter.get_graphql_name
    return {
        f.python_name: _as_rest(value[name_of(f)], f.type)
        for f in definition.fields
        if name_of(f) in value
    }


def instants(value: Any) -> Any:
    """Timestamps as instants: REST writes `...Z`, GraphQL `...+00:00`; both are RFC 3339."""
    if isinstance(value, dict):
        return {k: instants(v) for k, v in value.items()}
    if isinstance(value, list):
        return [instants(v) for v in value]
    if isinstance(value, str) and re.match(r"^\d{4}-\d\d-\d\dT", value):
        return datetime.fromisoformat(value)
    return value
