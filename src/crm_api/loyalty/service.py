"""Loyalty: the business rules behind REST, GraphQL, the interaction hook and the jobs.

Functions take the caller's connection (inside its transaction), raise domain errors and
never commit. Writes to an account go through ``ledger``: lock the account, expire its
due lots before spending, plan debits over current lots, append one entry per change.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import asyncpg
import sqlalchemy as sa

from crm_api.core import db
from crm_api.core.db import Compiled, Connection, Queryable
from crm_api.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from crm_api.core.http import check_version
from crm_api.core.ids import new_id
from crm_api.core.json import dumps
from crm_api.core.pagination import Keyset
from crm_api.customers import service as customers
from crm_api.events.schemas import EventType
from crm_api.interactions.schemas import Interaction, InteractionType
from crm_api.loyalty import ledger
from crm_api.loyalty.models import loyalty_accounts as A
from crm_api.loyalty.models import loyalty_entries as E
from crm_api.loyalty.models import loyalty_lot_uses as U
from crm_api.loyalty.models import loyalty_lots as L
from crm_api.loyalty.models import loyalty_programs as P
from crm_api.loyalty.models import loyalty_rewards as R
from crm_api.loyalty.schemas import (
    MAX_POINTS,
    Account,
    AdjustRequest,
    Downgrade,
    EarnRequest,
    Enrolment,
    Entry,
    EntryKind,
    NextTier,
    Program,
    ProgramCreate,
    ProgramUpdate,
    RedeemRequest,
    ReverseRequest,
    Reward,
    RewardCreate,
    RewardRedemption,
    RewardUpdate,
    Tier,
    downgrade_problem,
    tier_problem,
)

PROGRAMS = Keyset("loyalty_programs", [P.c.created_at, P.c.id], descending=False)
REWARDS = Keyset("loyalty_rewards", [R.c.created_at, R.c.id], descending=False)
ACCOUNTS = Keyset("loyalty_accounts", [A.c.created_at, A.c.id], descending=False)
ENTRIES = Keyset("loyalty_entries", [E.c.seq], descending=True)


@contextmanager
def _unique_name(what: str) -> Iterator[None]:
    try:
        yield
    except asyncpg.UniqueViolationError:
        raise Conflict(
            f"A {what} with this name already exists.",
            errors=[FieldError(field="name", message=f"is already used by another {what}")],
        ) from None


# -- programmes ----------------------------------------------------------------------


def _stored_tiers(tiers: list[Tier]) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json") for t in tiers]


_GET_PROGRAM = Compiled.of(sa.select(P).where(P.c.id == sa.bindparam("id", type_=sa.Uuid)))
_LOCK_PROGRAM = Compiled.of(
    sa.select(P).where(P.c.id == sa.bindparam("id", type_=sa.Uuid)).with_for_update()
)
_HAS_ACCOUNTS = Compiled.of(
    sa.select(sa.exists().where(A.c.program_id == sa.bindparam("id", type_=sa.Uuid)))
)


async def _program_row(conn: Queryable, program_id: uuid.UUID, *, lock: bool = False) -> db.Record:
    row = await (_LOCK_PROGRAM if lock else _GET_PROGRAM).fetchrow(conn, id=program_id)
    if row is None:
        raise NotFound(f"No loyalty programme with id {program_id}.")
    return row


async def create_program(conn: Connection, data: ProgramCreate) -> Program:
    values = data.model_dump(exclude={"tiers"})
    with _unique_name("loyalty programme"):
        row = await db.fetchrow(
            conn,
            sa.insert(P)
            .values(id=new_id(), tiers=_stored_tiers(data.tiers), **values)
            .returning(P),
        )
    return Program.model_validate(dict(row))  # type: ignore[arg-type]


async def get_program(conn: Queryable, program_id: uuid.UUID) -> Program:
    return Program.model_validate(dict(await _program_row(conn, program_id)))


async def list_programs(
    conn: Queryable, *, cursor: str | None, limit: int
) -> tuple[list[Program], str | None]:
    rows = await db.fetch(conn, PROGRAMS.apply(sa.select(P), cursor, limit))
    page, next_cursor = PROGRAMS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [Program.model_validate(dict(r)) for r in page], next_cursor


_REQUIRED = ("name", "currency", "points_per_unit", "rounding", "auto_earn", "lock_days",
             "tiers", "tier_window_days", "downgrade")  # fmt: skip


async def update_program(
    conn: Connection,
    program_id: uuid.UUID,
    patch: ProgramUpdate,
    *,
    expected: frozenset[int] | None = None,
) -> Program:
    """Change a programme; new rules apply from now on. The currency is fixed once the
    programme has accounts (their ledgers were earned in it)."""
    row = await _program_row(conn, program_id, lock=True)
    check_version(row["version"], expected)
    given = patch.model_fields_set
    nulls = [f for f in _REQUIRED if f in given and getattr(patch, f) is None]
    if nulls:
        raise ValidationFailed(
            "Some fields cannot be null.",
            errors=[FieldError(field=f, message="cannot be null") for f in nulls],
        )
    new: dict[str, Any] = {f: getattr(patch, f) for f in given}
    current = Program.model_validate(dict(row))
    merged = current.model_copy(update=new)
    if "tiers" in new and (problem := tier_problem(merged.tiers)):
        raise ValidationFailed.for_field("tiers", problem)
    if (
        "downgrade" in given
        and merged.downgrade is Downgrade.NEVER
        and "downgrade_every_days" not in given
    ):
        new["downgrade_every_days"] = merged.downgrade_every_days = None
    if problem := downgrade_problem(merged.downgrade, merged.downgrade_every_days):
        raise ValidationFailed.for_field("downgrade_every_days", problem)
    if "tiers" in new:
        new["tiers"] = _stored_tiers(merged.tiers)
    changes = {k: v for k, v in new.items() if row[k] != v}
    if not changes:
        return current
    if "currency" in changes and await _HAS_ACCOUNTS.fetchval(conn, id=program_id):
        raise Conflict.for_field(
            "currency", "is fixed once the programme has accounts: their points were earned in it"
        )
    with _unique_name("loyalty programme"):
        updated = await db.fetchrow(
            conn,
            sa.update(P)
            .where(P.c.id == program_id)
            .values(**changes, version=P.c.version + 1, updated_at=sa.func.now())
            .returning(P),
        )
    return Program.model_validate(dict(updated))  # type: ignore[arg-type]


async def delete_program(
    conn: Connection, program_id: uuid.UUID, *, expected: frozenset[int] | None = None
) -> None:
    """Delete a programme that has no accounts (with its rewards)."""
    row = await _program_row(conn, program_id, lock=True)
    check_version(row["version"], expected)
    if await _HAS_ACCOUNTS.fetchval(conn, id=program_id):
        raise Conflict(
            f"Programme {row['name']} has accounts, and their ledgers are kept; it cannot be "
            "deleted."
        )
    await db.fetchval(conn, sa.delete(P).where(P.c.id == program_id))


# -- rewards -------------------------------------------------------------------------


_GET_REWARD = Compiled.of(
    sa.select(R).where(
        R.c.id == sa.bindparam("id", type_=sa.Uuid),
        R.c.program_id == sa.bindparam("program_id", type_=sa.Uuid),
    )
)


async def _reward_row(
    conn: Queryable, program_id: uuid.UUID, reward_id: uuid.UUID, *, lock: bool = False
) -> db.Record:
    statement = sa.select(R).where(R.c.id == reward_id, R.c.program_id == program_id)
    row = await (
        db.fetchrow(conn, statement.with_for_update())
        if lock
        else _GET_REWARD.fetchrow(conn, id=reward_id, program_id=program_id)
    )
    if row is None:
        raise NotFound(f"Programme {program_id} has no reward with id {reward_id}.")
    return row


async def create_reward(conn: Connection, program_id: uuid.UUID, data: RewardCreate) -> Reward:
    await _program_row(conn, program_id)
    row = await db.fetchrow(
        conn,
        sa.insert(R).values(id=new_id(), program_id=program_id, **data.model_dump()).returning(R),
    )
    return Reward.model_validate(dict(row))  # type: ignore[arg-type]


async def get_reward(conn: Queryable, program_id: uuid.UUID, reward_id: uuid.UUID) -> Reward:
    return Reward.model_validate(dict(await _reward_row(conn, program_id, reward_id)))


async def list_rewards(
    conn: Queryable, program_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Reward], str | None]:
    await _program_row(conn, program_id)
    query = sa.select(R).where(R.c.program_id == program_id)
    rows = await db.fetch(conn, REWARDS.apply(query, cursor, limit))
    page, next_cursor = REWARDS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [Reward.model_validate(dict(r)) for r in page], next_cursor


async def update_reward(
    conn: Connection,
    program_id: uuid.UUID,
    reward_id: uuid.UUID,
    patch: RewardUpdate,
    *,
    expected: frozenset[int] | None = None,
) -> Reward:
    row = await _reward_row(conn, program_id, reward_id, lock=True)
    check_version(row["version"], expected)
    given = patch.model_fields_set - {"add_stock"}
    nulls = [f for f in ("name", "cost", "active") if f in given and getattr(patch, f) is None]
    if nulls:
        raise ValidationFailed(
            "Some fields cannot be null.",
            errors=[FieldError(field=f, message="cannot be null") for f in nulls],
        )
    changes: dict[str, Any] = {f: getattr(patch, f) for f in given if row[f] != getattr(patch, f)}
    if patch.add_stock is not None:
        if row["stock"] is None:
            raise Conflict.for_field("add_stock", "the reward's stock is unlimited")
        changes["stock"] = R.c.stock + patch.add_stock
    if not changes:
        return Reward.model_validate(dict(row))
    updated = await db.fetchrow(
        conn,
        sa.update(R)
        .where(R.c.id == reward_id)
        .values(**changes, version=R.c.version + 1, updated_at=sa.func.now())
        .returning(R),
    )
    return Reward.model_validate(dict(updated))  # type: ignore[arg-type]


# -- accounts ------------------------------------------------------------------------


def _account_view() -> sa.Select[Any]:
    """Accounts with what their lots and tier window add up to at ``now``."""
    now = sa.bindparam("now", type_=L.c.expires_at.type)
    mine = sa.and_(L.c.customer_id == A.c.customer_id, L.c.account_id == A.c.id, L.c.has_points)
    live = sa.or_(L.c.expires_at.is_(None), L.c.expires_at > now)

    def lots(*where: sa.ColumnElement[bool]) -> sa.ScalarSelect[Any]:
        total = sa.func.coalesce(sa.func.sum(L.c.remaining), 0)
        return sa.select(total).where(mine, live, *where).scalar_subquery()

    qualifying = (
        sa.select(sa.func.coalesce(sa.func.sum(E.c.qualifying_points), 0))
        .where(
            E.c.customer_id == A.c.customer_id,
            E.c.account_id == A.c.id,
            E.c.occurred_at > now - ledger.days(P.c.tier_window_days),
        )
        .scalar_subquery()
    )
    return sa.select(
        A,
        P.c.tiers,
        lots(L.c.available_at <= now).label("available"),
        lots(L.c.available_at > now).label("locked"),
        qualifying.label("qualifying_points"),
    ).select_from(A.join(P, P.c.id == A.c.program_id))


_ACCOUNT = Compiled.of(_account_view().where(A.c.id == sa.bindparam("id", type_=sa.Uuid)))


def _account(row: db.Record) -> Account:
    tiers = [Tier.model_validate(t) for t in row["tiers"]]
    above = tiers[ledger.rank(tiers, row["tier"]) + 1 :]
    qualifying = int(row["qualifying_points"])
    next_tier = None
    if above:
        target = above[0]
        next_tier = NextTier(
            name=target.name,
            threshold=target.threshold,
            qualifying_points=qualifying,
            points_needed=max(0, target.threshold - qualifying),
        )
    values = {k: v for k, v in dict(row).items() if k in Account.model_fields}
    return Account.model_validate(
        {**values, "qualifying_points": qualifying, "next_tier": next_tier}
    )


async def get_account(conn: Queryable, account_id: uuid.UUID) -> Account:
    row = await _ACCOUNT.fetchrow(conn, id=account_id, now=datetime.now(UTC))
    if row is None:
        raise NotFound(f"No loyalty account with id {account_id}.")
    return _account(row)


async def list_accounts(
    conn: Queryable,
    *,
    customer_id: uuid.UUID | None,
    program_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Account], str | None]:
    query = _account_view()
    if customer_id is not None:
        query = query.where(A.c.customer_id == customer_id)
    if program_id is not None:
        query = query.where(A.c.program_id == program_id)
    statement = ACCOUNTS.apply(query, cursor, limit)
    compiled = Compiled.of(statement)
    rows = await compiled.fetch(conn, now=datetime.now(UTC))
    page, next_cursor = ACCOUNTS.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [_account(r) for r in page], next_cursor


_CUSTOMERS_ACCOUNTS = Compiled.of(
    _account_view()
    .where(A.c.customer_id == sa.any_(sa.bindparam("customer_ids", type_=sa.ARRAY(sa.Uuid))))
    .order_by(A.c.customer_id, A.c.created_at, A.c.id)
)


async def accounts_by_customer(
    conn: Queryable, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Account]]:
    """The accounts of each of these customers in every programme, oldest first; customers
    in none are left out. One statement for any number of customers."""
    found: dict[uuid.UUID, list[Account]] = defaultdict(list)
    now = datetime.now(UTC)
    for row in await _CUSTOMERS_ACCOUNTS.fetch(conn, customer_ids=list(customer_ids), now=now):
        found[row["customer_id"]].append(_account(row))
    return found


def _enrolling() -> Compiled:
    customer = sa.bindparam("customer_id", type_=sa.Uuid)
    program = sa.bindparam("program_id", type_=sa.Uuid)
    now = sa.bindparam("now", type_=A.c.tier_reviewed_at.type)
    return Compiled.of(
        sa.dialects.postgresql.insert(A)
        .from_select(
            ["customer_id", "id", "program_id", "tier_reviewed_at"],
            sa.select(customer, sa.bindparam("id", type_=sa.Uuid), program, now).where(
                customers.is_live(customer), sa.exists().where(P.c.id == program)
            ),
        )
        .on_conflict_do_nothing(index_elements=[A.c.customer_id, A.c.program_id])
        .returning(A.c.id)
    )


_ENROL = _enrolling()
_FIND = Compiled.of(
    sa.select(A.c.id).where(
        A.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        A.c.program_id == sa.bindparam("program_id", type_=sa.Uuid),
    )
)


async def _enrol(
    conn: Connection, customer_id: uuid.UUID, program_id: uuid.UUID
) -> tuple[uuid.UUID | None, bool]:
    """The customer's account in the programme, made if missing: (its id, whether it is new);
    no id when the customer is not live or the programme does not exist."""
    now = datetime.now(UTC)
    created = await _ENROL.fetchval(
        conn, customer_id=customer_id, program_id=program_id, id=new_id(), now=now
    )
    if created is not None:
        return created, True
    return await _FIND.fetchval(conn, customer_id=customer_id, program_id=program_id), False


async def enrol(conn: Connection, data: Enrolment) -> tuple[Account, bool]:
    """Enrol a live customer; an existing enrolment is answered as is (idempotent)."""
    account_id, created = await _enrol(conn, data.customer_id, data.program_id)
    if account_id is None:
        if not await customers.live_ids(conn, [data.customer_id]):
            raise ValidationFailed.for_field(
                "customer_id", f"no live customer has id {data.customer_id}"
            )
        raise ValidationFailed.for_field(
            "program_id", f"no loyalty programme has id {data.program_id}"
        )
    return await get_account(conn, account_id), created


# -- the ledger ----------------------------------------------------------------------


_GET_ENTRY = Compiled.of(sa.select(E).where(E.c.id == sa.bindparam("id", type_=sa.Uuid)))


async def get_entry(conn: Queryable, entry_id: uuid.UUID) -> Entry:
    row = await _GET_ENTRY.fetchrow(conn, id=entry_id)
    if row is None:
        raise NotFound(f"No loyalty entry with id {entry_id}.")
    return Entry.model_validate(dict(row))


def _entry_key(row: db.Record) -> tuple[Any, ...]:
    return (row["seq"],)


async def list_entries(
    conn: Queryable, account_id: uuid.UUID, *, cursor: str | None, limit: int
) -> tuple[list[Entry], str | None]:
    """An account's ledger, newest first."""
    customer_id = await db.fetchval(conn, sa.select(A.c.customer_id).where(A.c.id == account_id))
    if customer_id is None:
        raise NotFound(f"No loyalty account with id {account_id}.")
    query = sa.select(E).where(E.c.customer_id == customer_id, E.c.account_id == account_id)
    rows = await db.fetch(conn, ENTRIES.apply(query, cursor, limit))
    page, next_cursor = ENTRIES.cut(rows, limit, _entry_key)
    return [Entry.model_validate(dict(r)) for r in page], next_cursor


_FIRST_ENTRY_PAGES = Compiled.of(ENTRIES.first_pages(sa.select(E), E.c.customer_id, E.c.account_id))


async def latest_entries(
    conn: Queryable, accounts: Sequence[tuple[uuid.UUID, uuid.UUID]], *, limit: int
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[list[Entry], str | None]]:
    """The first ledger page, newest first, of each of these (customer id, account id)
    accounts; accounts without entries are left out. One statement for any number."""
    rows = await _FIRST_ENTRY_PAGES.fetch(
        conn,
        customer_ids=[customer_id for customer_id, _ in accounts],
        account_ids=[account_id for _, account_id in accounts],
        rows=limit + 1,
    )
    pages = ENTRIES.cut_pages(
        rows, limit, _entry_key, lambda r: (r["customer_id"], r["account_id"])
    )
    return {
        account: ([Entry.model_validate(dict(r)) for r in page], after)
        for account, (page, after) in pages.items()
    }


def no_account(account_id: uuid.UUID) -> NotFound:
    return NotFound(f"No loyalty account with id {account_id}.")


async def _open(
    conn: Connection, account_id: uuid.UUID, now: datetime, actor: uuid.UUID | None, key: str | None
) -> tuple[ledger.Account, Entry | None]:
    """Lock an account for a ledger write; with it, the entry this actor already made
    under ``key`` on it (a replay), if any."""
    account = await ledger.lock(conn, now, account_id=account_id, actor=actor, key=key)
    if account is None:
        raise no_account(account_id)
    replay = None if account.replay_id is None else await get_entry(conn, account.replay_id)
    return account, replay


async def _expire_due(conn: Connection, account: ledger.Account, now: datetime) -> None:
    """Expire the account's due lots before a debit, so it never spends expired points."""
    if account.has_due:
        await ledger.expire_due(conn, account, now)


async def crediting(
    conn: Connection,
    account: ledger.Account,
    points: int,
    now: datetime,
    **fields: Any,
) -> ledger.Pending:
    """Earned points as a new lot; an upgrade the window now reaches happens at once."""
    if account.could_move_up(points):
        reached = await ledger.qualifying(conn, account, now) + points
        account.tier_change(reached, now, upgrade_only=True)
    return ledger.prepare(
        account,
        EntryKind.EARN,
        points,
        now,
        new_lot=True,
        earned=points,
        qualifying_points=points,
        **fields,
    )


def write_fields(
    request: EarnRequest | RedeemRequest, actor: uuid.UUID | None, key: str | None
) -> dict[str, Any]:
    """What an earn or a redeem records of who asked, and why."""
    return {"reference": request.reference, "actor_key_id": actor, "idempotency_key": key}


def earning(
    account: ledger.Account, request: EarnRequest, fields: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """The points an earn credits (exact, or for a purchase amount), and its fields."""
    if request.amount is None or request.currency is None:
        assert request.points is not None
        return request.points, fields
    if request.currency != account.currency:
        raise ValidationFailed.for_field(
            "currency", f"must be the programme's currency, {account.currency}"
        )
    points = account.points_for(request.amount)
    if points > MAX_POINTS:
        raise ValidationFailed.for_field("amount", f"would earn more than {MAX_POINTS} points")
    if points == 0:
        raise ValidationFailed.for_field("amount", "earns no points at this programme's rate")
    return points, {**fields, "amount": request.amount, "currency": request.currency,
                    "multiplier": account.multiplier}  # fmt: skip


async def earn(
    conn: Connection,
    account_id: uuid.UUID,
    request: EarnRequest,
    *,
    actor: uuid.UUID | None,
    key: str | None,
) -> tuple[Entry, bool]:
    """Earn points (exact, or from a purchase amount); answers (entry, replayed)."""
    now = datetime.now(UTC)
    account, replay = await _open(conn, account_id, now, actor, key)
    if replay:
        return replay, True
    points, fields = earning(account, request, write_fields(request, actor, key))
    return await ledger.write(conn, await crediting(conn, account, points, now, **fields)), False


_TAKE_STOCK = Compiled.of(
    sa.update(R)
    .where(
        R.c.id == sa.bindparam("id", type_=sa.Uuid),
        sa.or_(R.c.stock.is_(None), R.c.stock >= sa.bindparam("quantity", type_=sa.Integer)),
    )
    .values(stock=R.c.stock - sa.bindparam("quantity", type_=sa.Integer))
    .returning(R.c.stock)
)
_RETURN_STOCK = Compiled.of(
    sa.update(R)
    .where(R.c.id == sa.bindparam("id", type_=sa.Uuid), R.c.stock.is_not(None))
    .values(stock=R.c.stock + sa.bindparam("quantity", type_=sa.Integer))
)


async def redeem(
    conn: Connection,
    account_id: uuid.UUID,
    request: RedeemRequest,
    *,
    actor: uuid.UUID | None,
    key: str | None,
) -> tuple[Entry, bool]:
    """Spend points, or buy a reward with them; oldest lots first. Answers (entry, replayed)."""
    now = datetime.now(UTC)
    account, replay = await _open(conn, account_id, now, actor, key)
    if replay:
        return replay, True
    fields = write_fields(request, actor, key)
    points = request.points
    reward = None
    if request.reward_id is not None:
        reward = await _GET_REWARD.fetchrow(
            conn, id=request.reward_id, program_id=account.program_id
        )
        if reward is None or not reward["active"]:
            raise ValidationFailed.for_field(
                "reward_id", "is not an active reward of the account's programme"
            )
        points = reward["cost"] * request.quantity
        if points > MAX_POINTS:
            raise ValidationFailed.for_field(
                "quantity", f"would cost more than {MAX_POINTS} points"
            )
        fields.update(reward_id=reward["id"], reward_quantity=request.quantity)
    assert points is not None
    await _expire_due(conn, account, now)
    stock_left = None
    if reward is not None:
        stock = await _TAKE_STOCK.fetchrow(conn, id=reward["id"], quantity=request.quantity)
        if stock is None:
            raise Conflict.for_field(
                "quantity", f"only {reward['stock']} of reward {reward['name']} are in stock"
            )
        stock_left = stock["stock"]
    entry_id = new_id()
    if reward is not None:
        account.events.append(
            (
                EventType.LOYALTY_REWARD_REDEEMED,
                dumps(
                    RewardRedemption(
                        entry_id=entry_id,
                        account_id=account.id,
                        customer_id=account.customer_id,
                        reward_id=reward["id"],
                        reward_name=reward["name"],
                        quantity=request.quantity,
                        points=points,
                        stock_left=stock_left,
                    )
                ),
            )
        )
    entry = await ledger.debit(
        conn, account, EntryKind.REDEEM, points, now, entry_id=entry_id, **fields
    )
    return entry, False


async def adjust(
    conn: Connection,
    account_id: uuid.UUID,
    request: AdjustRequest,
    *,
    actor: uuid.UUID | None,
    key: str | None,
) -> tuple[Entry, bool]:
    """Correct a balance: credits are available at once, debits take the oldest lots."""
    now = datetime.now(UTC)
    account, replay = await _open(conn, account_id, now, actor, key)
    if replay:
        return replay, True
    fields = {"reason": request.reason, "reference": request.reference, "actor_key_id": actor,
              "idempotency_key": key}  # fmt: skip
    if request.points > 0:
        entry = await ledger.append(
            conn, account, EntryKind.ADJUST, request.points, now, new_lot=True, **fields
        )
    else:
        await _expire_due(conn, account, now)
        entry = await ledger.debit(conn, account, EntryKind.ADJUST, -request.points, now, **fields)
    return entry, False


_REVERSED = Compiled.of(
    sa.select(sa.func.coalesce(sa.func.sum(E.c.points), 0)).where(
        E.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        E.c.reverses_id == sa.bindparam("id", type_=sa.Uuid),
    )
)


async def _reversed(conn: Connection, customer_id: uuid.UUID, entry_id: uuid.UUID) -> int:
    """How many of an entry's points its reversals took back or gave back so far."""
    return abs(int(await _REVERSED.fetchval(conn, customer_id=customer_id, id=entry_id)))


_reversals = sa.select(E.c.id).where(
    E.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
    E.c.reverses_id == sa.bindparam("id", type_=sa.Uuid),
)
# What a debit took from each lot, net of what its reversals gave back: latest lots first,
# so a partial reversal refills the lots that expire last.
_RETURNABLE = Compiled.of(
    sa.select(U.c.lot_entry_id, sa.func.sum(U.c.points).label("points"))
    .select_from(
        U.join(L, sa.and_(L.c.customer_id == U.c.customer_id, L.c.entry_id == U.c.lot_entry_id))
    )
    .where(
        U.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        sa.or_(U.c.entry_id == sa.bindparam("id", type_=sa.Uuid), U.c.entry_id.in_(_reversals)),
    )
    .group_by(U.c.lot_entry_id, L.c.earned_at)
    .having(sa.func.sum(U.c.points) > 0)
    .order_by(L.c.earned_at.desc(), U.c.lot_entry_id.desc())
)


async def reverse(
    conn: Connection,
    entry_id: uuid.UUID,
    request: ReverseRequest,
    *,
    actor: uuid.UUID | None,
    key: str | None,
) -> tuple[Entry, bool]:
    """Take back a credit (its own lot first, then the oldest) or give back a debit (to the
    lots it took from). Expiries and reversals are not reversible. Answers (entry, replayed)."""
    target = await get_entry(conn, entry_id)
    now = datetime.now(UTC)
    account, replay = await _open(conn, target.account_id, now, actor, key)
    if replay:
        return replay, True
    if target.kind in (EntryKind.EXPIRE, EntryKind.REVERSE):
        raise Conflict(
            f"An {target.kind} entry cannot be reversed"
            + (
                ": record an adjust to give expired points back."
                if target.kind is EntryKind.EXPIRE
                else "."
            )
        )
    reversed_so_far = await _reversed(conn, target.customer_id, entry_id)
    left = abs(target.points) - reversed_so_far
    if left == 0:
        raise Conflict(f"Entry {entry_id} is reversed in full already.")
    points = request.points if request.points is not None else left
    if points > left:
        raise Conflict.for_field("points", f"only {left} of the entry's points are left to reverse")
    fields = {"reason": request.reason, "reference": request.reference, "reverses_id": entry_id,
              "actor_key_id": actor, "idempotency_key": key}  # fmt: skip
    if target.points > 0:
        await _expire_due(conn, account, now)
        earned = points if target.kind is EntryKind.EARN else 0
        entry = await ledger.debit(
            conn, account, EntryKind.REVERSE, points, now, first=entry_id, earned=-earned,
            qualifying_points=-earned, **fields,
        )  # fmt: skip
        return entry, False
    lots = await _RETURNABLE.fetch(conn, customer_id=target.customer_id, id=entry_id)
    takes, wanted = [], points
    for lot in lots:
        given = min(wanted, int(lot["points"]))
        takes.append((lot["lot_entry_id"], -given))
        wanted -= given
        if wanted == 0:
            break
    if target.reward_id is not None and target.reward_quantity:
        # Stock comes back in whole units as the reversed share of the points reaches them.
        total, quantity = abs(target.points), target.reward_quantity
        units = (reversed_so_far + points) * quantity // total - reversed_so_far * quantity // total
        if units:
            await _RETURN_STOCK.execute(conn, id=target.reward_id, quantity=units)
    entry = await ledger.append(
        conn, account, EntryKind.REVERSE, points, now, takes=takes, **fields
    )
    return entry, False


# -- purchases and refunds -----------------------------------------------------------


_AUTO_EARNING = Compiled.of(
    sa.select(P.c.id).where(P.c.auto_earn, P.c.currency == sa.bindparam("currency", type_=sa.Text))
)
_EARNED_BY = Compiled.of(
    sa.select(E.c.id, E.c.account_id, E.c.points, E.c.amount).where(
        E.c.customer_id == sa.bindparam("customer_id", type_=sa.Uuid),
        E.c.interaction_id == sa.bindparam("interaction_id", type_=sa.Uuid),
        E.c.kind == EntryKind.EARN.value,
    )
)


def acts_on(
    type_: sa.ColumnElement[Any], currency: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """SQL: whether ``on_interaction`` has anything to do for such an interaction (a
    purchase where an auto-earn programme has its currency; any refund), for the
    statement recording it to answer, sparing most purchases a round trip."""
    earns = sa.exists().where(P.c.auto_earn, P.c.currency == currency)
    return sa.or_(
        type_ == db.constant(InteractionType.REFUND.value),
        sa.and_(type_ == db.constant(InteractionType.PURCHASE.value), earns),
    )


async def on_interaction(conn: Connection, interaction: Interaction) -> None:
    """Purchases earn in every auto-earn programme of their currency (enrolling the customer);
    refunds naming their purchase take back the share of what it earned."""
    if interaction.type is InteractionType.PURCHASE and interaction.amount:
        for program in await _AUTO_EARNING.fetch(conn, currency=interaction.currency):
            await _earn_purchase(conn, interaction, program["id"])
    elif interaction.type is InteractionType.REFUND and interaction.refund_of is not None:
        earns = await _EARNED_BY.fetch(
            conn, customer_id=interaction.customer_id, interaction_id=interaction.refund_of
        )
        for earned in earns:
            await _reverse_refund(conn, interaction, earned)


async def _earn_purchase(conn: Connection, interaction: Interaction, program_id: uuid.UUID) -> None:
    assert interaction.amount is not None and interaction.currency is not None
    await _enrol(conn, interaction.customer_id, program_id)
    now = datetime.now(UTC)
    account = await ledger.lock(
        conn, now, customer_id=interaction.customer_id, program_id=program_id
    )
    assert account is not None
    points = min(account.points_for(interaction.amount), MAX_POINTS)
    if points == 0:  # a purchase too small to earn records nothing
        return
    credited = await crediting(
        conn,
        account,
        points,
        now,
        amount=interaction.amount,
        currency=interaction.currency,
        multiplier=account.multiplier,
        interaction_id=interaction.id,
        reference=interaction.external_id,
    )
    await ledger.write(conn, credited)


async def _reverse_refund(conn: Connection, refund: Interaction, earned: db.Record) -> None:
    """Take back round(earned x refund / purchase), capped at what is unreversed and at what
    the account can cover; the rest is recorded on the entry as uncovered."""
    assert refund.amount is not None
    purchase = earned["amount"]
    share = Decimal(earned["points"]) * refund.amount / purchase if purchase else Decimal(0)
    wanted = int(share.to_integral_value(rounding=ROUND_HALF_UP))
    now = datetime.now(UTC)
    account = await ledger.lock(conn, now, account_id=earned["account_id"])
    assert account is not None
    reversed_so_far = await _reversed(conn, refund.customer_id, earned["id"])
    wanted = min(wanted, earned["points"] - reversed_so_far)
    if wanted <= 0:
        return
    await _expire_due(conn, account, now)
    takes = await ledger.plan(conn, account, wanted, now, first=earned["id"])
    taken = sum(points for _, points in takes)
    if taken == 0:
        return
    await ledger.append(
        conn,
        account,
        EntryKind.REVERSE,
        -taken,
        now,
        takes=takes,
        earned=-taken,
        qualifying_points=-taken,
        reverses_id=earned["id"],
        interaction_id=refund.id,
        reference=refund.external_id,
        reason="refund",
        uncovered_points=(wanted - taken) or None,
    )
