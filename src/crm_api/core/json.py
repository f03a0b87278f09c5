"""JSON encoding shared by responses, events and NDJSON streams."""

import uuid
from typing import Any

import orjson
from pydantic import BaseModel


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID subclass, which orjson does not recognise.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    # UTC as "Z", the same RFC 3339 form pydantic writes in responses.
    return orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)
