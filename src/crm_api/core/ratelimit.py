"""Rate limits per API key: one token bucket per key, shared by every server process.

A key's bucket holds up to ``limit`` tokens and refills continuously at ``limit`` per
minute; each authenticated request takes one, and a request finding none gets a 429.
The bucket lives in Redis when ``redis_url`` is set, else in PostgreSQL (an UNLOGGED
table). A shared round trip per request would cost as much as the request itself, so a
process leases tokens in chunks of ``max(1, limit // 100)`` into a local stash and serves
from it. A lease older than a second is dropped with its unused tokens, so a stash never
outlives a burst by much; all processes together admit at most ``processes x chunk``
requests (1% of the limit per process) beyond the limit.
"""

import math
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
import sqlalchemy as sa

from crm_api.core.db import Database, metadata
from crm_api.core.errors import Problem, ProblemError
from crm_api.core.single_flight import SingleFlight

rate_limit_buckets = sa.Table(
    "rate_limit_buckets",
    metadata,
    sa.Column("api_key_id", sa.Uuid, primary_key=True),
    sa.Column("tokens", sa.Double, nullable=False),
    sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
    # Rewritten constantly; a crash that loses it merely refills every bucket.
    prefixes=["UNLOGGED"],
)

LEASE_SECONDS = 1.0
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After")
HEADERS_STATE = "rate_limit_headers"  # where the check leaves its headers for RequestContext


class RateLimited(ProblemError):
    status, slug = 429, "rate-limited"
    headers_of_limit: list[tuple[bytes, bytes]]  # the RateLimit headers of the refusal


RATE_LIMITED_RESPONSE: dict[int | str, dict[str, Any]] = {
    429: {
        "model": Problem,
        "description": "Too Many Requests: the key's rate limit is used up.",
        "headers": {
            "Retry-After": {
                "description": "Seconds until the key's next request is admitted.",
                "schema": {"type": "integer"},
            },
            "RateLimit-Limit": {
                "description": "Requests per minute the key may make.",
                "schema": {"type": "integer"},
            },
            "RateLimit-Remaining": {
                "description": "Requests the key may make now: 0 here.",
                "schema": {"type": "integer"},
            },
            "RateLimit-Reset": {
                "description": "Seconds until the key's bucket is full again.",
                "schema": {"type": "integer"},
            },
        },
    }
}


class SharedBuckets(Protocol):
    async def lease(self, key_id: uuid.UUID, capacity: int, chunk: int) -> tuple[int, float]:
        """Refill the key's bucket, take up to ``chunk`` whole tokens from it; returns the
        tokens taken and the tokens left."""
        ...

    async def close(self) -> None: ...


# Parameters: $1 key, $2 capacity, $3 refill per second, $4 chunk. Locking the row first
# makes the grant it reports the one it stores while other processes lease concurrently.
# (A key's very first leases, racing to insert its row, may each be granted from a full
# bucket: one chunk more per process, once, within the bound above.)
_PG_LEASE = """
WITH prior AS (
    SELECT tokens, refilled_at FROM rate_limit_buckets WHERE api_key_id = $1 FOR UPDATE
), refilled AS (
    SELECT coalesce(
        (SELECT least($2::float8, tokens + greatest(0, extract(epoch FROM now() - refilled_at))
                                           ::float8 * $3::float8) FROM prior),
        $2::float8
    ) AS available
), lease AS (
    SELECT available, least($4::int, floor(available))::int AS granted FROM refilled
)
INSERT INTO rate_limit_buckets AS b (api_key_id, tokens, refilled_at)
SELECT $1, available - granted, now() FROM lease
ON CONFLICT (api_key_id) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at
RETURNING (SELECT granted FROM lease), b.tokens
"""


class PostgresBuckets:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def lease(self, key_id: uuid.UUID, capacity: int, chunk: int) -> tuple[int, float]:
        # On the pool: autocommit, the connection held for this one statement only.
        row = await self._db.pool.fetchrow(_PG_LEASE, key_id, capacity, capacity / 60, chunk)
        assert row is not None
        return row[0], row[1]

    async def close(self) -> None:
        """The pool belongs to the app's database."""


# KEYS[1] the bucket; ARGV capacity, refill per second, chunk. A full bucket is the same
# as none, so the key expires when it would be full again.
_REDIS_LEASE = """
local capacity, rate, chunk = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = capacity
if state[1] then
  tokens = math.min(capacity, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
local granted = math.min(chunk, math.floor(tokens))
tokens = tokens - granted
local left = string.format('%.17g', tokens)
redis.call('HSET', KEYS[1], 'tokens', left, 'at', string.format('%.17g', now))
redis.call('EXPIRE', KEYS[1], math.max(1, math.ceil((capacity - tokens) / rate)))
return {granted, left}
"""


class RedisBuckets:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)
        self._script = self._redis.register_script(_REDIS_LEASE)

    async def lease(self, key_id: uuid.UUID, capacity: int, chunk: int) -> tuple[int, float]:
        granted, left = await self._script(
            keys=[f"crm:rate-limit:{key_id}"], args=[capacity, capacity / 60, chunk]
        )
        return int(granted), float(left)

    async def close(self) -> None:
        await self._redis.aclose()


@dataclass(slots=True)
class _Stash:
    tokens: int  # leased by this process, not used yet
    shared: float  # what the shared bucket held after the lease
    leased_at: float  # time.monotonic()


class RateLimiter:
    """Admits a key's requests from the local stash, leasing from the shared bucket.

    Concurrent requests of one key share one lease in flight, so a burst does not lease
    a chunk per request only to forfeit most of them. After a lease found the bucket
    empty, requests are refused here until its next token is due: tokens only ever come
    from the refill, which every process computes alike.
    """

    def __init__(self, buckets: SharedBuckets) -> None:
        self.buckets = buckets
        self._stashes: dict[uuid.UUID, _Stash] = {}
        self._leases: SingleFlight[uuid.UUID, None] = SingleFlight()

    async def admit(self, key_id: uuid.UUID, limit: int) -> list[tuple[bytes, bytes]]:
        """Take one of the key's tokens; returns the RateLimit headers, or raises
        RateLimited when the key's bucket is empty."""
        while True:
            now = time.monotonic()
            stash = self._stashes.get(key_id)
            if stash is not None:
                if stash.tokens >= 1 and now - stash.leased_at <= LEASE_SECONDS:
                    stash.tokens -= 1
                    return _headers(limit, stash, now)
                if stash.tokens < 1 and _level(limit, stash, now) < 1:
                    raise _refusal(limit, stash, now)
            await self._leases.run(key_id, lambda: self._lease(key_id, limit))

    async def _lease(self, key_id: uuid.UUID, limit: int) -> None:
        granted, shared = await self.buckets.lease(key_id, limit, max(1, limit // 100))
        self._stashes[key_id] = _Stash(granted, shared, time.monotonic())


def _level(limit: int, stash: _Stash, now: float) -> float:
    """What the key has left: its stash here plus the shared bucket, refilled since."""
    return min(limit, stash.tokens + stash.shared + (now - stash.leased_at) * limit / 60)


def _refusal(limit: int, stash: _Stash, now: float) -> RateLimited:
    until_one = max(1, math.ceil((1 - _level(limit, stash, now)) * 60 / limit))
    refused = RateLimited(
        f"This API key may make {limit} requests per minute; retry in {until_one} s.",
        headers={"Retry-After": str(until_one)},
    )
    refused.headers_of_limit = _headers(limit, stash, now)
    return refused


def _headers(limit: int, stash: _Stash, now: float) -> list[tuple[bytes, bytes]]:
    level = _level(limit, stash, now)
    return [
        (b"ratelimit-limit", str(limit).encode()),
        (b"ratelimit-remaining", str(math.floor(level)).encode()),
        (b"ratelimit-reset", str(math.ceil((limit - level) * 60 / limit)).encode()),
    ]


async def enforce(
    app_state: Any, scope: MutableMapping[str, Any], key_id: uuid.UUID, limit: int | None
) -> None:
    """Count a request of key ``key_id`` (``limit`` per minute; None: unlimited) against
    its bucket; the RateLimit headers go to the request's state for RequestContext."""
    limiter: RateLimiter | None = app_state.rate_limiter
    if limiter is None or limit is None:
        return
    state = scope.setdefault("state", {})
    try:
        state[HEADERS_STATE] = await limiter.admit(key_id, limit)
    except RateLimited as refused:
        state[HEADERS_STATE] = refused.headers_of_limit
        raise


def shared_buckets(db: Database, redis_url: str | None) -> SharedBuckets:
    return RedisBuckets(redis_url) if redis_url else PostgresBuckets(db)
