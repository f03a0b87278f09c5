"""Between GraphQL and the service layer: inputs to the REST pydantic models, models to types."""

import dataclasses
import uuid
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.utils.str_converters import to_camel_case

from crm_api.core.errors import ValidationFailed, field_errors

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def graphql_path(field: str) -> str:
    """A dotted field path (``address.postal_code``) in GraphQL's names (``address.postalCode``)."""
    return ".".join(to_camel_case(part) for part in field.split("."))


def plain(value: Any) -> Any:
    """A strawberry input as the JSON-like data REST would receive.

    Fields left out are omitted (not None), so merge patches can tell "keep" from "clear".
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(v)
            for f in dataclasses.fields(value)
            if (v := getattr(value, f.name)) is not strawberry.UNSET
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def validated(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``, validated exactly as REST validates it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(_in_body(e) for e in exc.errors(include_url=False))
        raise ValidationFailed(
            f"The input is invalid: {len(errors)} field error(s).", errors=errors
        ) from None


def _in_body(error: Any) -> Any:
    # Located like REST body fields; a rule over the whole input (no loc) names "input".
    return {**error, "loc": ("body", *(error["loc"] or ("input",)))}


def parse_id(value: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed.for_field(field, "is not a UUID") from None


def from_model(cls: type[T], model: BaseModel, **overrides: Any) -> T:
    """An instance of the strawberry type ``cls`` filled from ``model``'s same-named fields."""
    values = {}
    # Fields with resolvers (not init arguments) compute their own values.
    for f in (f for f in dataclasses.fields(cls) if f.init):  # type: ignore[arg-type]
        value = overrides[f.name] if f.name in overrides else getattr(model, f.name)
        values[f.name] = str(value) if isinstance(value, uuid.UUID) else value
    return cls(**values)


def expected_versions(if_match_version: int | None) -> frozenset[int] | None:
    """GraphQL's ``ifMatchVersion`` as the versions REST's ``If-Match`` would accept."""
    return None if if_match_version is None else frozenset({if_match_version})
