"""Executing queued scoring runs in the worker: features, fit, scores, events.

A run is claimed with ``FOR UPDATE SKIP LOCKED`` under a lease that its progress renews,
so workers share the queue and a run whose worker died is taken up again. The model
work runs in a thread: webhook deliveries in the same worker keep flowing meanwhile.
"""

import asyncio
import logging
import math
from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from crm_api.core.db import Compiled, Connection, Database
from crm_api.core.json import dumps
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.lifecycle import rules as lifecycle_rules
from crm_api.scoring import features, registry, service
from crm_api.scoring.models import customer_scores as s
from crm_api.scoring.models import scoring_runs as r
from crm_api.scoring.protocol import Features, ScorerKind, Scores, TimeUnit

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=10)

_claimable = (
    sa.select(r.c.id)
    .where(
        sa.or_(
            r.c.status == "queued",
            sa.and_(r.c.status == "running", r.c.lease_until < sa.func.now()),
        )
    )
    .order_by(r.c.created_at)
    .limit(1)
    .with_for_update(skip_locked=True)
    .scalar_subquery()
)
_CLAIM = Compiled.of(
    sa.update(r)
    .where(r.c.id == _claimable)
    .values(
        status="running",
        progress=0.0,
        started_at=sa.func.now(),
        lease_until=sa.func.now() + LEASE,
    )
    .returning(r)
)
_PROGRESS = Compiled.of(
    sa.update(r)
    .where(r.c.id == sa.bindparam("id"))
    .values(progress=sa.bindparam("progress"), lease_until=sa.func.now() + LEASE)
)
_SUCCEED = Compiled.of(
    sa.update(r)
    .where(r.c.id == sa.bindparam("id"))
    .values(
        status="succeeded",
        progress=1.0,
        currency=sa.bindparam("currency"),
        parameters=sa.bindparam("parameters"),
        diagnostics=sa.bindparam("diagnostics"),
        customers_scored=sa.bindparam("customers_scored"),
        finished_at=sa.func.now(),
        error=None,
    )
    .returning(r)
)
_FAIL = Compiled.of(
    sa.update(r)
    .where(r.c.id == sa.bindparam("id"))
    .values(status="failed", error=sa.bindparam("error"), finished_at=sa.func.now())
)


async def run_next(db: Database, churn_threshold: float) -> bool:
    """Execute the oldest due run, if any; whether there was one."""
    async with db.connection() as conn:
        run = await _CLAIM.fetchrow(conn)
        if run is None:
            return False
        try:
            await _execute(conn, run, churn_threshold)
        except Exception as exc:  # the run failed, not the worker: say why on the run
            log.warning("scoring run %s failed: %s", run["id"], exc)
            await _FAIL.execute(conn, id=run["id"], error=str(exc) or type(exc).__name__)
    return True


async def _execute(conn: Connection, run: Any, churn_threshold: float) -> None:
    scorer_class = registry.get(run["scorer"])
    scorer = scorer_class(service.configure(scorer_class, run["config"]))
    currency = run["currency"] or await features.main_currency(conn)
    if currency is None:
        raise ValueError("there are no purchases to score yet")
    data = await features.extract(
        conn, end=run["observation_end"], unit=TimeUnit(run["time_unit"]), currency=currency
    )
    await _PROGRESS.execute(conn, id=run["id"], progress=0.2)
    fitted = await asyncio.to_thread(scorer.fit, data)
    await _PROGRESS.execute(conn, id=run["id"], progress=0.6)
    scores = await asyncio.to_thread(scorer.score, data)
    await _PROGRESS.execute(conn, id=run["id"], progress=0.8)
    async with conn.transaction():
        scored = await _store(conn, run, data, scores)
        row = await _SUCCEED.fetchrow(
            conn,
            id=run["id"],
            currency=currency,
            parameters=_plain(fitted.parameters),
            diagnostics=_plain(fitted.diagnostics),
            customers_scored=scored,
        )
        assert row is not None
        completed = service.present(row)
        await events.record(
            conn,
            EventType.SCORING_RUN_COMPLETED,
            completed.model_dump(mode="json"),
            customer_id=None,
        )
        if run["kind"] == ScorerKind.CHURN:
            await _churn_crossings(conn, run, churn_threshold)
            await lifecycle_rules.after_churn_run(conn, churn_threshold)


def _plain(value: Any) -> Any:
    """Plain JSON: numpy numbers made Python ones, non-finite numbers made null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_STORE = Compiled.of(
    sa.insert(s).from_select(
        ["customer_id", "run_id", "scorer", "kind", "score", "label", "details"],
        sa.select(
            sa.func.unnest(sa.bindparam("customer_ids", type_=sa.ARRAY(sa.Uuid))),
            sa.bindparam("run_id", type_=sa.Uuid),
            sa.bindparam("scorer", type_=sa.Text),
            sa.bindparam("kind", type_=sa.Text),
            sa.func.unnest(sa.bindparam("scores", type_=sa.ARRAY(sa.Float))),
            sa.func.unnest(sa.bindparam("labels", type_=sa.ARRAY(sa.Text))),
            sa.cast(
                sa.func.unnest(sa.bindparam("details", type_=sa.ARRAY(sa.Text))),
                sa.dialects.postgresql.JSONB,
            ),
        ),
    )
)


async def _store(conn: Connection, run: Any, data: Features, scores: Scores) -> int:
    """Write every customer's score in one statement; how many got one."""
    values = np.asarray(scores.score, dtype=float)
    finite = np.isfinite(values)
    labels = scores.labels or [None] * len(data)
    details = scores.details or [{}] * len(data)
    await _STORE.execute(
        conn,
        customer_ids=list(data.customer_ids),
        run_id=run["id"],
        scorer=run["scorer"],
        kind=run["kind"],
        scores=[float(v) if ok else None for v, ok in zip(values, finite, strict=True)],
        labels=list(labels),
        details=[dumps(_plain(d)).decode() for d in details],
    )
    return int(np.count_nonzero(finite | np.array([lb is not None for lb in labels], bool)))


_previous = (
    sa.select(r.c.id)
    .where(
        r.c.scorer == sa.bindparam("scorer"),
        r.c.status == "succeeded",
        r.c.id != sa.bindparam("run_id"),
    )
    .order_by(r.c.finished_at.desc())
    .limit(1)
    .scalar_subquery()
)
_now = s.alias("now")
_before = s.alias("before")
_threshold = sa.bindparam("threshold", type_=sa.Float)
_at_risk = _now.c.score >= _threshold
_was_at_risk = sa.func.coalesce(_before.c.score, 0.0) >= _threshold
_CHURN_CROSSINGS = Compiled.of(
    events.recording(
        sa.select(
            sa.func.uuid7(),
            sa.literal(EventType.CUSTOMER_CHURN_RISK_CHANGED, sa.Text),
            _now.c.customer_id,
            sa.func.jsonb_build_object(
                "customer_id", _now.c.customer_id,
                "scorer", _now.c.scorer,
                "run_id", _now.c.run_id,
                "churn_probability", _now.c.score,
                "previous_probability", _before.c.score,
                "threshold", _threshold,
                "at_risk", _at_risk,
            ),
        )
        .select_from(
            _now.outerjoin(
                _before,
                sa.and_(_before.c.customer_id == _now.c.customer_id, _before.c.run_id == _previous),
            )
        )
        .where(
            _now.c.run_id == sa.bindparam("run_id"),
            _now.c.score.isnot(None),
            _at_risk.is_distinct_from(_was_at_risk),
        )
    )
)  # fmt: skip


async def _churn_crossings(conn: Connection, run: Any, threshold: float) -> None:
    """``customer.churn_risk_changed`` for everyone this run moved across ``threshold``
    (against the scorer's previous run; before any run, nobody was at risk)."""
    await _CHURN_CROSSINGS.execute(
        conn, run_id=run["id"], scorer=run["scorer"], threshold=threshold
    )
