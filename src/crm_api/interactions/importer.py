"""Bulk import of interactions from NDJSON: insert-only, set-based, safe to re-run.

Lines with an `external_id` already recorded for their customer are skipped and counted
as unchanged, so replaying a file after a failure records nothing twice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert

from crm_api.core import db, ndjson
from crm_api.core.auth import Principal
from crm_api.core.db import Compiled, Connection
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.customers import service as customers
from crm_api.events import service as events
from crm_api.interactions import service
from crm_api.interactions.models import interaction_items, interactions
from crm_api.interactions.schemas import InteractionCreate

BATCH_SIZE = 2000
_COLUMNS = (*service.INSERTED_COLUMNS, *service.ITEM_FIGURES)
_ITEM_COLUMNS = ("customer_id", "interaction_id", "line", *service.ITEM_COLUMNS)


def _inserting() -> Compiled:
    """Insert the JSON array ``rows``, skipping external ids recorded already; answers
    the rows inserted."""
    rows = db.recordset(interactions, "rows", _COLUMNS)
    values = (
        sa.func.coalesce(rows.c[c], sa.func.now()) if c == "occurred_at" else rows.c[c]
        for c in _COLUMNS
    )
    return Compiled.of(
        insert(interactions)
        .from_select(list(_COLUMNS), sa.select(*values))
        .on_conflict_do_nothing(
            index_elements=[interactions.c.customer_id, interactions.c.external_id],
            index_where=interactions.c.external_id.is_not(None),
        )
        .returning(interactions)
    )


_INSERT = _inserting()
_item_rows = db.recordset(interaction_items, "rows", _ITEM_COLUMNS)
_INSERT_ITEMS = Compiled.of(
    sa.insert(interaction_items).from_select(
        list(_ITEM_COLUMNS), sa.select(*(_item_rows.c[c] for c in _ITEM_COLUMNS))
    )
)


async def import_interactions(
    conn: Connection, principal: Principal, body: bytes, *, negative_below: float
) -> ndjson.ImportReport:
    """Import NDJSON lines; a feedback scoring below ``negative_below`` also emits
    ``feedback.negative``, as when recorded one at a time."""
    report = ndjson.ImportReport()
    lines: list[tuple[int, InteractionCreate]] = []
    for number, raw in ndjson.lines(body):
        try:
            lines.append((number, InteractionCreate.model_validate_json(raw)))
        except ValidationError as exc:
            report.fail_validation(number, exc)
    for start in range(0, len(lines), BATCH_SIZE):
        await _apply(conn, lines[start : start + BATCH_SIZE], report, negative_below)
    return report


async def _apply(
    conn: Connection,
    lines: Sequence[tuple[int, InteractionCreate]],
    report: ndjson.ImportReport,
    negative_below: float,
) -> None:
    live = await customers.live_ids(conn, list({data.customer_id for _, data in lines}))
    purchases = await service.refunded_purchases(conn, [data for _, data in lines])
    rows, items = [], {}
    for number, data in lines:
        if data.customer_id not in live:
            report.fail(number, ("customer_id", f"no customer with id {data.customer_id}"))
            continue
        if data.refund_of is not None and (
            problem := service.refund_problem(data, purchases.get(data.refund_of))
        ):
            report.fail(number, ("refund_of", problem))
            continue
        row = service.row_values(data, new_id())
        rows.append(service.stored_json(row))
        items[row["id"]] = [item.model_dump() for item in data.items]
    if not rows:
        return
    created = await _INSERT.fetch(conn, rows=rows)
    item_rows = [
        {"customer_id": r["customer_id"], "interaction_id": r["id"], "line": n, **item}
        for r in created
        for n, item in enumerate(items[r["id"]], start=1)
    ]
    if item_rows:
        await _INSERT_ITEMS.execute(conn, rows=item_rows)
    await events.record_many(
        conn,
        [
            (event_type, r["customer_id"], dumps(service.resource(r, items[r["id"]])))
            for r in created
            for event_type in service.events_of(r, negative_below)
        ],
    )
    report.created += len(created)
    report.unchanged += len(rows) - len(created)
