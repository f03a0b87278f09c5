"""Bulk import and export as NDJSON (one JSON document per line)."""

from collections.abc import Iterator

from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from crm_api.core.errors import UnsupportedMediaType, field_errors

NDJSON_MEDIA_TYPE = "application/x-ndjson"
MAX_REPORTED_ERRORS = 1000


class LineError(BaseModel):
    line: int = Field(description="1-based line number in the NDJSON body.")
    field: str | None = Field(
        description="Dotted path of the offending field, when one is to blame."
    )
    message: str


class ImportReport(BaseModel):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[LineError] = Field(
        default_factory=list, description=f"Per-line errors (the first {MAX_REPORTED_ERRORS})."
    )

    def fail(self, line: int, *errors: tuple[str | None, str]) -> None:
        """Count a rejected line and report its (field, message) errors."""
        self.failed += 1
        for field, message in errors:
            if len(self.errors) < MAX_REPORTED_ERRORS:
                self.errors.append(LineError(line=line, field=field, message=message))

    def fail_validation(self, line: int, error: ValidationError) -> None:
        self.fail(
            line,
            *(
                (None if e.field == "body" else e.field, e.message)
                for e in field_errors(error.errors(include_url=False))
            ),
        )


def lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines with their 1-based numbers."""
    for number, raw in enumerate(body.split(b"\n"), start=1):
        if raw.strip():
            yield number, raw


def count(body: bytes) -> int:
    """The number of the last line ``lines`` can yield."""
    return body.count(b"\n") + 1


IMPORT_REQUEST_BODY = {
    "required": True,
    "content": {
        NDJSON_MEDIA_TYPE: {
            "schema": {"type": "string", "description": "One JSON object per line."}
        }
    },
}


async def read_ndjson(request: Request) -> bytes:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in (NDJSON_MEDIA_TYPE, "application/jsonl"):
        raise UnsupportedMediaType(
            f"Send the lines as {NDJSON_MEDIA_TYPE}, not {media_type or 'no content type'}."
        )
    return await request.body()
