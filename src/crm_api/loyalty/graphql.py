"""GraphQL transport of loyalty programmes, rewards, accounts and the points ledger.

Ledger mutations also keep their ``idempotencyKey`` on the entry, as REST does: the same
key from the same API key answers that entry again, even after its stored answer expired.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import NewType

import strawberry
from pydantic import BaseModel
from strawberry import relay
from strawberry.types.scalar import ScalarDefinition

from crm_api.core.scopes import Scope
from crm_api.graphql.context import Info
from crm_api.graphql.convert import expected_versions, from_model, parse_id, plain, validated
from crm_api.graphql.errors import or_none
from crm_api.graphql.idempotency import IdempotencyKey, idempotent, idempotent_delete
from crm_api.graphql.node import Node, findable
from crm_api.graphql.pagination import after_argument, connection, nested_page, page_size
from crm_api.graphql.permissions import needs
from crm_api.loyalty import schemas, service
from crm_api.loyalty.models import (
    loyalty_accounts,
    loyalty_entries,
    loyalty_programs,
    loyalty_rewards,
)
from crm_api.loyalty.writer import LedgerWriter


def _whole(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"Points must be a whole number, not {value!r}")


Points = NewType("Points", int)
# Added to the schema's scalar map (graphql/schema.py).
SCALARS: dict[object, ScalarDefinition] = {
    Points: strawberry.scalar(
        name="Points",
        description="A number of loyalty points: a JSON integer, beyond GraphQL's 32-bit Int.",
        serialize=int,
        parse_value=_whole,
    )
}
strawberry.enum(schemas.Rounding, name="LoyaltyRounding")
strawberry.enum(schemas.Downgrade, name="LoyaltyDowngrade")
strawberry.enum(schemas.EntryKind, name="LoyaltyEntryKind")


@strawberry.type
class LoyaltyTier:
    name: str
    threshold: Points = strawberry.field(description="Qualifying points earned in the window.")
    multiplier: Decimal


@strawberry.type(description="A reward of a programme's catalogue.")
class LoyaltyReward(Node):
    id: strawberry.ID
    program_id: strawberry.ID
    name: str
    description: str | None
    cost: Points
    stock: int | None = strawberry.field(description="Units left; null: unlimited.")
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int


@strawberry.type(description="How points are earned, locked, expired and tiered.")
class LoyaltyProgram(Node):
    id: strawberry.ID
    name: str
    description: str | None
    currency: str
    points_per_unit: Decimal
    rounding: schemas.Rounding
    auto_earn: bool
    expiry_days: int | None
    lock_days: int
    tiers: list[LoyaltyTier]
    tier_window_days: int
    downgrade: schemas.Downgrade
    downgrade_every_days: int | None
    created_at: datetime
    updated_at: datetime
    version: int

    @strawberry.field(description="The catalogue, oldest first.")
    async def rewards(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> relay.Connection[LoyaltyReward]:
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_rewards(
                    conn, uuid.UUID(self.id), cursor=after, limit=limit
                )
        return connection(
            page,
            node=lambda r: from_model(LoyaltyReward, r),
            cursor_of=lambda r: service.REWARDS.encode((r.created_at, r.id)),
            has_next_page=next_cursor is not None,
        )

    @classmethod
    def of(cls, model: schemas.Program) -> "LoyaltyProgram":
        return from_model(cls, model, tiers=[from_model(LoyaltyTier, t) for t in model.tiers])


@strawberry.type(description="One line of the ledger; never changed or removed.")
class LoyaltyEntry(Node):
    id: strawberry.ID
    account_id: strawberry.ID
    customer_id: strawberry.ID
    program_id: strawberry.ID
    seq: Points
    kind: schemas.EntryKind
    points: Points = strawberry.field(description="Signed: credits > 0, debits < 0.")
    balance_after: Points
    qualifying_points: Points
    reference: str | None
    reason: str | None
    reward_id: strawberry.ID | None
    reward_quantity: int | None
    reverses_id: strawberry.ID | None
    interaction_id: strawberry.ID | None
    amount: Points | None = strawberry.field(description="Purchase amount, minor units.")
    currency: str | None
    multiplier: Decimal | None
    uncovered_points: Points | None
    actor_key_id: strawberry.ID | None
    idempotency_key: str | None
    occurred_at: datetime

    @classmethod
    def of(cls, model: schemas.Entry) -> "LoyaltyEntry":
        return from_model(cls, model)


@strawberry.type
class LoyaltyNextTier:
    name: str
    threshold: Points
    qualifying_points: Points
    points_needed: Points


@strawberry.type(description="A customer's membership of a programme and its balances.")
class LoyaltyAccount(Node):
    id: strawberry.ID
    customer_id: strawberry.ID
    program_id: strawberry.ID
    balance: Points
    available: Points = strawberry.field(description="Spendable now.")
    locked: Points = strawberry.field(description="In the lock period.")
    lifetime_earned: Points
    tier: str | None
    tier_since: datetime | None
    qualifying_points: Points = strawberry.field(description="Earned in the tier window.")
    next_tier: LoyaltyNextTier | None
    created_at: datetime
    updated_at: datetime
    version: int

    @strawberry.field(description="The ledger, newest first.")
    async def entries(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> relay.Connection[LoyaltyEntry]:
        account_id, limit = uuid.UUID(self.id), page_size(first)
        page, next_cursor = await nested_page(
            info,
            ("loyalty_entries", limit),
            (uuid.UUID(self.customer_id), account_id),
            first_pages=lambda conn, accounts: service.latest_entries(conn, accounts, limit=limit),
            after=after,
            page_after=lambda conn, cursor: service.list_entries(
                conn, account_id, cursor=cursor, limit=limit
            ),
        )
        return _entry_page(page, next_cursor)

    @classmethod
    def of(cls, model: schemas.Account) -> "LoyaltyAccount":
        next_tier = model.next_tier and from_model(LoyaltyNextTier, model.next_tier)
        return from_model(cls, model, next_tier=next_tier)


async def loyalty_accounts_of(info: Info, customer_id: uuid.UUID) -> list[LoyaltyAccount]:
    """A customer's accounts, batched with the other customers' of the request."""
    found = await info.context.batched(
        "loyalty_accounts", service.accounts_by_customer, customer_id, []
    )
    return [LoyaltyAccount.of(account) for account in found]


async def _entries(
    info: Info, account_id: uuid.UUID, first: int, after: str | None
) -> relay.Connection[LoyaltyEntry]:
    limit = page_size(first)
    with after_argument():
        async with info.context.db.connection() as conn:
            page, next_cursor = await service.list_entries(
                conn, account_id, cursor=after, limit=limit
            )
    return _entry_page(page, next_cursor)


def _entry_page(
    page: list[schemas.Entry], next_cursor: str | None
) -> relay.Connection[LoyaltyEntry]:
    return connection(
        page,
        node=LoyaltyEntry.of,
        cursor_of=lambda e: service.ENTRIES.encode((e.seq,)),
        has_next_page=next_cursor is not None,
    )


findable(
    LoyaltyProgram,
    loyalty_programs.c.id,
    Scope.LOYALTY_READ,
    lambda conn, principal, id, parent: service.get_program(conn, id),
)
findable(
    LoyaltyReward,
    loyalty_rewards.c.id,
    Scope.LOYALTY_READ,
    lambda conn, principal, id, program_id: service.get_reward(conn, program_id, id),
    parent=loyalty_rewards.c.program_id,
    render=lambda reward: from_model(LoyaltyReward, reward),
)
findable(
    LoyaltyAccount,
    loyalty_accounts.c.id,
    Scope.LOYALTY_READ,
    lambda conn, principal, id, parent: service.get_account(conn, id),
)
findable(
    LoyaltyEntry,
    loyalty_entries.c.id,
    Scope.LOYALTY_READ,
    lambda conn, principal, id, parent: service.get_entry(conn, id),
)


@strawberry.input
class LoyaltyTierInput:
    name: str
    threshold: Points
    multiplier: Decimal | None = strawberry.field(
        default=strawberry.UNSET, description="Default 1."
    )


@strawberry.input(description="A new programme; see the REST API for the rules.")
class LoyaltyProgramInput:
    name: str
    description: str | None = strawberry.UNSET
    currency: str
    points_per_unit: Decimal
    rounding: schemas.Rounding | None = strawberry.UNSET
    auto_earn: bool | None = strawberry.UNSET
    expiry_days: int | None = strawberry.UNSET
    lock_days: int | None = strawberry.UNSET
    tiers: list[LoyaltyTierInput] | None = strawberry.UNSET
    tier_window_days: int | None = strawberry.UNSET
    downgrade: schemas.Downgrade | None = strawberry.UNSET
    downgrade_every_days: int | None = strawberry.UNSET


@strawberry.input(description="Fields left out stay as they are.")
class LoyaltyProgramPatchInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    points_per_unit: Decimal | None = strawberry.UNSET
    rounding: schemas.Rounding | None = strawberry.UNSET
    auto_earn: bool | None = strawberry.UNSET
    expiry_days: int | None = strawberry.UNSET
    lock_days: int | None = strawberry.UNSET
    tiers: list[LoyaltyTierInput] | None = strawberry.UNSET
    tier_window_days: int | None = strawberry.UNSET
    downgrade: schemas.Downgrade | None = strawberry.UNSET
    downgrade_every_days: int | None = strawberry.UNSET


@strawberry.input
class LoyaltyRewardInput:
    name: str
    description: str | None = strawberry.UNSET
    cost: Points
    stock: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input(description="stock sets the stock; addStock tops it up.")
class LoyaltyRewardPatchInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    cost: Points | None = strawberry.UNSET
    stock: int | None = strawberry.UNSET
    add_stock: int | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET


@strawberry.input(description="Exactly one of points, or amount with currency.")
class LoyaltyEarnInput:
    points: Points | None = strawberry.UNSET
    amount: Points | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    reference: str | None = strawberry.UNSET


@strawberry.input(description="Exactly one of points, or rewardId (with quantity).")
class LoyaltyRedeemInput:
    points: Points | None = strawberry.UNSET
    reward_id: strawberry.ID | None = strawberry.UNSET
    quantity: int | None = strawberry.UNSET
    reference: str | None = strawberry.UNSET


@strawberry.input
class LoyaltyAdjustInput:
    points: Points = strawberry.field(description="Signed, not zero.")
    reason: str
    reference: str | None = strawberry.UNSET


@strawberry.input
class LoyaltyReverseInput:
    reason: str
    points: Points | None = strawberry.field(
        default=strawberry.UNSET, description="Partial; default: all not yet reversed."
    )
    reference: str | None = strawberry.UNSET


async def _write(
    info: Info,
    write: Callable[..., Awaitable[tuple[schemas.Entry, bool]]],
    target: uuid.UUID,
    request: BaseModel,
    idempotency_key: str | None,
) -> "LoyaltyEntry":
    """One ledger write (earn, redeem, adjust, reverse); an earn or a redeem without an
    idempotency key may share a transaction (see writer.py)."""
    actor = info.context.principal.key_id
    if idempotency_key is None and isinstance(request, schemas.EarnRequest | schemas.RedeemRequest):
        assert info.context.request is not None
        writer: LedgerWriter = info.context.request.app.state.ledger_writer
        shared = await writer.write(target, request, actor=actor)
        if shared is not None:
            return LoyaltyEntry.of(shared)
    entry, _ = await idempotent(
        info,
        idempotency_key,
        tuple[schemas.Entry, bool],
        lambda conn: write(conn, target, request, actor=actor, key=idempotency_key),
    )
    return LoyaltyEntry.of(entry)


def _unset_nulls(data: dict[str, object]) -> dict[str, object]:
    """Create inputs: a null optional field means "the default", as leaving it out does."""
    return {k: v for k, v in data.items() if v is not None}


@strawberry.type
class LoyaltyQueries:
    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="null if unknown.")
    async def loyalty_program(self, info: Info, id: strawberry.ID) -> LoyaltyProgram | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_program(conn, parse_id(id)))
        return None if found is None else LoyaltyProgram.of(found)

    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="Oldest first.")
    async def loyalty_programs(
        self, info: Info, first: int = 50, after: str | None = None
    ) -> relay.Connection[LoyaltyProgram]:
        limit = page_size(first)
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_programs(conn, cursor=after, limit=limit)
        return connection(
            page,
            node=LoyaltyProgram.of,
            cursor_of=lambda p: service.PROGRAMS.encode((p.created_at, p.id)),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="null if unknown.")
    async def loyalty_reward(
        self, info: Info, program_id: strawberry.ID, id: strawberry.ID
    ) -> LoyaltyReward | None:
        program, reward = parse_id(program_id, "programId"), parse_id(id)
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_reward(conn, program, reward))
        return None if found is None else from_model(LoyaltyReward, found)

    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="null if unknown.")
    async def loyalty_account(self, info: Info, id: strawberry.ID) -> LoyaltyAccount | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_account(conn, parse_id(id)))
        return None if found is None else LoyaltyAccount.of(found)

    @strawberry.field(
        extensions=needs(Scope.LOYALTY_READ),
        description="Accounts, oldest first; of one customer and/or programme.",
    )
    async def loyalty_accounts(
        self,
        info: Info,
        customer_id: strawberry.ID | None = None,
        program_id: strawberry.ID | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> relay.Connection[LoyaltyAccount]:
        limit = page_size(first)
        customer = None if customer_id is None else parse_id(customer_id, "customerId")
        program = None if program_id is None else parse_id(program_id, "programId")
        with after_argument():
            async with info.context.db.connection() as conn:
                page, next_cursor = await service.list_accounts(
                    conn, customer_id=customer, program_id=program, cursor=after, limit=limit
                )
        return connection(
            page,
            node=LoyaltyAccount.of,
            cursor_of=lambda a: service.ACCOUNTS.encode((a.created_at, a.id)),
            has_next_page=next_cursor is not None,
        )

    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="Newest first.")
    async def loyalty_entries(
        self, info: Info, account_id: strawberry.ID, first: int = 50, after: str | None = None
    ) -> relay.Connection[LoyaltyEntry]:
        return await _entries(info, parse_id(account_id, "accountId"), first, after)

    @strawberry.field(extensions=needs(Scope.LOYALTY_READ), description="null if unknown.")
    async def loyalty_entry(self, info: Info, id: strawberry.ID) -> LoyaltyEntry | None:
        async with info.context.db.connection() as conn:
            found = await or_none(service.get_entry(conn, parse_id(id)))
        return None if found is None else LoyaltyEntry.of(found)


@strawberry.type
class LoyaltyMutations:
    @strawberry.mutation(extensions=needs(Scope.LOYALTY_WRITE), description="Create a programme.")
    async def create_loyalty_program(
        self, info: Info, input: LoyaltyProgramInput, idempotency_key: IdempotencyKey = None
    ) -> LoyaltyProgram:
        data = validated(schemas.ProgramCreate, _unset_nulls(plain(input)))
        created = await idempotent(
            info,
            idempotency_key,
            schemas.Program,
            lambda conn: service.create_program(conn, data),
        )
        return LoyaltyProgram.of(created)

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Change a programme; with ifMatchVersion, only if still at that version.",
    )
    async def update_loyalty_program(
        self,
        info: Info,
        id: strawberry.ID,
        input: LoyaltyProgramPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyProgram:
        program_id = parse_id(id)
        patch = validated(schemas.ProgramUpdate, plain(input))
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.Program,
            lambda conn: service.update_program(conn, program_id, patch, expected=expected),
        )
        return LoyaltyProgram.of(updated)

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Delete a programme without accounts; answers its id.",
    )
    async def delete_loyalty_program(
        self,
        info: Info,
        id: strawberry.ID,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> strawberry.ID:
        return await idempotent_delete(
            info,
            id,
            if_match_version,
            idempotency_key,
            lambda conn, target, expected: service.delete_program(conn, target, expected=expected),
        )

    @strawberry.mutation(extensions=needs(Scope.LOYALTY_WRITE), description="Add a reward.")
    async def create_loyalty_reward(
        self,
        info: Info,
        program_id: strawberry.ID,
        input: LoyaltyRewardInput,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyReward:
        program = parse_id(program_id, "programId")
        data = validated(schemas.RewardCreate, _unset_nulls(plain(input)))
        created = await idempotent(
            info,
            idempotency_key,
            schemas.Reward,
            lambda conn: service.create_reward(conn, program, data),
        )
        return from_model(LoyaltyReward, created)

    @strawberry.mutation(extensions=needs(Scope.LOYALTY_WRITE), description="Change a reward.")
    async def update_loyalty_reward(
        self,
        info: Info,
        program_id: strawberry.ID,
        id: strawberry.ID,
        input: LoyaltyRewardPatchInput,
        if_match_version: int | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyReward:
        program, reward = parse_id(program_id, "programId"), parse_id(id)
        patch = validated(schemas.RewardUpdate, plain(input))
        expected = expected_versions(if_match_version)
        updated = await idempotent(
            info,
            idempotency_key,
            schemas.Reward,
            lambda conn: service.update_reward(conn, program, reward, patch, expected=expected),
        )
        return from_model(LoyaltyReward, updated)

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Enrol a live customer; an existing enrolment is answered as is.",
    )
    async def enrol_loyalty_account(
        self,
        info: Info,
        customer_id: strawberry.ID,
        program_id: strawberry.ID,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyAccount:
        data = validated(schemas.Enrolment, {"customer_id": customer_id, "program_id": program_id})
        account, _ = await idempotent(
            info,
            idempotency_key,
            tuple[schemas.Account, bool],
            lambda conn: service.enrol(conn, data),
        )
        return LoyaltyAccount.of(account)

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Earn points, exactly or from a purchase amount.",
    )
    async def earn_loyalty_points(
        self,
        info: Info,
        account_id: strawberry.ID,
        input: LoyaltyEarnInput,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyEntry:
        request = validated(schemas.EarnRequest, plain(input))
        return await _write(
            info, service.earn, parse_id(account_id, "accountId"), request, idempotency_key
        )

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Spend points or buy a reward; oldest lots first.",
    )
    async def redeem_loyalty_points(
        self,
        info: Info,
        account_id: strawberry.ID,
        input: LoyaltyRedeemInput,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyEntry:
        request = validated(schemas.RedeemRequest, _unset_nulls(plain(input)))
        return await _write(
            info, service.redeem, parse_id(account_id, "accountId"), request, idempotency_key
        )

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE), description="Correct a balance, with a reason."
    )
    async def adjust_loyalty_points(
        self,
        info: Info,
        account_id: strawberry.ID,
        input: LoyaltyAdjustInput,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyEntry:
        request = validated(schemas.AdjustRequest, plain(input))
        return await _write(
            info, service.adjust, parse_id(account_id, "accountId"), request, idempotency_key
        )

    @strawberry.mutation(
        extensions=needs(Scope.LOYALTY_WRITE),
        description="Reverse an entry in full or in part, with a reason.",
    )
    async def reverse_loyalty_entry(
        self,
        info: Info,
        id: strawberry.ID,
        input: LoyaltyReverseInput,
        idempotency_key: IdempotencyKey = None,
    ) -> LoyaltyEntry:
        request = validated(schemas.ReverseRequest, plain(input))
        return await _write(info, service.reverse, parse_id(id), request, idempotency_key)
