"""API key lifecycle: issue, list, revoke, rotate, and the lookup behind authentication."""

import secrets
import uuid
from datetime import timedelta

import sqlalchemy as sa

from crm_api.api_keys.models import api_keys as t
from crm_api.api_keys.schemas import ApiKey, ApiKeyCreate, ApiKeyUpdate, ApiKeyWithSecret
from crm_api.core import db
from crm_api.core.auth import Lookup, Principal, hash_secret
from crm_api.core.db import Compiled, Connection
from crm_api.core.errors import NotFound
from crm_api.core.ids import new_id
from crm_api.core.pagination import Keyset
from crm_api.core.scopes import Scope, expand

KEY_PREFIX = "crm_"
_PREFIX_LENGTH = len(KEY_PREFIX) + 8

_usable = sa.and_(
    t.c.revoked_at.is_(None), sa.or_(t.c.expires_at.is_(None), t.c.expires_at > sa.func.now())
)
_hash = sa.bindparam("hash", type_=sa.LargeBinary)
# Verifying also stamps last_used_at: one round trip, made once per cache period.
_AUTHENTICATE = Compiled.of(
    sa.update(t)
    .where(
        _usable,
        sa.or_(
            t.c.secret_hash == _hash,
            sa.and_(t.c.previous_hash == _hash, t.c.previous_valid_until > sa.func.now()),
        ),
    )
    .values(last_used_at=sa.func.now())
    .returning(
        t.c.id,
        t.c.name,
        t.c.scopes,
        t.c.rate_limit_per_minute,
        # The secret stops working at the key's expiry, a previous one also at its grace end.
        sa.case(
            (t.c.secret_hash == _hash, t.c.expires_at),
            else_=sa.func.least(t.c.expires_at, t.c.previous_valid_until),
        ).label("valid_until"),
    )
)
_ANY_USABLE_ADMIN = Compiled.of(
    sa.select(sa.exists().where(_usable, t.c.scopes.contains([Scope.ADMIN.value])))
)
ORDER = Keyset("api_keys", [t.c.created_at, t.c.id], descending=False)


def _new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def authenticator_lookup(default_rate_limit: int) -> Lookup:
    """The lookup behind authentication, with keys that set no limit of their own limited
    to ``default_rate_limit`` requests per minute (0: no key is limited)."""

    async def authenticate(conn: Connection, digest: bytes) -> Principal | None:
        row = await _AUTHENTICATE.fetchrow(conn, hash=digest)
        if row is None:
            return None
        own_limit = row["rate_limit_per_minute"]
        return Principal(
            key_id=row["id"],
            name=row["name"],
            scopes=expand(set(row["scopes"])),
            valid_until=row["valid_until"],
            rate_limit=(own_limit or default_rate_limit) if default_rate_limit else None,
        )

    return authenticate


def _present(row: db.Record) -> ApiKey:
    return ApiKey.model_validate(dict(row))


async def create_key(
    conn: Connection, actor: uuid.UUID | None, data: ApiKeyCreate
) -> ApiKeyWithSecret:
    secret = _new_secret()
    row = await db.fetchrow(
        conn,
        sa.insert(t)
        .values(
            id=new_id(),
            name=data.name,
            prefix=secret[:_PREFIX_LENGTH],
            secret_hash=hash_secret(secret),
            scopes=sorted({s.value for s in data.scopes}),
            expires_at=data.expires_at,
            rate_limit_per_minute=data.rate_limit_per_minute,
            created_by=actor,
        )
        .returning(t),
    )
    assert row is not None
    return ApiKeyWithSecret(**_present(row).model_dump(), key=secret)


async def get_key(conn: Connection, key_id: uuid.UUID) -> ApiKey:
    row = await db.fetchrow(conn, sa.select(t).where(t.c.id == key_id))
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    return _present(row)


async def list_keys(
    conn: Connection, *, include_revoked: bool, cursor: str | None, limit: int
) -> tuple[list[ApiKey], str | None]:
    query = sa.select(t)
    if not include_revoked:
        query = query.where(t.c.revoked_at.is_(None))
    rows = await db.fetch(conn, ORDER.apply(query, cursor, limit))
    page, next_cursor = ORDER.cut(rows, limit, lambda r: (r["created_at"], r["id"]))
    return [_present(r) for r in page], next_cursor


async def update_key(conn: Connection, key_id: uuid.UUID, data: ApiKeyUpdate) -> ApiKey:
    """Change the fields ``data`` sets; those it leaves out stay."""
    changes = data.model_dump(include=data.model_fields_set)
    found = sa.select(t).where(t.c.id == key_id)
    if changes:
        found = sa.update(t).where(t.c.id == key_id).values(changes).returning(t)
    row = await db.fetchrow(conn, found)
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    return _present(row)


async def revoke_key(conn: Connection, key_id: uuid.UUID) -> ApiKey:
    row = await db.fetchrow(
        conn,
        sa.update(t)
        .where(t.c.id == key_id)
        .values(revoked_at=sa.func.coalesce(t.c.revoked_at, sa.func.now()))
        .returning(t),
    )
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    return _present(row)


async def rotate_key(conn: Connection, key_id: uuid.UUID, grace: timedelta) -> ApiKeyWithSecret:
    """Issue a new secret for the key; the old one works for ``grace`` more."""
    secret = _new_secret()
    row = await db.fetchrow(
        conn,
        sa.update(t)
        .where(t.c.id == key_id, _usable)
        .values(
            previous_hash=t.c.secret_hash if grace else None,
            previous_valid_until=(sa.func.now() + grace) if grace else None,
            secret_hash=hash_secret(secret),
            prefix=secret[:_PREFIX_LENGTH],
            rotated_at=sa.func.now(),
        )
        .returning(t),
    )
    if row is None:
        raise NotFound(f"No usable API key with id {key_id} (it may be revoked or expired).")
    return ApiKeyWithSecret(**_present(row).model_dump(), key=secret)


async def has_usable_admin(conn: Connection) -> bool:
    return bool(await _ANY_USABLE_ADMIN.fetchval(conn))
