"""Scheduled loyalty work: expiring due lots and re-evaluating tiers.

The worker runs both on its schedule and `crm-api loyalty expire|retier` on demand. Each
claims accounts in batches (``FOR UPDATE SKIP LOCKED``, one short transaction per batch),
so several workers share the work and an account a request is writing to is left for the
next round (a spending request expires that account's due lots itself first). Both are
idempotent: a second run finds nothing due and changes nothing.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from crm_api.config import Settings
from crm_api.core.db import Compiled, Connection, Database
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.loyalty import ledger
from crm_api.loyalty.models import loyalty_accounts as A
from crm_api.loyalty.models import loyalty_entries as E
from crm_api.loyalty.models import loyalty_lot_uses as U
from crm_api.loyalty.models import loyalty_lots as L
from crm_api.loyalty.models import loyalty_programs as P
from crm_api.loyalty.schemas import Downgrade, Entry, EntryKind

BATCH = 500
_now = sa.bindparam("now", type_=A.c.tier_reviewed_at.type)

_CLAIM_DUE = Compiled.of(
    sa.select(A.c.customer_id, A.c.id)
    .where(
        sa.tuple_(A.c.customer_id, A.c.id).in_(
            sa.select(L.c.customer_id, L.c.account_id)
            .where(L.c.has_points, L.c.expires_at.is_not(None), L.c.expires_at <= _now)
            .limit(BATCH)
        )
    )
    .limit(BATCH)
    .with_for_update(skip_locked=True)
)


def _expiring() -> Compiled:
    """One statement expiring the due lots of the claimed accounts: per account one
    `expire` entry (next seq, balance after), its lot uses, the lots emptied, the balance
    lowered and one `loyalty.points_expired` event; answers how many accounts."""
    claimed = (
        sa.func.unnest(
            sa.bindparam("customer_ids", type_=ARRAY(sa.Uuid)),
            sa.bindparam("ids", type_=ARRAY(sa.Uuid)),
        )
        .table_valued(sa.column("customer_id", sa.Uuid), sa.column("account_id", sa.Uuid))
        .render_derived(name="claimed")
    )
    mine = sa.and_(L.c.customer_id == claimed.c.customer_id, L.c.account_id == claimed.c.account_id)
    due = (
        sa.select(L.c.customer_id, L.c.account_id, L.c.entry_id, L.c.remaining)
        .select_from(L.join(claimed, mine))
        .where(L.c.has_points, L.c.expires_at.is_not(None), L.c.expires_at <= _now)
        .cte("due")
    )
    totals = (
        sa.select(
            due.c.customer_id,
            due.c.account_id,
            sa.cast(sa.func.sum(due.c.remaining), sa.BigInteger).label("points"),
        )
        .group_by(due.c.customer_id, due.c.account_id)
        .cte("totals")
    )
    expired = (
        sa.update(A)
        .where(A.c.customer_id == totals.c.customer_id, A.c.id == totals.c.account_id)
        .values(
            balance=A.c.balance - totals.c.points,
            last_seq=A.c.last_seq + 1,
            version=A.c.version + 1,
            updated_at=_now,
        )
        .returning(
            A.c.customer_id,
            A.c.id,
            A.c.program_id,
            A.c.balance,
            A.c.last_seq,
            totals.c.points,
            sa.func.uuid7().label("entry_id"),
        )
        .cte("expired")
    )
    entry = {
        "customer_id": expired.c.customer_id,
        "id": expired.c.entry_id,
        "account_id": expired.c.id,
        "program_id": expired.c.program_id,
        "seq": expired.c.last_seq,
        "kind": sa.literal(EntryKind.EXPIRE.value),
        "points": -expired.c.points,
        "balance_after": expired.c.balance,
        "qualifying_points": sa.literal(0, sa.BigInteger),
        "occurred_at": _now,
    }
    entries = sa.insert(E).from_select(list(entry), sa.select(*entry.values()))
    uses = sa.insert(U).from_select(
        ["customer_id", "entry_id", "lot_entry_id", "points"],
        sa.select(due.c.customer_id, expired.c.entry_id, due.c.entry_id, due.c.remaining).where(
            expired.c.customer_id == due.c.customer_id, expired.c.id == due.c.account_id
        ),
    )
    emptied = (
        sa.update(L)
        .where(L.c.customer_id == due.c.customer_id, L.c.entry_id == due.c.entry_id)
        .values(remaining=0)
    )
    # The event carries the entry as the API renders it: every field, unset ones null.
    payload = sa.func.jsonb_build_object(
        *(
            part
            for name in Entry.model_fields
            for part in (sa.literal(name), entry.get(name, sa.null()))
        )
    )
    announced = events.recording(
        sa.select(
            sa.func.uuid7(),
            sa.literal(EventType.LOYALTY_POINTS_EXPIRED.value),
            expired.c.customer_id,
            payload,
        )
    )
    return Compiled.of(
        sa.select(sa.func.count())
        .select_from(expired)
        .add_cte(
            entries.cte("entries"),
            uses.cte("uses"),
            emptied.cte("emptied"),
            announced.cte("announced"),
        )
    )


_EXPIRE = _expiring()
# Re-evaluated programmes: accounts not reviewed for a period. Upgrade-only ones: accounts
# not reviewed since the programme changed (its tiers may have become easier to reach).
_CLAIM_REVIEW = ledger.locking(
    sa.or_(
        sa.and_(
            P.c.downgrade == Downgrade.REEVALUATE.value,
            sa.or_(
                A.c.tier_reviewed_at.is_(None),
                A.c.tier_reviewed_at <= _now - ledger.days(P.c.downgrade_every_days),
            ),
        ),
        sa.and_(
            P.c.downgrade == Downgrade.NEVER.value,
            sa.func.jsonb_array_length(P.c.tiers) > 0,
            sa.or_(A.c.tier_reviewed_at.is_(None), A.c.tier_reviewed_at < P.c.updated_at),
        ),
    ),
    claim=BATCH,
)
_changes = (
    sa.func.unnest(
        sa.bindparam("customer_ids", type_=ARRAY(sa.Uuid)),
        sa.bindparam("ids", type_=ARRAY(sa.Uuid)),
        sa.bindparam("tiers", type_=ARRAY(sa.Text)),
        sa.bindparam("changed", type_=ARRAY(sa.Boolean)),
    )
    .table_valued(
        sa.column("customer_id", sa.Uuid),
        sa.column("id", sa.Uuid),
        sa.column("tier", sa.Text),
        sa.column("changed", sa.Boolean),
    )
    .render_derived(name="review")
)
_REVIEWED = Compiled.of(
    sa.update(A)
    .where(A.c.customer_id == _changes.c.customer_id, A.c.id == _changes.c.id)
    .values(
        tier=_changes.c.tier,
        tier_since=sa.case((_changes.c.changed, _now), else_=A.c.tier_since),
        version=A.c.version + sa.case((_changes.c.changed, 1), else_=0),
        updated_at=sa.case((_changes.c.changed, _now), else_=A.c.updated_at),
        tier_reviewed_at=_now,
    )
)


async def expire_due(db: Database, settings: Settings) -> int:
    """Expire every lot past its expiry; answers how many accounts lost points."""
    expired = 0
    while True:
        async with db.transaction() as conn:
            now = datetime.now(UTC)
            claimed = await _CLAIM_DUE.fetch(conn, now=now)
            if not claimed:
                return expired
            expired += await _EXPIRE.fetchval(
                conn,
                customer_ids=[r["customer_id"] for r in claimed],
                ids=[r["id"] for r in claimed],
                now=now,
            )


async def retier_due(db: Database, settings: Settings) -> int:
    """Re-evaluate the tiers of accounts due a review; answers how many tiers changed."""
    changed = 0
    while True:
        async with db.transaction() as conn:
            now = datetime.now(UTC)
            claimed = await _CLAIM_REVIEW.fetch(conn, now=now, actor=None, key=None)
            changed += await _review(conn, [ledger.Account.of(r) for r in claimed], now)
        if not claimed:
            return changed


async def _review(conn: Connection, accounts: list[ledger.Account], now: datetime) -> int:
    """Set each account's tier to what its window reaches (only upward for `never`)."""
    if not accounts:
        return 0
    moved = []
    for account in accounts:
        qualifying = await ledger.qualifying(conn, account, now) if account.tiers else 0
        upgrade_only = account.downgrade == Downgrade.NEVER
        moved.append(account.tier_change(qualifying, now, upgrade_only=upgrade_only))
    await _REVIEWED.execute(
        conn,
        customer_ids=[a.customer_id for a in accounts],
        ids=[a.id for a in accounts],
        tiers=[a.tier for a in accounts],
        changed=moved,
        now=now,
    )
    await events.record_many(
        conn, [(kind, a.customer_id, data) for a in accounts for kind, data in a.events]
    )
    return sum(moved)
