"""The ledger's write primitives: lock an account, then append entries to it.

Every write to an account starts by locking its row (``SELECT ... FOR UPDATE``), so writes
to one account serialise. Under READ COMMITTED each later statement takes a fresh
snapshot, so the lots read after the lock are current; a debit is never planned from
rows read before it. Entries, their lot changes, the accounts' new balances and the
events are then written by one compiled statement, for one account or for many locked
together (writer.py); a debit's lots are planned inside it, so a write costs one round
trip under the lock, not two.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from crm_api.core import db
from crm_api.core.db import Compiled, Connection, Record
from crm_api.core.errors import Conflict, FieldError
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
        # In id order: transactions that lock several accounts never deadlock.
        return Compiled.of(statement.order_by(A.c.id).with_for_update(of=A))
    return Compiled.of(statement.limit(claim).with_for_update(of=A, skip_locked=True))


# How the ledger's statements are planned, for the transaction that locked the accounts.
# - Generic plans: the statements take NULLs and empty arrays for what a write does not
#   touch (no Idempotency-Key, no lot taken, no new lot). A custom plan folds those away
#   and so always looks cheaper than the generic one, and PostgreSQL planned the lock and
#   the append afresh on every execution, which cost more than running them: at 32
#   clients over 2,000 accounts a write took 1.7 ms of server CPU, 1.2 ms on generic plans.
# - Index lookups and nested loops: the append takes its entries as JSON arrays, whose
#   row count a plan cannot know (it assumes 100), so it priced hash joins over whole
#   tables of lots and accounts below a probe per entry. Every statement here touches a
#   few rows by key: 526 us of server CPU per write with the hash joins, 235 without.
_PLANNING = (
    "SET LOCAL plan_cache_mode = force_generic_plan;"
    " SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;"
    " SET LOCAL enable_seqscan = off"
)
_LOCK_BY_ID = locking(A.c.id == sa.bindparam("account_id", type_=sa.Uuid))
_LOCK_MANY = locking(A.c.id == sa.any_(sa.bindparam("account_ids", type_=ARRAY(sa.Uuid))))
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
    await conn.execute(_PLANNING)
    if account_id is not None:
        row = await _LOCK_BY_ID.fetchrow(conn, account_id=account_id, **params)
    else:
        row = await _LOCK_BY_KEYS.fetchrow(
            conn, customer_id=customer_id, program_id=program_id, **params
        )
    return None if row is None else Account.of(row)


async def lock_many(
    conn: Connection, now: datetime, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Account]:
    """Lock accounts by id for the transaction; those that exist, by id."""
    await conn.execute(_PLANNING)
    rows = await _LOCK_MANY.fetch(conn, account_ids=account_ids, now=now, actor=None, key=None)
    return {row["id"]: Account.of(row) for row in rows}


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


_DUE = Compiled.of(
    sa.select(L.c.entry_id, L.c.remaining)
    .where(
        L.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        L.c.account_id == sa.bindparam("account_id", type_=sa.Uuid),
        L.c.has_points,
        L.c.expires_at <= sa.bindparam("now", type_=L.c.expires_at.type),
    )
    .order_by(L.c.earned_at, L.c.entry_id)
)


def _spending(op: sa.CTE) -> tuple[sa.CTE, sa.CTE]:
    """SQL: the lots each debit of ``op`` (its rows with ``wanted`` points) takes from, as
    a CTE of (op, lot, points), and the points each could spend (at least ``wanted`` when
    they suffice), as a CTE of (op, spendable).

    A reversed credit's own lot (``first_lot``) goes first, even while still locked; then
    spendable lots oldest first. The walk is recursive, one index probe on
    ``ix_loyalty_lots_fifo`` per lot, and stops as soon as the lots cover ``wanted``,
    however many lots the account has collected.
    """

    def usable(row: sa.CTE) -> tuple[sa.ColumnElement[bool], ...]:
        return (
            L.c.customer_id == row.c.customer_id,
            L.c.account_id == row.c.account_id,
            L.c.has_points,
            sa.or_(L.c.expires_at.is_(None), L.c.expires_at > row.c.occurred_at),
        )

    start = (
        sa.select(
            op.c.id.label("op"),
            op.c.customer_id,
            op.c.account_id,
            op.c.occurred_at,
            op.c.wanted,
            op.c.first_lot,
            L.c.remaining.label("own"),
            sa.func.coalesce(L.c.remaining, 0).label("owned"),
        )
        .select_from(op.outerjoin(L, sa.and_(*usable(op), L.c.entry_id == op.c.first_lot)))
        .where(op.c.wanted.is_not(None))
        .cte("start")
    )

    def next_lot(*after: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return (
            sa.select(L.c.entry_id, L.c.remaining, L.c.earned_at)
            .where(
                *usable(start),
                L.c.available_at <= start.c.occurred_at,
                L.c.entry_id.is_distinct_from(start.c.first_lot),
                *after,
            )
            .order_by(L.c.earned_at, L.c.entry_id)
            .limit(1)
        )

    oldest = next_lot().lateral("oldest")
    walk = (
        sa.select(start.c.op, oldest, (start.c.owned + oldest.c.remaining).label("found"))
        .select_from(start.join(oldest, sa.true()))
        .where(start.c.owned < start.c.wanted)
        .cte("walk", recursive=True)
    )
    following = next_lot(
        sa.tuple_(L.c.earned_at, L.c.entry_id) > sa.tuple_(walk.c.earned_at, walk.c.entry_id)
    ).lateral("following")
    walk = walk.union_all(
        sa.select(walk.c.op, following, walk.c.found + following.c.remaining)
        .select_from(walk.join(start, start.c.op == walk.c.op).join(following, sa.true()))
        .where(walk.c.found < start.c.wanted)
    )
    reached = (
        sa.select(walk.c.op, sa.func.max(walk.c.found).label("found"))
        .group_by(walk.c.op)
        .subquery("reached")
    )
    spendable = (
        sa.select(
            start.c.op,
            sa.func.greatest(start.c.owned, sa.func.coalesce(reached.c.found, 0)).label(
                "spendable"
            ),
        )
        .select_from(start.outerjoin(reached, reached.c.op == start.c.op))
        .cte("spendable")
    )
    before = walk.c.found - walk.c.remaining  # points found in the lots before this one
    takes = sa.union_all(
        sa.select(
            start.c.op,
            start.c.first_lot.label("lot"),
            sa.func.least(start.c.own, start.c.wanted).label("points"),
        ).where(start.c.own.is_not(None)),
        sa.select(
            walk.c.op, walk.c.entry_id, sa.func.least(walk.c.remaining, start.c.wanted - before)
        ).join(start, start.c.op == walk.c.op),
    ).cte("planned")
    return takes, spendable


def _partial_plan() -> Compiled:
    """The spending plan of one debit that may fall short (then it takes all there is)."""
    op = sa.select(
        sa.bindparam("account_id", type_=sa.Uuid).label("id"),  # one debit: its account's
        sa.bindparam("customer_id", type_=sa.Uuid).label("customer_id"),
        sa.bindparam("account_id", type_=sa.Uuid).label("account_id"),
        sa.bindparam("now", type_=L.c.earned_at.type).label("occurred_at"),
        sa.bindparam("wanted", type_=sa.BigInteger).label("wanted"),
        sa.bindparam("first", type_=sa.Uuid).label("first_lot"),
    ).cte("op")
    takes, _ = _spending(op)
    return Compiled.of(sa.select(takes.c.lot, takes.c.points))


_PLAN = _partial_plan()

Takes = list[tuple[uuid.UUID, int]]


async def plan(
    conn: Connection, account: Account, wanted: int, now: datetime, *, first: uuid.UUID | None
) -> Takes:
    """The lots a debit of up to ``wanted`` points takes from (all there are, when they
    fall short), for a debit that may be partial."""
    rows = await _PLAN.fetch(
        conn,
        customer_id=account.customer_id,
        account_id=account.id,
        now=now,
        wanted=wanted,
        first=first,
    )
    return [(row["lot"], int(row["points"])) for row in rows]


ENTRY_COLUMNS = [c.name for c in E.columns]
# What an append asks of the statement beyond its entry's columns.
_APPEND_COLUMNS = {
    "id": sa.Uuid,
    "wanted": sa.BigInteger,  # a debit whose lots the spending plan picks: its points
    "first_lot": sa.Uuid,  # the lot that plan takes first (a reversed credit's own)
    "new_lot_points": sa.BigInteger,  # a credit that forms a lot: its points
    "available_at": L.c.available_at.type,
    "expires_at": L.c.expires_at.type,
    "earned": sa.BigInteger,  # added to the account's lifetime earnings
    "tier": A.c.tier.type,
    "tier_since": A.c.tier_since.type,
}


def _parsed(rows: sa.TableValuedAlias, name: str) -> sa.CTE:
    """``rows`` parsed once: joined as they come, the JSON is parsed again per outer row."""
    return sa.select(rows).cte(name).prefix_with("MATERIALIZED")


def _append_statement() -> Compiled:
    """The statement that writes entries with everything they change, for one account
    each: their lot changes (given in ``takes``, or picked by the spending plan for a
    ``wanted`` debit), new lots, the accounts' new state and the events. A debit the lots
    cannot cover writes nothing. It answers each entry's spendable points (null unless
    its plan was asked for).

    Its parameters are JSON arrays, so one statement serves one write or many that share
    a transaction, and its plan does not change with their number.
    """
    entries = db.recordset(E, "entries", ENTRY_COLUMNS)
    asks = _parsed(db.json_rows("appends", _APPEND_COLUMNS), "asks")
    op = (
        sa.select(entries, *(asks.c[c] for c in _APPEND_COLUMNS if c != "id"))
        .join(asks, asks.c.id == entries.c.id)
        .cte("op")
    )
    planned, spendable = _spending(op)
    written = (
        sa.select(op)
        .outerjoin(spendable, spendable.c.op == op.c.id)
        .where(sa.or_(op.c.wanted.is_(None), op.c.wanted <= spendable.c.spendable))
        .cte("written")
    )
    given = _parsed(
        db.json_rows("takes", {"op": sa.Uuid, "lot": sa.Uuid, "points": sa.BigInteger}), "given"
    )
    changes = sa.union_all(sa.select(given), sa.select(planned)).subquery("change")
    taken = (
        sa.select(written.c.customer_id, changes)
        .join(written, written.c.id == changes.c.op)
        .cte("taken")
    )
    entry = sa.insert(E).from_select(
        ENTRY_COLUMNS, sa.select(*(written.c[c] for c in ENTRY_COLUMNS))
    )
    uses = sa.insert(U).from_select(
        ["customer_id", "entry_id", "lot_entry_id", "points"],
        sa.select(taken.c.customer_id, taken.c.op, taken.c.lot, taken.c.points),
    )
    lots = (
        sa.update(L)
        .where(L.c.customer_id == taken.c.customer_id, L.c.entry_id == taken.c.lot)
        .values(remaining=L.c.remaining - taken.c.points)
    )
    new_lot = sa.insert(L).from_select(
        ["customer_id", "entry_id", "account_id", "points", "remaining", "earned_at",
         "available_at", "expires_at"],
        sa.select(
            written.c.customer_id,
            written.c.id,
            written.c.account_id,
            written.c.new_lot_points,
            written.c.new_lot_points,
            written.c.occurred_at,
            written.c.available_at,
            written.c.expires_at,
        ).where(written.c.new_lot_points.is_not(None)),
    )  # fmt: skip
    account = (
        sa.update(A)
        .where(A.c.customer_id == written.c.customer_id, A.c.id == written.c.account_id)
        .values(
            balance=written.c.balance_after,
            lifetime_earned=A.c.lifetime_earned + written.c.earned,
            last_seq=written.c.seq,
            tier=written.c.tier,
            tier_since=written.c.tier_since,
            version=A.c.version + 1,
            updated_at=written.c.occurred_at,
        )
    )
    event_rows = _parsed(
        db.json_rows(
            "events",
            {"id": sa.Uuid, "type": sa.Text, "entry_id": sa.Uuid, "data": JSONB},
            name="event_json",
        ),
        "event_rows",
    )
    announced = events.recording(
        sa.select(
            event_rows.c.id, event_rows.c.type, written.c.customer_id, event_rows.c.data
        ).join(written, written.c.id == event_rows.c.entry_id)
    )
    return Compiled.of(
        sa.select(op.c.id, spendable.c.spendable)
        .outerjoin(spendable, spendable.c.op == op.c.id)
        .add_cte(
            entry.cte("entry"),
            uses.cte("uses"),
            lots.cte("lots"),
            new_lot.cte("new_lot"),
            account.cte("account"),
            announced.cte("announced"),
        )
    )


_APPEND = _append_statement()


@dataclass(frozen=True, slots=True)
class Pending:
    """An entry ready for the append statement, with everything writing it changes."""

    account: Account
    entry: Entry
    json: orjson.Fragment  # the entry as JSON: its row, and its event's data
    asks: dict[str, Any]  # _APPEND_COLUMNS
    takes: list[dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def wanted(self) -> int | None:
        return self.asks["wanted"]  # type: ignore[no-any-return]


def prepare(
    account: Account,
    kind: EntryKind,
    points: int,
    now: datetime,
    *,
    takes: Takes = (),  # type: ignore[assignment]
    planned: bool = False,
    first: uuid.UUID | None = None,
    new_lot: bool = False,
    earned: int = 0,
    entry_id: uuid.UUID | None = None,
    **fields: Any,
) -> Pending:
    """The entry ``account`` gets next, with what writing it changes: its lots (``takes``:
    points taken from, or when negative given back to, each lot; ``planned``: a debit
    whose lots the spending plan picks, ``first`` first; ``new_lot``: the entry's points
    form a lot), the balance, lifetime earnings and tier, and the events (its own and
    those the account queued)."""
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
    data = orjson.Fragment(dumps(entry))
    queued = [(ENTRY_EVENTS[kind], data), *((t, orjson.Fragment(d)) for t, d in account.events)]
    lot: dict[str, Any] = {"new_lot_points": None, "available_at": None, "expires_at": None}
    if new_lot:
        lot = {
            "new_lot_points": points,
            "available_at": now
            + timedelta(days=account.lock_days if kind is EntryKind.EARN else 0),
            "expires_at": now + timedelta(days=account.expiry_days)
            if account.expiry_days
            else None,
        }
    asks = {
        "id": entry.id,
        "wanted": -points if planned else None,
        "first_lot": first,
        "earned": earned,
        "tier": account.tier,
        "tier_since": account.tier_since,
        **lot,
    }
    return Pending(
        account,
        entry,
        data,
        asks,
        [{"op": entry.id, "lot": lot_id, "points": taken} for lot_id, taken in takes],
        [{"id": new_id(), "type": t, "entry_id": entry.id, "data": d} for t, d in queued],
    )


def charge(account: Account, kind: EntryKind, points: int, now: datetime, **how: Any) -> Pending:
    """A debit of ``points`` (> 0) taken from the account's lots by the spending plan;
    written only if the lots cover it (see ``prepare``)."""
    return prepare(account, kind, -points, now, planned=True, **how)


async def write_all(
    conn: Connection, pending: Sequence[Pending]
) -> list[Entry | InsufficientPoints]:
    """Write entries, at most one per account, with one statement; each answers its entry,
    or the 409 of a debit its lots could not cover (which wrote nothing)."""
    try:
        rows = await _APPEND.fetch(
            conn,
            entries=[p.json for p in pending],
            appends=[p.asks for p in pending],
            takes=[take for p in pending for take in p.takes],
            events=[event for p in pending for event in p.events],
        )
    except asyncpg.UniqueViolationError:
        raise Conflict(
            "Another request recorded this entry at the same moment (same Idempotency-Key or "
            "interaction); fetch the account's entries to see it."
        ) from None
    spendable = {row["id"]: row["spendable"] for row in rows}
    return [_outcome(p, spendable[p.entry.id]) for p in pending]


async def write(conn: Connection, pending: Pending) -> Entry:
    """Write one entry; a debit its lots cannot cover is a 409 and writes nothing."""
    [outcome] = await write_all(conn, [pending])
    if isinstance(outcome, InsufficientPoints):
        raise outcome
    return outcome


def _outcome(pending: Pending, spendable: int | None) -> Entry | InsufficientPoints:
    wanted = pending.wanted
    if wanted is not None and spendable is not None and spendable < wanted:
        return InsufficientPoints(
            f"The account has {spendable} points available; {wanted} were asked for.",
            errors=[
                FieldError(field="points", message=f"exceeds the {spendable} points available")
            ],
        )
    account, entry = pending.account, pending.entry
    account.balance, account.last_seq = entry.balance_after, entry.seq
    account.lifetime_earned += pending.asks["earned"]
    account.events = []
    return entry


async def append(
    conn: Connection, account: Account, kind: EntryKind, points: int, now: datetime, **how: Any
) -> Entry:
    """Record an entry with given lot changes, if any (see ``prepare``)."""
    return await write(conn, prepare(account, kind, points, now, **how))


async def debit(
    conn: Connection, account: Account, kind: EntryKind, points: int, now: datetime, **how: Any
) -> Entry:
    """Record a debit of ``points`` taken by the spending plan, all in one statement; when
    the lots cannot cover it, a 409 and nothing written (see ``charge``)."""
    return await write(conn, charge(account, kind, points, now, **how))


async def expire_due(conn: Connection, account: Account, now: datetime) -> Entry | None:
    """Expire the account's lots past their expiry: one `expire` entry, exact per lot."""
    rows = await _DUE.fetch(conn, customer_id=account.customer_id, account_id=account.id, now=now)
    account.has_due = False
    takes = [(r["entry_id"], int(r["remaining"])) for r in rows]
    total = sum(points for _, points in takes)
    if not total:
        return None
    return await append(conn, account, EntryKind.EXPIRE, -total, now, takes=takes)
