"""Keyset pagination: one cursor format and one page shape for every list, REST and GraphQL.

A cursor is the sort key of the last row a client saw, plus the ordering it belongs to,
base64url-encoded. Seeking past a key (rather than skipping N rows) keeps pages stable
while rows are inserted concurrently, and costs the same on page 1 and page 1,000.
"""

import base64
import binascii
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel, Field

from crm_api.core.errors import ValidationFailed
from crm_api.core.types import fits_bigint

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}."),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="Opaque: the previous page's `next_cursor`. Omit for the first page.",
    ),
]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
    has_more: bool


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("naive timestamp")
    return parsed


def _bigint(value: int) -> int:
    if not isinstance(value, int) or not fits_bigint(value):
        raise ValueError("not a 64-bit integer")
    return value


def _finite(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return float(value)


_DECODERS: dict[type, Callable[[Any], Any]] = {
    datetime: _aware,
    uuid.UUID: uuid.UUID,
    int: _bigint,
    float: _finite,
}


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


class Keyset:
    """An ordering over unique key columns (the last one a tiebreaker such as ``id``)."""

    def __init__(self, name: str, columns: Sequence[sa.ColumnElement[Any]], *, descending: bool):
        self.name = name
        self.columns = list(columns)
        self.descending = descending
        self._decoders = [_DECODERS[c.type.python_type] for c in self.columns]

    def encode(self, key: Sequence[Any]) -> str:
        raw = orjson.dumps({"o": self.name, "k": [_encode_value(v) for v in key]})
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> list[Any]:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload = orjson.loads(raw)
            values = payload["k"]
            if payload["o"] != self.name or len(values) != len(self._decoders):
                raise ValueError("cursor belongs to another ordering")
            return [decode(v) for decode, v in zip(self._decoders, values, strict=True)]
        except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
            raise ValidationFailed.for_field(
                "cursor",
                "is not a cursor of this list and ordering; pass `next_cursor` back unchanged",
                location="query",
            ) from None

    def apply(self, statement: sa.Select[Any], cursor: str | None, limit: int) -> sa.Select[Any]:
        """Order, seek past the cursor, and fetch one extra row to learn if more follow."""
        if cursor:
            after = sa.tuple_(*self.columns)
            key = sa.tuple_(
                *[
                    sa.literal(v, c.type)
                    for v, c in zip(self.decode(cursor), self.columns, strict=True)
                ]
            )
            statement = statement.where(after < key if self.descending else after > key)
        return statement.order_by(*self._ordered(self.columns)).limit(limit + 1)

    def _ordered(self, columns: Sequence[sa.ColumnElement[Any]]) -> list[sa.ColumnElement[Any]]:
        return [c.desc() if self.descending else c.asc() for c in columns]

    def first_pages(
        self, statement: sa.Select[Any], *owners: sa.ColumnElement[Any]
    ) -> sa.Select[Any]:
        """The first page of many owners' lists in one statement (``limit + 1`` rows each,
        as ``apply`` fetches; ``cut_pages`` splits them).

        ``statement`` selects the rows of any owner, the owner columns and the ordering's
        columns among them. The owners are given as one array parameter per owner column,
        named after it (``customer_id`` -> ``customer_ids``), and the rows per owner as
        ``rows``. A LATERAL join rather than a window over all the owners' rows: an index on
        (owner, ordering) then reads the pages' rows only, however long the lists are.
        """
        each = (
            sa.func.unnest(*(sa.bindparam(f"{c.name}s", type_=sa.ARRAY(c.type)) for c in owners))
            .table_valued(*(c.name for c in owners))
            .render_derived(name="owner")
        )
        page = (
            statement.where(*(c == each.c[c.name] for c in owners))
            .order_by(*self._ordered(self.columns))
            .limit(sa.bindparam("rows", type_=sa.Integer))
            .lateral("page")
        )
        return (
            sa.select(page)
            .select_from(each)
            .join(page, sa.true())
            .order_by(
                *(page.c[c.name] for c in owners),
                *self._ordered([page.c[c.name] for c in self.columns]),
            )
        )

    def cut(
        self, rows: Sequence[Any], limit: int, key: Callable[[Any], Sequence[Any]]
    ) -> tuple[Sequence[Any], str | None]:
        """Split the ``limit + 1`` rows fetched by ``apply`` into a page and the next cursor."""
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], self.encode(key(rows[limit - 1]))

    def cut_pages(
        self,
        rows: Sequence[Any],
        limit: int,
        key: Callable[[Any], Sequence[Any]],
        owner: Callable[[Any], Hashable],
    ) -> dict[Hashable, tuple[Sequence[Any], str | None]]:
        """``cut`` for each owner of the rows ``first_pages`` fetched; owners without rows
        are left out."""
        grouped: dict[Hashable, list[Any]] = defaultdict(list)
        for row in rows:
            grouped[owner(row)].append(row)
        return {o: self.cut(found, limit, key) for o, found in grouped.items()}
