"""Idempotency keys: the same POST sent twice with one key is answered once.

A key is claimed in its own short statement (so a concurrent duplicate sees the claim and
gets a 409 instead of waiting), and completed with the response inside the business
transaction, so the stored answer and the change it reports commit together.
"""

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert

from crm_api.core.db import Compiled, Connection, metadata
from crm_api.core.errors import IdempotencyInProgress, IdempotencyKeyReused, ValidationFailed

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("api_key_id", sa.Uuid, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("fingerprint", sa.LargeBinary, nullable=False),
    sa.Column(
        "locked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.SmallInteger),
    sa.Column("response_body", sa.LargeBinary),
    sa.Column("response_headers", JSONB),
    # The database session of the request holding an unanswered claim (its backend pid and
    # start, since pids are reused): when that session is gone, so is the request.
    sa.Column("owner_pid", sa.Integer),
    sa.Column("owner_started_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_idempotency_keys_expires_at", idempotency_keys.c.expires_at)

# A claim older than this with no answer belongs to a request that died mid-flight, even
# when its session cannot be told apart from a live one (behind a transaction pooler).
STALE_CLAIM = timedelta(minutes=1)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

_t = idempotency_keys


def _session_start(pid: sa.ColumnElement[int]) -> sa.ScalarSelect[object]:
    """SQL: when the live session ``pid`` started; null when no such session exists."""
    activity = sa.func.pg_stat_get_activity(pid).table_valued("backend_start")
    return sa.select(activity.c.backend_start).scalar_subquery()


_claim_insert = insert(_t).values(
    api_key_id=sa.bindparam("api_key_id"),
    key=sa.bindparam("key"),
    fingerprint=sa.bindparam("fingerprint"),
    expires_at=sa.func.now() + sa.bindparam("ttl", type_=sa.Interval),
    owner_pid=sa.func.pg_backend_pid(),
    owner_started_at=_session_start(sa.func.pg_backend_pid()),
)
_owner_gone = sa.or_(
    _t.c.locked_at < sa.func.now() - STALE_CLAIM,
    sa.and_(
        _t.c.owner_pid.is_not(None),  # (the function answers every session for null)
        _session_start(_t.c.owner_pid).is_distinct_from(_t.c.owner_started_at),
    ),
)
_CLAIM = Compiled.of(
    _claim_insert.on_conflict_do_update(
        index_elements=[_t.c.api_key_id, _t.c.key],
        set_={
            "fingerprint": _claim_insert.excluded.fingerprint,
            "locked_at": sa.func.now(),
            "expires_at": _claim_insert.excluded.expires_at,
            "owner_pid": _claim_insert.excluded.owner_pid,
            "owner_started_at": _claim_insert.excluded.owner_started_at,
            "status_code": None,
            "response_body": None,
            "response_headers": None,
        },
        where=sa.or_(
            _t.c.expires_at < sa.func.now(),
            sa.and_(_t.c.status_code.is_(None), _owner_gone),
        ),
    ).returning(sa.literal(True))
)
_match = sa.and_(_t.c.api_key_id == sa.bindparam("api_key_id"), _t.c.key == sa.bindparam("key"))
_STORED = Compiled.of(
    sa.select(_t.c.fingerprint, _t.c.status_code, _t.c.response_body, _t.c.response_headers).where(
        _match
    )
)
_COMPLETE = Compiled.of(
    sa.update(_t)
    .where(_match)
    .values(
        status_code=sa.bindparam("status_code"),
        response_body=sa.bindparam("response_body"),
        response_headers=sa.bindparam("response_headers"),
    )
)
_RELEASE = Compiled.of(sa.delete(_t).where(_match, _t.c.status_code.is_(None)))


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    api_key_id: uuid.UUID
    key: str


def fingerprint(method: str, path: str, query: str, body: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def claim(
    conn: Connection,
    api_key_id: uuid.UUID,
    key: str,
    print_: bytes,
    ttl: timedelta,
    *,
    field: str = "Idempotency-Key",
    location: str = "header",
) -> Claim | StoredResponse:
    """Own the key for this request, or learn the answer a previous request stored.

    ``field`` and ``location`` say where the client sent the key, for its errors.
    """
    if not _KEY.match(key):
        raise ValidationFailed.for_field(
            field, "must be 1-255 printable ASCII characters", location=location
        )
    params = {"api_key_id": api_key_id, "key": key}
    if await _CLAIM.fetchval(conn, fingerprint=print_, ttl=ttl, **params):
        return Claim(api_key_id, key)
    stored = await _STORED.fetchrow(conn, **params)
    if stored is None:  # expired and purged between the two statements
        return await claim(conn, api_key_id, key, print_, ttl, field=field, location=location)
    if stored["fingerprint"] != print_:
        raise IdempotencyKeyReused.for_field(
            field,
            "was already used with a different request; use a new key for a new request",
            location=location,
        )
    if stored["status_code"] is None:
        raise IdempotencyInProgress(
            f"A request with this {field} is still in progress; retry after it finishes.",
            headers={"Retry-After": "1"},
        )
    return StoredResponse(
        stored["status_code"], stored["response_body"], stored["response_headers"]
    )


async def complete(conn: Connection, owned: Claim, answer: StoredResponse) -> None:
    await _COMPLETE.execute(
        conn,
        api_key_id=owned.api_key_id,
        key=owned.key,
        status_code=answer.status_code,
        response_body=answer.body,
        response_headers=answer.headers,
    )


async def release(conn: Connection, owned: Claim) -> None:
    await _RELEASE.execute(conn, api_key_id=owned.api_key_id, key=owned.key)


_PURGE = Compiled.of(sa.delete(_t).where(_t.c.expires_at < sa.func.now()))


async def purge_expired(conn: Connection) -> int:
    """Delete answers past their time to live; the number deleted."""
    status = await _PURGE.execute(conn)
    return int(status.split()[-1])
