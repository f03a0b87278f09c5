"""REST transport of loyalty programmes, rewards, accounts and the points ledger."""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Path, Request
from pydantic import BaseModel
from starlette.responses import Response

from crm_api.core.auth import requires
from crm_api.core.errors import responses
from crm_api.core.http import IfMatch, etag, expected_versions
from crm_api.core.pagination import Cursor, Limit, Page
from crm_api.core.routing import domain_router
from crm_api.core.scopes import Scope
from crm_api.core.uow import UnitOfWork, reads, unit_of_work
from crm_api.loyalty import service
from crm_api.loyalty.schemas import (
    Account,
    AdjustRequest,
    EarnRequest,
    Enrolment,
    Entry,
    Program,
    ProgramCreate,
    ProgramUpdate,
    RedeemRequest,
    ReverseRequest,
    Reward,
    RewardCreate,
    RewardUpdate,
)
from crm_api.loyalty.writer import LedgerWriter

LOYALTY = "/v1/loyalty"
programs_router = domain_router(prefix=f"{LOYALTY}/programs", tag="loyalty-programs")
rewards_router = domain_router(prefix=f"{LOYALTY}/programs", tag="loyalty-rewards")
accounts_router = domain_router(prefix=f"{LOYALTY}/accounts", tag="loyalty-accounts")
entries_router = domain_router(prefix=f"{LOYALTY}/entries", tag="loyalty-entries")
Reader = requires(Scope.LOYALTY_READ)
Writing = unit_of_work(Scope.LOYALTY_WRITE)
# Most earns and redeems share a transaction with concurrent ones (see writer.py).
Ledgering = unit_of_work(Scope.LOYALTY_WRITE, deferred=True)
ProgramId = Annotated[uuid.UUID, Path(description="The programme's id.")]
RewardId = Annotated[uuid.UUID, Path(description="The reward's id.")]
AccountId = Annotated[uuid.UUID, Path(description="The account's id.")]
EntryId = Annotated[uuid.UUID, Path(description="The entry's id.")]
REPLAYED = {
    200: {
        "model": Entry,
        "description": "This API key already made an entry with this Idempotency-Key on the "
        "account: that entry, with `Idempotent-Replayed: true`.",
    }
}


def _json(model: BaseModel, headers: dict[str, str]) -> Response:
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def _versioned(model: Program | Reward | Account, location: str) -> dict[str, str]:
    return {"ETag": etag(model.version), "Location": location}


def _program_headers(program: Program) -> dict[str, str]:
    return _versioned(program, f"{LOYALTY}/programs/{program.id}")


def _reward_headers(reward: Reward) -> dict[str, str]:
    return _versioned(reward, f"{LOYALTY}/programs/{reward.program_id}/rewards/{reward.id}")


def _account_headers(account: Account) -> dict[str, str]:
    return _versioned(account, f"{LOYALTY}/accounts/{account.id}")


def _key(request: Request) -> str | None:
    return request.headers.get("Idempotency-Key")


async def _earn_or_redeem(
    uow: UnitOfWork,
    request: Request,
    account_id: uuid.UUID,
    body: EarnRequest | RedeemRequest,
    write: Callable[..., Awaitable[tuple[Entry, bool]]],
) -> Response:
    async with uow:
        entry, replayed = None, False
        if not uow.in_transaction:  # no Idempotency-Key to commit with it
            writer: LedgerWriter = request.app.state.ledger_writer
            entry = await writer.write(account_id, body, actor=uow.principal.key_id)
        if entry is None:
            entry, replayed = await write(
                await uow.begin(), account_id, body, actor=uow.principal.key_id, key=_key(request)
            )
        return await _entry_answer(uow, entry, replayed)


async def _entry_answer(uow: UnitOfWork, entry: Entry, replayed: bool) -> Response:
    headers = {"Location": f"{LOYALTY}/entries/{entry.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return await uow.commit(entry, status_code=200 if replayed else 201, headers=headers)


# -- programmes ----------------------------------------------------------------------


@programs_router.post("", status_code=201, response_model=Program, responses=responses(409))
async def loyalty_programs_create(body: ProgramCreate, uow: Writing) -> Response:
    """Create a loyalty programme: its currency and earn rate (points per major unit,
    rounded once per earn), optional auto-earn on purchases, expiry and lock periods, and
    tiers (qualifying on points *earned* in a rolling window, never on the balance)."""
    async with uow:
        program = await service.create_program(uow.conn, body)
        return await uow.commit(program, status_code=201, headers=_program_headers(program))


@programs_router.get("", response_model=Page[Program])
async def loyalty_programs_list(
    principal: Reader, request: Request, cursor: Cursor = None, limit: Limit = 50
) -> Page[Program]:
    """List programmes, oldest first."""
    data, next_cursor = await service.list_programs(reads(request), cursor=cursor, limit=limit)
    return Page[Program](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@programs_router.get("/{program_id}", response_model=Program, responses=responses(404))
async def loyalty_programs_get(
    program_id: ProgramId, principal: Reader, request: Request
) -> Response:
    """Get one programme."""
    program = await service.get_program(reads(request), program_id)
    return _json(program, _program_headers(program))


@programs_router.patch("/{program_id}", response_model=Program, responses=responses(404, 409, 412))
async def loyalty_programs_update(
    program_id: ProgramId, body: ProgramUpdate, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Change some fields; those left out stay. Honours `If-Match`. New rules apply to
    entries from now on; the currency cannot change once the programme has accounts (409)."""
    async with uow:
        program = await service.update_program(
            uow.conn, program_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(program, headers=_program_headers(program))


@programs_router.delete("/{program_id}", status_code=204, responses=responses(404, 409, 412))
async def loyalty_programs_delete(
    program_id: ProgramId, uow: Writing, if_match: IfMatch = None
) -> Response:
    """Delete a programme without accounts (409 otherwise: ledgers are kept), and its rewards."""
    async with uow:
        await service.delete_program(uow.conn, program_id, expected=expected_versions(if_match))
        return await uow.commit(status_code=204)


# -- rewards -------------------------------------------------------------------------


@rewards_router.post(
    "/{program_id}/rewards", status_code=201, response_model=Reward, responses=responses(404)
)
async def loyalty_rewards_create(
    program_id: ProgramId, body: RewardCreate, uow: Writing
) -> Response:
    """Add a reward to the programme's catalogue: its cost in points and its stock."""
    async with uow:
        reward = await service.create_reward(uow.conn, program_id, body)
        return await uow.commit(reward, status_code=201, headers=_reward_headers(reward))


@rewards_router.get("/{program_id}/rewards", response_model=Page[Reward], responses=responses(404))
async def loyalty_rewards_list(
    program_id: ProgramId,
    principal: Reader,
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Reward]:
    """The programme's rewards, oldest first."""
    data, next_cursor = await service.list_rewards(
        reads(request), program_id, cursor=cursor, limit=limit
    )
    return Page[Reward](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@rewards_router.get(
    "/{program_id}/rewards/{reward_id}", response_model=Reward, responses=responses(404)
)
async def loyalty_rewards_get(
    program_id: ProgramId, reward_id: RewardId, principal: Reader, request: Request
) -> Response:
    """Get one reward."""
    reward = await service.get_reward(reads(request), program_id, reward_id)
    return _json(reward, _reward_headers(reward))


@rewards_router.patch(
    "/{program_id}/rewards/{reward_id}",
    response_model=Reward,
    responses=responses(404, 409, 412),
)
async def loyalty_rewards_update(
    program_id: ProgramId,
    reward_id: RewardId,
    body: RewardUpdate,
    uow: Writing,
    if_match: IfMatch = None,
) -> Response:
    """Change a reward; `stock` sets the stock, `add_stock` tops it up. Honours `If-Match`."""
    async with uow:
        reward = await service.update_reward(
            uow.conn, program_id, reward_id, body, expected=expected_versions(if_match)
        )
        return await uow.commit(reward, headers=_reward_headers(reward))


# -- accounts ------------------------------------------------------------------------


ENROLLED: dict[int | str, dict[str, Any]] = {
    200: {"model": Account, "description": "The customer was enrolled already: that account."}
}


@accounts_router.post(
    "", status_code=201, response_model=Account, responses=ENROLLED | responses(409)
)
async def loyalty_accounts_enrol(body: Enrolment, uow: Writing) -> Response:
    """Enrol a live customer in a programme: 201 with the new account, or 200 with the one
    they have (enrolment is idempotent, for partner syncs). Earning also enrols."""
    async with uow:
        account, created = await service.enrol(uow.conn, body)
        return await uow.commit(
            account, status_code=201 if created else 200, headers=_account_headers(account)
        )


@accounts_router.get("", response_model=Page[Account])
async def loyalty_accounts_list(
    principal: Reader,
    request: Request,
    customer_id: uuid.UUID | None = None,
    program_id: uuid.UUID | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Account]:
    """Accounts, oldest first; of one customer and/or one programme."""
    data, next_cursor = await service.list_accounts(
        reads(request),
        customer_id=customer_id,
        program_id=program_id,
        cursor=cursor,
        limit=limit,
    )
    return Page[Account](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


@accounts_router.get("/{account_id}", response_model=Account, responses=responses(404))
async def loyalty_accounts_get(
    account_id: AccountId, principal: Reader, request: Request
) -> Response:
    """An account: its balance split into available and locked points, lifetime earnings,
    tier, and progress towards the next tier (points earned in the window, not balance)."""
    account = await service.get_account(reads(request), account_id)
    return _json(account, _account_headers(account))


@accounts_router.get("/{account_id}/entries", response_model=Page[Entry], responses=responses(404))
async def loyalty_accounts_entries(
    account_id: AccountId,
    principal: Reader,
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[Entry]:
    """The account's ledger, newest first. Entries are never changed or removed."""
    data, next_cursor = await service.list_entries(
        reads(request), account_id, cursor=cursor, limit=limit
    )
    return Page[Entry](data=data, next_cursor=next_cursor, has_more=next_cursor is not None)


LEDGER_WRITE = REPLAYED | responses(404, 409)


@accounts_router.post(
    "/{account_id}/earn", status_code=201, response_model=Entry, responses=LEDGER_WRITE
)
async def loyalty_accounts_earn(
    account_id: AccountId, body: EarnRequest, uow: Ledgering, request: Request
) -> Response:
    """Earn points: exactly `points` (no multiplier), or for a purchase `amount` in the
    programme's currency (points per unit x the tier's multiplier, rounded once). The
    points form a lot that is locked for the programme's lock period and expires after its
    expiry period. A tier the earned-in-window points now reach is granted at once.

    Answers the entry (GET the account for available and locked points). With an
    `Idempotency-Key` this key already used on the account: 200 with that entry.
    """
    return await _earn_or_redeem(uow, request, account_id, body, service.earn)


@accounts_router.post(
    "/{account_id}/redeem", status_code=201, response_model=Entry, responses=LEDGER_WRITE
)
async def loyalty_accounts_redeem(
    account_id: AccountId, body: RedeemRequest, uow: Ledgering, request: Request
) -> Response:
    """Spend available points, or buy `quantity` of a catalogue reward with them; the oldest
    lots are used first. More than is available is a 409 `insufficient-points` (saying
    how many are available) and changes nothing; so is a reward out of stock.
    """
    return await _earn_or_redeem(uow, request, account_id, body, service.redeem)


@accounts_router.post(
    "/{account_id}/adjust", status_code=201, response_model=Entry, responses=LEDGER_WRITE
)
async def loyalty_accounts_adjust(
    account_id: AccountId, body: AdjustRequest, uow: Writing, request: Request
) -> Response:
    """Correct a balance, with a reason. Added points are available at once and expire per
    the programme; removed ones come from the oldest available lots (409 if not enough)."""
    async with uow:
        entry, replayed = await service.adjust(
            uow.conn, account_id, body, actor=uow.principal.key_id, key=_key(request)
        )
        return await _entry_answer(uow, entry, replayed)


# -- entries -------------------------------------------------------------------------


@entries_router.get("/{entry_id}", response_model=Entry, responses=responses(404))
async def loyalty_entries_get(entry_id: EntryId, principal: Reader, request: Request) -> Response:
    """Get one ledger entry."""
    entry = await service.get_entry(reads(request), entry_id)
    return _json(entry, {})


@entries_router.post(
    "/{entry_id}/reverse", status_code=201, response_model=Entry, responses=LEDGER_WRITE
)
async def loyalty_entries_reverse(
    entry_id: EntryId, body: ReverseRequest, uow: Writing, request: Request
) -> Response:
    """Reverse an entry, in full or `points` of it, with a reason. A credit's points are
    taken back (from its own lot first; 409 if already spent); a debit's are given back
    to the lots they came from, with their original expiry (and reward stock returns).
    Expiries and reversals cannot be reversed, nor more than an entry's points in total.
    """
    async with uow:
        entry, replayed = await service.reverse(
            uow.conn, entry_id, body, actor=uow.principal.key_id, key=_key(request)
        )
        return await _entry_answer(uow, entry, replayed)
