"""Every /v1 operation in the OpenAPI document refuses callers without the right key.

The matrix is read from the spec itself (each operation's `security` names its scope), so a
route added without a scope check, or documented with the wrong one, fails here.
"""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from crm_api.core.db import asyncpg_dsn
from crm_api.core.scopes import Scope
from live import issue_key, openapi_document
from support import assert_problem

SPEC = openapi_document()
V1 = [
    (method.upper(), path, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
    if path.startswith("/v1/")
]
NDJSON = "application/x-ndjson"

# A plausible request body per operation (schema-valid or close), so that a refusal cannot
# be blamed on the body; the matrix also sends an invalid one and none at all.
VALID_BODIES: dict[str, object] = {
    "customers_create": {"email": "someone@example.com", "first_name": "Ada"},
    "customers_upsert": {"email": "someone@example.com", "first_name": "Ada"},
    "customers_update": {"first_name": "Ada"},
    "customers_import": '{"external_id": "x-1", "email": "someone@example.com"}\n',
    "interactions_create": {"customer_id": str(uuid.uuid4()), "type": "visit", "channel": "web"},
    "interactions_import": f'{{"customer_id": "{uuid.uuid4()}", "type": "visit"}}\n',
    "api_keys_create": {"name": "partner", "scopes": ["customers:read"]},
    "api_keys_rotate": {"grace_period_seconds": 60},
    "lifecycle_stages_replace": {"stages": [{"name": "prospect"}]},
    "lifecycle_rules_update": {"enabled": False},
    "lifecycle_transitions_create": {"to": "active"},
    "loyalty_programs_create": {"name": "x", "currency": "EUR", "points_per_unit": 1},
    "loyalty_rewards_create": {"name": "x", "cost": 1},
    "loyalty_accounts_enrol": {"customer_id": str(uuid.uuid4()), "program_id": str(uuid.uuid4())},
    "loyalty_accounts_earn": {"points": 1},
    "loyalty_accounts_redeem": {"points": 1},
    "loyalty_accounts_adjust": {"points": 1, "reason": "x"},
    "loyalty_entries_reverse": {"reason": "x"},
    "campaigns_create": {
        "code": "X",
        "name": "x",
        "channel": "email",
        "currency": "EUR",
        "starts_at": "2025-01-01T00:00:00Z",
    },
    "campaigns_update": {"name": "x"},
}


def _scope_of(operation: dict) -> str:
    [scope] = {s for requirement in operation["security"] for v in requirement.values() for s in v}
    return scope


def _url(path: str) -> str:
    return re.sub(
        r"{(\w+)}",
        lambda m: "dummy-external-id" if m.group(1) == "external_id" else str(uuid.uuid4()),
        path,
    )


def _requests(operation: dict) -> list[dict]:
    """Ways to call it: a valid body, an invalid one (and bad query), and no body."""
    if "requestBody" not in operation:
        return [{}, {"params": {"limit": "0", "cursor": "!"}}]
    media = next(iter(operation["requestBody"]["content"]))
    valid = VALID_BODIES.get(operation["operationId"], {})
    if media == NDJSON:
        headers = {"Content-Type": NDJSON}
        return [
            {"content": valid, "headers": headers},
            {"content": '{"nonsense": true}\nnot json\n', "headers": headers},
            {},
        ]
    return [{"json": valid}, {"json": {"nonsense": [1, 2]}, "params": {"limit": "0"}}, {}]


def _unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path", "operation"), V1, ids=[f"{m} {p}" for m, p, _ in V1])
async def test_every_v1_operation_refuses_missing_unknown_and_underscoped_keys(
    client: httpx.AsyncClient, key_for, method: str, path: str, operation: dict
) -> None:
    scope = _scope_of(operation)
    # A key that holds a scope, but neither this one nor one implying it.
    other = Scope.PII_READ if scope != Scope.PII_READ else Scope.EVENTS_READ
    underscoped = await key_for(other)
    for request in _requests(operation):
        url = _url(path)
        headers = request.pop("headers", {})

        _unauthorized(await client.request(method, url, headers=headers, **request))

        unknown = {"Authorization": f"Bearer crm_{uuid.uuid4().hex}"}
        _unauthorized(await client.request(method, url, headers=headers | unknown, **request))
        wrong = {"X-API-Key": "not-even-our-format"}
        _unauthorized(await client.request(method, url, headers=headers | wrong, **request))

        denied = await client.request(method, url, headers=headers | underscoped, **request)
        problem = assert_problem(denied, 403, "forbidden")
        assert scope in problem["detail"], problem


async def test_the_x_api_key_header_works_like_bearer(client, key_for) -> None:
    bearer = await key_for("customers:read")
    secret = bearer["Authorization"].removeprefix("Bearer ")
    via_header = {"X-API-Key": secret}
    assert (await client.get("/v1/customers", headers=via_header)).status_code == 200
    assert (await client.get("/v1/customers", headers=bearer)).status_code == 200
    denied = await client.post("/v1/customers", json={}, headers=via_header)
    assert "customers:write" in assert_problem(denied, 403, "forbidden")["detail"]


async def test_a_malformed_authorization_header_is_a_401(client) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "crm_abc"):
        _unauthorized(await client.get("/v1/customers", headers={"Authorization": value}))


async def test_an_expired_key_is_refused(client, database_url) -> None:
    secret = await issue_key(database_url, Scope.CUSTOMERS_READ, name="expiring")
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE name = 'expiring'"
        )
    finally:
        await conn.close()
    _unauthorized(await client.get("/v1/customers", headers={"X-API-Key": secret}))


async def test_a_key_stops_working_when_it_expires_even_if_recently_used(api, client) -> None:
    """The per-process key cache must not serve a key past its expiry."""
    expires_at = datetime.now(UTC) + timedelta(seconds=1.5)
    created = await api.post(
        "/v1/api-keys",
        json={"name": "short", "scopes": ["customers:read"], "expires_at": expires_at.isoformat()},
    )
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200
    await asyncio.sleep((expires_at - datetime.now(UTC)).total_seconds() + 0.2)
    _unauthorized(await client.get("/v1/customers", headers=headers))


async def test_keys_cannot_be_created_already_expired(api) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await api.post(
        "/v1/api-keys", json={"name": "stale", "scopes": ["customers:read"], "expires_at": past}
    )
    assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == "expires_at"


async def test_a_revoked_key_is_refused_at_once(api, client, key_for) -> None:
    headers = await key_for("customers:read")
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200  # now cached
    [key] = [k for k in (await api.get("/v1/api-keys")).json()["data"] if k["name"] == "scoped"]
    revoked = await api.post(f"/v1/api-keys/{key['id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    _unauthorized(await client.get("/v1/customers", headers=headers))


async def test_a_rotated_secret_stops_working_when_its_grace_period_ends(api, client) -> None:
    created = await api.post("/v1/api-keys", json={"name": "r", "scopes": ["customers:read"]})
    old = {"Authorization": f"Bearer {created.json()['key']}"}
    rotated = await api.post(
        f"/v1/api-keys/{created.json()['id']}/rotate", json={"grace_period_seconds": 1}
    )
    assert rotated.status_code == 200, rotated.text
    assert (await client.get("/v1/customers", headers=old)).status_code == 200  # now cached
    until = datetime.fromisoformat(rotated.json()["previous_valid_until"])
    await asyncio.sleep((until - datetime.now(UTC)).total_seconds() + 0.2)
    _unauthorized(await client.get("/v1/customers", headers=old))
