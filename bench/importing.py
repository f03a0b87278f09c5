"""Bulk import: NDJSON through ``POST /v1/customers/import`` versus ``COPY`` of the same rows.

Both start from an empty customers table (and events outbox) with every index in place,
after a CHECKPOINT. The API import is what a partner integration does: sequential requests
of ``chunk`` lines each, validated, upserted (matched by external_id / email) and written
with one outbox event per customer, one transaction per request. COPY is PostgreSQL's
fastest ingest path for already-prepared rows: no validation, no matching, no events.
"""

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import httpx

from bench import data, database


class ImportFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class ImportResult:
    method: str
    rows: int
    seconds: float
    rows_per_s: float
    requests: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_s),
        }


async def reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await database.empty_customers(conn)
        await database.checkpoint(conn)
    finally:
        await conn.close()


async def copy(url: str, records: Sequence[tuple[Any, ...]]) -> ImportResult:
    """COPY the rows in (binary, one statement), timed; the table is left empty again."""
    await reset(url)
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "customers", records=records, columns=list(data.COPY_COLUMNS)
        )
        seconds = time.perf_counter() - started
        stored = await conn.fetchval("SELECT count(*) FROM customers")
        if stored != len(records):
            raise ImportFailed(f"COPY stored {stored} of {len(records)} rows")
    finally:
        await conn.close()
    await reset(url)
    return ImportResult("COPY (binary, asyncpg)", len(records), seconds, len(records) / seconds)


def through_api(base_url: str, key: str, lines: Sequence[bytes], chunk: int) -> ImportResult:
    """POST the lines as NDJSON, ``chunk`` lines per request, one request after another."""
    bodies = list(data.chunks(lines, chunk))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    created = 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=600) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post("/v1/customers/import", content=body)
            if response.status_code != 200:
                raise ImportFailed(f"import answered {response.status_code}: {response.text[:500]}")
            report = response.json()
            if report["failed"]:
                raise ImportFailed(f"import rejected lines: {report['errors'][:5]}")
            created += report["created"]
        seconds = time.perf_counter() - started
    if created != len(lines):
        raise ImportFailed(f"import created {created} of {len(lines)} customers")
    return ImportResult(
        f"POST /v1/customers/import ({len(bodies)} x {chunk:,} lines)",
        created,
        seconds,
        created / seconds,
        requests=len(bodies),
    )
