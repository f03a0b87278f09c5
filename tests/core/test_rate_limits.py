"""Rate limits per API key: a token bucket per key, shared by every server process, with
its figures in RateLimit headers on every authenticated response."""

import asyncio
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from crm_api.app import create_app
from crm_api.config import Settings
from live import serve, settings_for
from support import assert_problem

DEFAULT_LIMIT = 6000
REDIS_URL = "redis://127.0.0.1:6379/0"
CUSTOMERS = "/v1/customers"
GRAPHQL_CUSTOMERS = {"query": "{ customers(first: 1) { edges { node { id } } } }"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url, rate_limit_per_minute=DEFAULT_LIMIT)


@pytest.fixture
def limited_key(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Issue a key with ``limit`` requests per minute; returns its auth headers."""

    async def issue(limit: int | None, *scopes: str) -> dict[str, str]:
        response = await api.post(
            "/v1/api-keys",
            json={
                "name": "limited",
                "scopes": list(scopes or ["customers:read"]),
                "rate_limit_per_minute": limit,
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["rate_limit_per_minute"] == limit
        return {"Authorization": f"Bearer {response.json()['key']}"}

    return issue


def figures(response: httpx.Response) -> tuple[int, int, int]:
    """RateLimit-Limit, -Remaining and -Reset of ``response``."""
    h = response.headers
    return int(h["ratelimit-limit"]), int(h["ratelimit-remaining"]), int(h["ratelimit-reset"])


async def test_the_request_past_the_limit_is_refused_with_when_to_retry(api, limited_key):
    key = await limited_key(5)

    answers = [await api.get(CUSTOMERS, headers=key) for _ in range(6)]

    assert [a.status_code for a in answers[:5]] == [200] * 5
    # 5 a minute is a token every 12 s: one used leaves 4 and 12 s until the bucket is full.
    assert [figures(a) for a in answers[:5]] == [
        (5, 4, 12),
        (5, 3, 24),
        (5, 2, 36),
        (5, 1, 48),
        (5, 0, 60),
    ]
    refused = answers[5]
    body = assert_problem(refused, 429, "rate-limited")
    assert "5 requests per minute" in body["detail"]
    # The bucket is all but empty: the next token comes in (just under) 12 s.
    assert int(refused.headers["retry-after"]) in (11, 12)
    assert figures(refused)[:2] == (5, 0)


async def test_every_authenticated_answer_carries_the_figures_but_anonymous_ones_do_not(
    api, client, limited_key
):
    key = await limited_key(10)

    missing = await api.get(f"{CUSTOMERS}/{uuid.uuid4()}", headers=key)
    forbidden = await api.get("/v1/segments", headers=key)  # a 403 costs a token as well
    invalid = await api.get(CUSTOMERS, params={"limit": 0}, headers=key)
    anonymous = await client.get(CUSTOMERS)
    health = await client.get("/healthz")

    assert_problem(missing, 404, "not-found")
    assert_problem(forbidden, 403, "forbidden")
    assert_problem(invalid, 422, "validation-error")
    assert [figures(r)[:2] for r in (missing, forbidden, invalid)] == [(10, 9), (10, 8), (10, 7)]
    assert_problem(anonymous, 401, "unauthorized")
    for unlimited in (anonymous, health):
        assert not any(h.startswith("ratelimit-") for h in unlimited.headers)


async def test_graphql_takes_from_the_same_bucket_as_rest(api, limited_key):
    key = await limited_key(3)

    rest = await api.get(CUSTOMERS, headers=key)
    graphql = [await api.post("/graphql", json=GRAPHQL_CUSTOMERS, headers=key) for _ in range(3)]

    assert figures(rest)[:2] == (3, 2)
    assert [g.status_code for g in graphql[:2]] == [200, 200]
    assert "errors" not in graphql[0].json()
    assert [figures(g)[:2] for g in graphql[:2]] == [(3, 1), (3, 0)]
    assert_problem(graphql[2], 429, "rate-limited")
    assert int(graphql[2].headers["retry-after"]) >= 1
    assert_problem(await api.get(CUSTOMERS, headers=key), 429, "rate-limited")


async def test_the_bucket_refills_at_the_limit_per_minute(api, limited_key):
    key = await limited_key(60)  # a token a second

    answers = [await api.get(CUSTOMERS, headers=key) for _ in range(61)]
    assert [a.status_code for a in answers] == [200] * 60 + [429]
    assert answers[60].headers["retry-after"] == "1"
    await asyncio.sleep(1.1)

    assert (await api.get(CUSTOMERS, headers=key)).status_code == 200
    assert (await api.get(CUSTOMERS, headers=key)).status_code == 429


async def test_a_keys_limit_is_set_changed_and_shown_through_the_api(api, limited_key):
    key = await limited_key(5)
    key_id = (await api.get("/v1/api-keys")).json()["data"][-1]["id"]
    assert figures(await api.get(CUSTOMERS, headers=key))[0] == 5

    lowered = await api.patch(f"/v1/api-keys/{key_id}", json={"rate_limit_per_minute": 2})
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["rate_limit_per_minute"] == 2
    assert (await api.get(f"/v1/api-keys/{key_id}")).json()["rate_limit_per_minute"] == 2
    assert figures(await api.get(CUSTOMERS, headers=key))[0] == 2

    refused = await api.patch(f"/v1/api-keys/{key_id}", json={"rate_limit_per_minute": 0})
    assert_problem(refused, 422, "validation-error")
    untouched = await api.patch(f"/v1/api-keys/{key_id}", json={})
    assert untouched.json()["rate_limit_per_minute"] == 2

    reset = await api.patch(f"/v1/api-keys/{key_id}", json={"rate_limit_per_minute": None})
    assert reset.json()["rate_limit_per_minute"] is None
    assert figures(await api.get(CUSTOMERS, headers=key))[0] == DEFAULT_LIMIT
    assert_problem(
        await api.patch(f"/v1/api-keys/{uuid.uuid4()}", json={"rate_limit_per_minute": 3}),
        404,
        "not-found",
    )


async def test_a_limit_of_zero_switches_limiting_off_for_every_key(database_url, admin_key):
    off = create_app(settings_for(database_url, rate_limit_per_minute=0))
    async with running(off, admin_key) as http:
        created = await http.post(
            "/v1/api-keys",
            json={"name": "one a minute", "scopes": ["customers:read"], "rate_limit_per_minute": 1},
        )
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        answers = [await http.get(CUSTOMERS, headers=key) for _ in range(5)]

    assert [a.status_code for a in answers] == [200] * 5
    assert not any(h.startswith("ratelimit-") for a in answers for h in a.headers)


@pytest.mark.parametrize("backend", ["postgresql", "redis"])
async def test_two_server_processes_share_one_bucket(backend, database_url, api, limited_key):
    overrides: dict[str, Any] = {"rate_limit_per_minute": DEFAULT_LIMIT}
    if backend == "redis":
        if not redis_reachable():
            pytest.skip(f"no Redis answers at {REDIS_URL}")
        overrides["redis_url"] = REDIS_URL
    key = await limited_key(4)

    with two_servers(settings_for(database_url, **overrides)) as (first, second):
        async with httpx.AsyncClient(headers=key, timeout=30) as http:
            answers = [
                await http.get(f"{server}{CUSTOMERS}")
                for server in (first, second, first, second, first, second)
            ]

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429, 429]
    assert [figures(a)[1] for a in answers[:4]] == [3, 2, 1, 0]


async def test_a_redis_bucket_expires_when_it_would_be_full_again(
    database_url, admin_key, api, limited_key
):
    if not redis_reachable():
        pytest.skip(f"no Redis answers at {REDIS_URL}")
    key = await limited_key(6)  # a token every 10 s
    key_id = (await api.get("/v1/api-keys")).json()["data"][-1]["id"]
    on_redis = create_app(
        settings_for(database_url, rate_limit_per_minute=DEFAULT_LIMIT, redis_url=REDIS_URL)
    )
    async with running(on_redis, admin_key) as http:
        for _ in range(2):
            assert (await http.get(CUSTOMERS, headers=key)).status_code == 200

    store = redis.Redis.from_url(REDIS_URL)
    try:
        ttl = await store.ttl(f"crm:rate-limit:{key_id}")
    finally:
        await store.aclose()
    assert ttl in (19, 20)  # two tokens short of full: 20 s of refill


async def test_servers_together_admit_at_most_a_chunk_each_over_the_limit(
    database_url, api, limited_key
):
    # 200 a minute leases 2 tokens at a time: two processes may each hold a lease unused,
    # and the bucket refills while the burst lasts.
    limit, chunk = 200, 2
    key = await limited_key(limit)

    with two_servers(settings_for(database_url, rate_limit_per_minute=DEFAULT_LIMIT)) as servers:
        async with httpx.AsyncClient(headers=key, timeout=30) as http:
            started = time.monotonic()
            answers = await asyncio.gather(
                *(http.get(f"{servers[i % 2]}{CUSTOMERS}") for i in range(limit + 80))
            )
            elapsed = time.monotonic() - started

    admitted = sum(a.status_code == 200 for a in answers)
    assert {a.status_code for a in answers} == {200, 429}
    refilled = math.ceil(elapsed * limit / 60)
    assert limit - 2 * chunk <= admitted <= limit + 2 * chunk + refilled, (admitted, elapsed)


@contextmanager
def two_servers(settings: Settings) -> Iterator[tuple[str, str]]:
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        yield first, second


@asynccontextmanager
async def running(app: Any, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://crm.test",
            headers={"Authorization": f"Bearer {admin_key}"},
        ) as http,
    ):
        yield http


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False
