"""The ledger's write primitives: lock an account, plan a debit over its lots, append entries.

Every write to an account starts by locking its row (``SELECT ... FOR UPDATE``), so writes
to one account serialise. Under READ COMMITTED each later statement takes a fresh
snapshot, so the lots read after the lock are current; a debit is never planned from
rows read before it. An entry, its lot changes, the account's new balance and the
events are then written by one compiled statement: one round trip per entry.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

import asyncpg
import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from crm_api.core.db import Compiled, Connection, Record
from crm_api.core.errors import Conflict
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.core.money import minor_per_major
from crm_api.events import service as events
from crm_api.events.schemas import EventType
from crm_api.loyalty.models import loyalty_accounts as A
from crm_api.loyalty.models import loyalty_entries as E
from crm_api.loyalty.models import loyalty_lot_uses as U
from crm_api.loyalty.models import loyalty_lots as L
from crm_api.loyalty.models import loyalty_programs as P
from crm_api.loyalty.schemas import Entry, EntryKind, Rounding, Tier, TierChange

_TIERS: TypeAdapter[list[Tier]] = TypeAdapter(list[Tier])
_ROUNDING = {
    Rounding.FLOOR: ROUND_FLOOR,
    Rounding.NEAREST: ROUND_HALF_UP,
    Rounding.CEIL: ROUND_CEILING,
}
# Wide enough for 10^15 minor units times any rate and multiplier, exactly.
_EXACT = Context(prec=80)
ENTRY_EVENTS = {
    EntryKind.EARN: EventType.LOYALTY_POINTS_EARNED,
    EntryKind.REDEEM: EventType.LOYALTY_POINTS_REDEEMED,
    EntryKind.EXPIRE: EventType.LOYALTY_POINTS_EXPIRED,
    EntryKind.ADJUST: EventType.LOYALTY_POINTS_ADJUSTED,
    EntryKind.REVERSE: EventType.LOYALTY_POINTS_REVERSED,
}


class InsufficientPoints(Conflict):
    slug = "insufficient-points"


def days(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """SQL: an interval of ``column`` days."""
    return sa.func.make_interval(0, 0, 0, column)


def convert(
    amount: int, currency: str, rate: Decimal, rounding: Rounding, multiplier: Decimal
) -> int:
    """Points for a purchase amount in minor units, computed exactly, then rounded once."""
    exact = _EXACT.multiply(
        _EXACT.multiply(_EXACT.divide(Decimal(amount), minor_per_major(currency)), rate),
        multiplier,
    )
    return int(exact.to_integral_value(rounding=_ROUNDING[rounding]))


def tier_for(tiers: list[Tier], qualifying: int) -> Tier | None:
    """The highest tier ``qualifying`` points reach."""
    reached = [t for t in tiers if t.threshold <= qualifying]
    return reached[-1] if reached else None


def rank(tiers: list[Tier], name: str | None) -> int:
    """A tier's position (-1: no tier, or one no longer in the programme)."""
    return next((n for n, t in enumerate(tiers) if t.name == name), -1)


@dataclass
class Account:
    """An account locked for this transaction, kept current as entries are appended."""

    customer_id: uuid.UUID
    id: uuid.UUID
    program_id: uuid.UUID
    balance: int
    lifetime_earned: int
    last_seq: int
    tier: str | None
    tier_since: datetime | None
    currency: str
    points_per_unit: Decimal
    rounding: Rounding
    expiry_days: int | None
    lock_days: int
    tiers: list[Tier]
    tier_window_days: int
    downgrade: str
    has_due: bool
    replay_id: uuid.UUID | None
    events: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def of(cls, row: Record) -> "Account":
        values = dict(row)
        values["tiers"] = _TIERS.validate_python(values["tiers"])
        values["rounding"] = Rounding(values["rounding"])
        return cls(**values)

    @property
    def multiplier(self) -> Decimal:
        current = next((t for t in self.tiers if t.name == self.tier), None)
        return current.multiplier if current else Decimal(1)

    def points_for(self, amount: int) -> int:
        """Points a purchase of ``amount`` (minor units, the programme's currency) earns."""
        return convert(amount, self.currency, self.points_per_unit, self.rounding, self.multiplier)

    def could_move_up(self, points: int) -> bool:
        """Whether earning ``points`` might reach a higher tier. Points earned in the window
        never exceed those earned in a lifetime, so this spares the window's sum on most
        earns (and on every earn at the top tier)."""
        above = self.tiers[rank(self.tiers, self.tier) + 1 :]
        return bool(above) and self.lifetime_earned + points >= above[0].threshold

    def tier_change(self, qualifying: int, now: datetime, *, upgrade_only: bool) -> bool:
        """Move to the tier ``qualifying`` points reach (only upward if told), queueing a
        `loyalty.tier_changed` event; whether the tier changed."""
        reached = tier_for(self.tiers, qualifying)
        name = reached.name if reached else None
        if name == self.tier:
            return False
        if upgrade_only and rank(self.tiers, name) <= rank(self.tiers, self.tier):
            return False
        self.events.append(
            (
                EventType.LOYALTY_TIER_CHANGED,
                dumps(
                    TierChange(
                        account_id=self.id,
                        customer_id=self.customer_id,
                        program_id=self.program_id,
                        from_tier=self.tier,
                        to_tier=name,
                        qualifying_points=qualifying,
                    )
                ),
            )
        )
        self.tier, self.tier_since = name, now
        return True


def locking(*where: sa.ColumnElement[bool], claim: int | None = None) -> Compiled:
    """Lock the accounts ``where`` selects, with their programme's rules; ``claim``: at
    most that many, skipping those other transactions hold (batch jobs)."""
    mine = sa.and_(L.c.customer_id == A.c.customer_id, L.c.account_id == A.c.id)
    # "IS NOT NULL" spelled out: a prepared statement's generic plan cannot infer it from
    # the comparison with a parameter, and without it scans every lot of the account.
    has_due = sa.exists().where(
        mine,
        L.c.has_points,
        L.c.expires_at.is_not(None),
        L.c.expires_at <= sa.bindparam("now", type_=L.c.expires_at.type),
    )
    replay = (
        sa.select(E.c.id)
        .where(
            E.c.customer_id == A.c.customer_id,
            E.c.account_id == A.c.id,
            E.c.actor_key_id == sa.bindparam("actor", type_=sa.Uuid),
            E.c.idempotency_key.is_not(None),  # (see has_due) the partial unique index
            E.c.idempotency_key == sa.bindparam("key", type_=sa.Text),
        )
        .scalar_subquery()
    )
    statement = (
        sa.select(
            A.c.customer_id,
            A.c.id,
            A.c.program_id,
            A.c.balance,
            A.c.lifetime_earned,
            A.c.last_seq,
            A.c.tier,
            A.c.tier_since,
            P.c.currency,
            P.c.points_per_unit,
            P.c.rounding,
            P.c.expiry_days,
            P.c.lock_days,
            P.c.tiers,
            P.c.tier_window_days,
            P.c.downgrade,
            has_due.label("has_due"),
            replay.label("replay_id"),
        )
        .select_from(A.join(P, P.c.id == A.c.program_id))
        .where(*where)
    )
    if claim is None:
        return Compiled.of(statement.with_for_update(of=A))
    return Compiled.of(statement.limit(claim).with_for_update(of=A, skip_locked=True))


_LOCK_BY_ID = locking(A.c.id == sa.bindparam("account_id", type_=sa.Uuid))
_LOCK_BY_KEYS = locking(
    A.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
    A.c.program_id == sa.bindparam("program_id", type_=sa.Uuid),
)


async def lock(
    conn: Connection,
    now: datetime,
    *,
    account_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    actor: uuid.UUID | None = None,
    key: str | None = None,
) -> Account | None:
    """Lock an account (by id, or by customer and programme) for the transaction."""
    params = {"now": now, "actor": actor, "key": key}
    if account_id is not None:
        row = await _LOCK_BY_ID.fetchrow(conn, account_id=account_id, **params)
    else:
        row = await _LOCK_BY_KEYS.fetchrow(
            conn, customer_id=customer_id, program_id=program_id, **params
        )
    return None if row is None else Account.of(row)


_QUALIFYING = Compiled.of(
    sa.select(sa.func.coalesce(sa.func.sum(E.c.qualifying_points), 0)).where(
        E.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        E.c.account_id == sa.bindparam("account_id", type_=sa.Uuid),
        E.c.occurred_at > sa.bindparam("since", type_=E.c.occurred_at.type),
    )
)


async def qualifying(conn: Connection, account: Account, now: datetime) -> int:
    """Points earned in the programme's tier window (not the balance: spending keeps tiers)."""
    since = now - timedelta(days=account.tier_window_days)
    return int(
        await _QUALIFYING.fetchval(
            conn, customer_id=account.customer_id, account_id=account.id, since=since
        )
    )


_now = sa.bindparam("now", type_=L.c.expires_at.type)
_mine = (
    L.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
    L.c.account_id == sa.bindparam("account_id", type_=sa.Uuid),
    L.c.has_points,
    sa.or_(L.c.expires_at.is_(None), L.c.expires_at > _now),
)
# Spendable lots in the order they are spent (oldest first), a page after a position:
# an index range scan that stops early, however many lots the account has collected.
PAGE = 64
_SPENDABLE = Compiled.of(
    sa.select(L.c.entry_id, L.c.remaining, L.c.earned_at)
    .where(
        *_mine,
        L.c.available_at <= _now,
        sa.tuple_(L.c.earned_at, L.c.entry_id)
        > sa.tuple_(
            sa.bindparam("after_at", type_=L.c.earned_at.type),
            sa.bindparam("after_id", type_=sa.Uuid),
        ),
    )
    .order_by(L.c.earned_at, L.c.entry_id)
    .limit(PAGE)
)
# A reversed credit's own lot, spent first even while it is still locked.
_OWN_LOT = Compiled.of(
    sa.select(L.c.entry_id, L.c.remaining).where(
        *_mine, L.c.entry_id == sa.bindparam("first", type_=sa.Uuid)
    )
)
_START = (datetime.min.replace(tzinfo=UTC), uuid.UUID(int=0))
_DUE = Compiled.of(
    sa.select(L.c.entry_id, L.c.remaining)
    .where(
        L.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        L.c.account_id == sa.bindparam("account_id", type_=sa.Uuid),
        L.c.has_points,
        L.c.expires_at <= _now,
    )
    .order_by(L.c.earned_at, L.c.entry_id)
)

Takes = list[tuple[uuid.UUID, int]]


async def plan(
    conn: Connection,
    account: Account,
    points: int,
    now: datetime,
    *,
    first: uuid.UUID | None = None,
) -> tuple[Takes, int]:
    """Which lots a debit of ``points`` takes from, and how many points are spendable (at
    least ``points`` when they suffice; all there are when they do not, and the takes
    then cover only those)."""
    mine = {"customer_id": account.customer_id, "account_id": account.id, "now": now}
    takes: Takes = []
    found = 0

    def take(lot: uuid.UUID, remaining: int) -> None:
        nonlocal found
        if found < points:
            takes.append((lot, min(remaining, points - found)))
        found += remaining

    if first is not None and (own := await _OWN_LOT.fetchrow(conn, first=first, **mine)):
        take(own["entry_id"], int(own["remaining"]))
    after_at, after_id = _START
    while True:
        rows = await _SPENDABLE.fetch(conn, after_at=after_at, after_id=after_id, **mine)
        for row in rows:
            if row["entry_id"] != first:
                take(row["entry_id"], int(row["remaining"]))
        if found >= points or len(rows) < PAGE:
            return takes, found
        after_at, after_id = rows[-1]["earned_at"], rows[-1]["entry_id"]


ENTRY_COLUMNS = [c.name for c in E.columns]


def _append_statement() -> Compiled:
    def bind(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(name, type_=column.type)

    customer, entry_id = bind("customer_id", E.c.customer_id), bind("id", E.c.id)
    lot_ids = sa.bindparam("lot_ids", type_=ARRAY(sa.Uuid))
    lot_points = sa.bindparam("lot_points", type_=ARRAY(sa.BigInteger))
    entry = sa.insert(E).values({c: bind(c, E.c[c]) for c in ENTRY_COLUMNS}).returning(E.c.id)
    uses = sa.insert(U).from_select(
        ["customer_id", "entry_id", "lot_entry_id", "points"],
        sa.select(customer, entry_id, sa.func.unnest(lot_ids), sa.func.unnest(lot_points)),
    )
    changes = (
        sa.func.unnest(lot_ids, lot_points)
        .table_valued(sa.column("lot", sa.Uuid), sa.column("points", sa.BigInteger))
        .render_derived(name="change")
    )
    lots = (
        sa.update(L)
        .where(L.c.customer_id == customer, L.c.entry_id == changes.c.lot)
        .values(remaining=L.c.remaining - changes.c.points)
    )
    new_points = sa.bindparam("new_lot_points", type_=sa.BigInteger)
    new_lot = sa.insert(L).from_select(
        ["customer_id", "entry_id", "account_id", "points", "remaining", "earned_at",
         "available_at", "expires_at"],
        sa.select(
            customer,
            entry_id,
            bind("account_id", E.c.account_id),
            new_points,
            new_points,
            bind("occurred_at", E.c.occurred_at),
            bind("available_at", L.c.available_at),
            bind("expires_at", L.c.expires_at),
        ).where(new_points.is_not(None)),
    )  # fmt: skip
    account = (
        sa.update(A)
        .where(A.c.customer_id == customer, A.c.id == bind("account_id", E.c.account_id))
        .values(
            balance=bind("balance_after", E.c.balance_after),
            lifetime_earned=A.c.lifetime_earned + sa.bindparam("earned", type_=sa.BigInteger),
            last_seq=bind("seq", E.c.seq),
            tier=bind("tier", A.c.tier),
            tier_since=bind("tier_since", A.c.tier_since),
            version=A.c.version + 1,
            updated_at=bind("occurred_at", E.c.occurred_at),
        )
    )
    announced = events.recording(
        sa.select(
            sa.func.unnest(sa.bindparam("event_ids", type_=ARRAY(sa.Uuid))),
            sa.func.unnest(sa.bindparam("event_types", type_=ARRAY(sa.Text))),
            customer,
            sa.func.unnest(sa.bindparam("event_data", type_=ARRAY(sa.Text))).cast(JSONB),
        )
    )
    return Compiled.of(
        sa.select(sa.literal(1)).add_cte(
            entry.cte("entry"),
            uses.cte("uses"),
            lots.cte("lots"),
            new_lot.cte("new_lot"),
            account.cte("account"),
            announced.cte("announced"),
        )
    )


_APPEND = _append_statement()


async def append(
    conn: Connection,
    account: Account,
    kind: EntryKind,
    points: int,
    now: datetime,
    *,
    takes: Takes = (),  # type: ignore[assignment]
    new_lot: bool = False,
    earned: int = 0,
    entry_id: uuid.UUID | None = None,
    **fields: Any,
) -> Entry:
    """Record an entry: its lot changes (``takes``: points taken from, or when negative
    given back to, each lot; ``new_lot``: the entry's points form a lot), the account's
    balance, lifetime earnings and tier, and its events with those the account queued."""
    values = dict.fromkeys(ENTRY_COLUMNS)
    values.update(fields)
    values.update(
        customer_id=account.customer_id,
        id=entry_id or new_id(),
        account_id=account.id,
        program_id=account.program_id,
        seq=account.last_seq + 1,
        kind=kind.value,
        points=points,
        balance_after=account.balance + points,
        occurred_at=now,
    )
    if values["qualifying_points"] is None:
        values["qualifying_points"] = 0
    entry = Entry.model_validate(values)
    queued = [(ENTRY_EVENTS[kind], dumps(entry)), *account.events]
    lot = {"new_lot_points": None, "available_at": None, "expires_at": None}
    if new_lot:
        lot = {
            "new_lot_points": points,
            "available_at": now
            + timedelta(days=account.lock_days if kind is EntryKind.EARN else 0),
            "expires_at": now + timedelta(days=account.expiry_days)
            if account.expiry_days
            else None,
        }
    try:
        await _APPEND.execute(
            conn,
            **values,
            **lot,
            lot_ids=[lot_id for lot_id, _ in takes],
            lot_points=[taken for _, taken in takes],
            earned=earned,
            tier=account.tier,
            tier_since=account.tier_since,
            event_ids=[new_id() for _ in queued],
            event_types=[str(t) for t, _ in queued],
            event_data=[data.decode() for _, data in queued],
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "Another request recorded this entry at the same moment (same Idempotency-Key or "
            "interaction); fetch the account's entries to see it."
        ) from None
    account.balance, account.last_seq = entry.balance_after, entry.seq
    account.lifetime_earned += earned
    account.events = []
    return entry


async def expire_due(conn: Connection, account: Account, now: datetime) -> Entry | None:
    """Expire the account's lots past their expiry: one `expire` entry, exact per lot."""
    rows = await _DUE.fetch(conn, customer_id=account.customer_id, account_id=account.id, now=now)
    account.has_due = False
    takes = [(r["entry_id"], int(r["remaining"])) for r in rows]
    total = sum(points for _, points in takes)
    if not total:
        return None
    return await append(conn, account, EntryKind.EXPIRE, -total, now, takes=takes)
