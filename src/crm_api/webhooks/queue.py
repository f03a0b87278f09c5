"""The delivery queue in PostgreSQL: fan events out, claim due deliveries, record outcomes.

Claims use ``FOR UPDATE SKIP LOCKED`` and lease a delivery for longer than an attempt
may take, so several workers share the queue and one that dies loses nothing: its
deliveries come due again and go out with the same ``webhook-id``.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from crm_api.core.db import Compiled, Connection, Queryable
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.core.pii import event_data
from crm_api.events.models import events as ev
from crm_api.events.schemas import EventType
from crm_api.events.service import SETTLED
from crm_api.webhooks import service
from crm_api.webhooks.models import webhook_attempts as a
from crm_api.webhooks.models import webhook_deliveries as d
from crm_api.webhooks.models import webhook_endpoints as ep
from crm_api.webhooks.models import webhook_fanout as fanout
from crm_api.webhooks.sender import Job, Outcome

FANOUT_BATCH = 1000

# -- fan-out: settled events after the cursor become deliveries to matching endpoints --

_LOCK_CURSOR = Compiled.of(
    sa.select(fanout.c.tx_id, fanout.c.seq)
    .where(fanout.c.id == 1)
    .with_for_update(skip_locked=True)
)
_batch = (
    sa.select(ev.c.id, ev.c.type, ev.c.tx_id, ev.c.seq, ev.c.occurred_at)
    .where(
        sa.tuple_(ev.c.tx_id, ev.c.seq)
        > sa.tuple_(
            sa.bindparam("tx_id", type_=sa.BigInteger), sa.bindparam("seq", type_=sa.BigInteger)
        ),
        SETTLED,
    )
    .order_by(ev.c.tx_id, ev.c.seq)
    .limit(FANOUT_BATCH)
    .cte("batch")
)
_fanned = (
    pg_insert(d)
    .from_select(
        ["endpoint_id", "event_id", "event_type"],
        sa.select(ep.c.id, _batch.c.id, _batch.c.type)
        .select_from(_batch.join(ep, sa.true()))
        .where(
            ep.c.enabled,
            _batch.c.occurred_at >= ep.c.created_at,
            _batch.c.type != EventType.WEBHOOK_TEST,
            service.matches(_batch.c.type),
        )
        .order_by(_batch.c.tx_id, _batch.c.seq, ep.c.id),
    )
    .on_conflict_do_nothing()
    .returning(d.c.id)
    .cte("fanned")
)
_last = (
    sa.select(_batch.c.tx_id, _batch.c.seq)
    .order_by(_batch.c.tx_id.desc(), _batch.c.seq.desc())
    .limit(1)
)
_unsettled = (
    sa.select(ev.c.id)
    .where(
        sa.tuple_(ev.c.tx_id, ev.c.seq)
        > sa.tuple_(
            sa.bindparam("tx_id", type_=sa.BigInteger), sa.bindparam("seq", type_=sa.BigInteger)
        ),
        sa.not_(SETTLED),
    )
    .exists()
)
_FAN_OUT = Compiled.of(
    sa.select(
        _unsettled.label("waiting"),
        sa.select(sa.func.count()).select_from(_batch).scalar_subquery().label("events"),
        sa.select(sa.func.count()).select_from(_fanned).scalar_subquery().label("deliveries"),
        _last.with_only_columns(_batch.c.tx_id).scalar_subquery().label("tx_id"),
        _last.with_only_columns(_batch.c.seq).scalar_subquery().label("seq"),
    )
)
_MOVE_CURSOR = Compiled.of(
    sa.update(fanout)
    .where(fanout.c.id == 1)
    .values(tx_id=sa.bindparam("tx_id"), seq=sa.bindparam("seq"))
)


@dataclass(frozen=True, slots=True)
class FanOut:
    events: int
    deliveries: int
    waiting: bool  # events committed, or not yet, behind a still-running transaction

    @property
    def more(self) -> bool:
        return self.events == FANOUT_BATCH


async def fan_out(conn: Connection) -> FanOut | None:
    """Turn the next batch of settled events into deliveries; None when another worker
    holds the cursor."""
    async with conn.transaction():
        position = await _LOCK_CURSOR.fetchrow(conn)
        if position is None:
            return None
        row = await _FAN_OUT.fetchrow(conn, tx_id=position["tx_id"], seq=position["seq"])
        assert row is not None
        if row["events"]:
            await _MOVE_CURSOR.execute(conn, tx_id=row["tx_id"], seq=row["seq"])
        return FanOut(row["events"], row["deliveries"], row["waiting"])


# -- claims -------------------------------------------------------------------------

_due = (
    sa.select(d.c.id)
    .where(d.c.status.in_(["pending", "sending"]), d.c.next_attempt_at <= sa.func.now())
    .order_by(d.c.next_attempt_at, d.c.seq)
    .limit(sa.bindparam("limit", type_=sa.Integer, required=False))
    .with_for_update(skip_locked=True)
    .cte("due")
)
_signing_previous = sa.case(
    (ep.c.previous_secret_expires_at > sa.func.now(), ep.c.previous_secret), else_=None
)
_CLAIM = Compiled.of(
    sa.update(d)
    .where(d.c.id == _due.c.id, ev.c.id == d.c.event_id, ep.c.id == d.c.endpoint_id, ep.c.enabled)
    .values(
        status="sending",
        attempts=d.c.attempts + 1,
        next_attempt_at=sa.func.now() + sa.bindparam("lease", type_=sa.Interval, required=False),
    )
    .returning(
        d.c.id,
        d.c.endpoint_id,
        d.c.attempts,
        ev.c.type,
        ev.c.occurred_at,
        ev.c.data,
        ep.c.url,
        ep.c.secret,
        _signing_previous.label("previous_secret"),
        ep.c.receives_pii,
    )
)


async def claim(conn: Queryable, limit: int, lease: timedelta) -> list[Job]:
    """Lease up to ``limit`` due deliveries, oldest due first, with what sending needs."""
    rows = await _CLAIM.fetch(conn, limit=limit, lease=lease)
    return [
        Job(
            delivery_id=r["id"],
            endpoint_id=r["endpoint_id"],
            attempt=r["attempts"],
            url=r["url"],
            secrets=[s for s in (r["secret"], r["previous_secret"]) if s],
            body=body(r["type"], r["occurred_at"], r["data"], receives_pii=r["receives_pii"]),
        )
        for r in rows
    ]


def body(type_: str, occurred_at: datetime, data: dict[str, Any], *, receives_pii: bool) -> bytes:
    visible = event_data(type_, data, sees_pii=receives_pii)
    return dumps({"type": type_, "timestamp": occurred_at, "data": visible})


# -- outcomes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule: Sequence[float]  # delay before attempt 1, 2, ...
    jitter: float
    disable_after: int

    def next_delay(self, outcome: Outcome) -> float | None:
        """Seconds until the next attempt, or None when this delivery is over."""
        if outcome.succeeded or outcome.gone or outcome.job.attempt >= len(self.schedule):
            return None
        if outcome.retry_after is not None:
            return outcome.retry_after
        delay = self.schedule[outcome.job.attempt]
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)


def _unnest(name: str, type_: sa.types.TypeEngine[Any]) -> Any:
    return sa.func.unnest(sa.bindparam(name, type_=sa.ARRAY(type_)))


_Stamp = sa.DateTime(timezone=True)
_tried = sa.select(
    _unnest("ids", sa.Uuid()).label("id"),
    _unnest("delivery_ids", sa.Uuid()).label("delivery_id"),
    _unnest("attempted_ats", _Stamp).label("attempted_at"),
    _unnest("status_codes", sa.Integer()).label("status_code"),
    _unnest("durations", sa.Integer()).label("duration_ms"),
    _unnest("bodies", sa.Text()).label("response_body"),
    _unnest("errors", sa.Text()).label("error"),
    _unnest("statuses", sa.Text()).label("status"),
    _unnest("next_ats", _Stamp).label("next_at"),
    _unnest("last_errors", sa.Text()).label("last_error"),
).cte("tried")
_updated = (
    sa.update(d)
    .where(d.c.id == _tried.c.delivery_id, ep.c.id == d.c.endpoint_id)
    .values(
        # An endpoint disabled while this attempt ran gets no further attempts.
        status=sa.case(
            (sa.and_(_tried.c.status == "pending", sa.not_(ep.c.enabled)), "failed"),
            else_=_tried.c.status,
        ),
        next_attempt_at=sa.func.coalesce(_tried.c.next_at, d.c.next_attempt_at),
        last_status_code=_tried.c.status_code,
        last_error=_tried.c.last_error,
        delivered_at=sa.case((_tried.c.status == "succeeded", _tried.c.attempted_at)),
    )
    .returning(d.c.id)
    .cte("updated")
)
# A delivery whose endpoint was deleted meanwhile is gone: its attempt is dropped too.
_RECORD = Compiled.of(
    sa.insert(a).from_select(
        [
            "id",
            "delivery_id",
            "attempted_at",
            "status_code",
            "duration_ms",
            "response_body",
            "error",
        ],
        sa.select(
            _tried.c.id,
            _tried.c.delivery_id,
            _tried.c.attempted_at,
            _tried.c.status_code,
            _tried.c.duration_ms,
            _tried.c.response_body,
            _tried.c.error,
        ).join_from(_tried, _updated, _updated.c.id == _tried.c.delivery_id),
    )
)
_failures = sa.select(
    _unnest("endpoint_ids", sa.Uuid()).label("id"),
    _unnest("resets", sa.Boolean()).label("reset"),
    _unnest("added", sa.Integer()).label("added"),
).subquery("f")
_COUNT_FAILURES = Compiled.of(
    sa.update(ep)
    .where(ep.c.id == _failures.c.id)
    .values(
        consecutive_failures=sa.case(
            (_failures.c.reset, _failures.c.added),
            else_=ep.c.consecutive_failures + _failures.c.added,
        )
    )
    .returning(ep.c.id, ep.c.consecutive_failures, ep.c.enabled)
)


async def record(conn: Connection, outcomes: Sequence[Outcome], policy: RetryPolicy) -> None:
    """Store a batch of attempts and all that follows from them, in one transaction:
    each delivery's state, each endpoint's run of failures, and endpoints disabled."""
    if not outcomes:
        return
    statuses, next_ats = [], []
    for o in outcomes:
        delay = policy.next_delay(o)
        statuses.append(
            "succeeded" if o.succeeded else "pending" if delay is not None else "failed"
        )
        next_ats.append(None if delay is None else o.attempted_at + timedelta(seconds=delay))
    async with conn.transaction():
        await _disable_failing(conn, outcomes, policy.disable_after)
        await _RECORD.execute(
            conn,
            ids=[new_id() for _ in outcomes],
            delivery_ids=[o.job.delivery_id for o in outcomes],
            attempted_ats=[o.attempted_at for o in outcomes],
            status_codes=[o.status_code for o in outcomes],
            durations=[o.duration_ms for o in outcomes],
            bodies=[o.response_body for o in outcomes],
            errors=[o.error for o in outcomes],
            statuses=statuses,
            next_ats=next_ats,
            last_errors=[_summary(o) for o in outcomes],
        )


def _summary(outcome: Outcome) -> str | None:
    if outcome.succeeded:
        return None
    return outcome.error or f"the receiver answered HTTP {outcome.status_code}"


async def _disable_failing(conn: Connection, outcomes: Sequence[Outcome], limit: int) -> None:
    runs: dict[Any, tuple[bool, int]] = {}  # endpoint -> (run restarted, failures added)
    for o in sorted(outcomes, key=lambda o: o.attempted_at):
        reset, added = runs.get(o.job.endpoint_id, (False, 0))
        runs[o.job.endpoint_id] = (True, 0) if o.succeeded else (reset, added + 1)
    rows = await _COUNT_FAILURES.fetch(
        conn,
        endpoint_ids=list(runs),
        resets=[r for r, _ in runs.values()],
        added=[n for _, n in runs.values()],
    )
    gone = {o.job.endpoint_id for o in outcomes if o.gone}
    failing = {r["id"] for r in rows if r["enabled"] and r["consecutive_failures"] >= limit}
    if gone:
        await service.disable(conn, sorted(gone), "the receiver answered 410 Gone")
    if failing - gone:
        await service.disable(
            conn, sorted(failing - gone), f"{limit} consecutive failed delivery attempts"
        )
