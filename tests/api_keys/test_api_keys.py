"""API keys: shown once, stored hashed, scoped, revocable, rotatable."""

import asyncpg

from crm_api.core.db import asyncpg_dsn
from support import assert_problem


async def _create(api, **fields) -> dict:
    response = await api.post(
        "/v1/api-keys", json={"name": "partner", "scopes": ["customers:read"], **fields}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_new_key_is_shown_once_and_works(api, client, database_url):
    created = await _create(api)
    secret = created["key"]

    assert secret.startswith("crm_") and created["prefix"] == secret[:12]
    listed = (await api.get("/v1/api-keys")).json()["data"]
    assert "key" not in listed[-1] and listed[-1]["id"] == created["id"]
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    stored = await conn.fetchval(
        "SELECT count(*) FROM api_keys WHERE position($1::bytea in secret_hash) > 0",
        secret.encode(),
    )
    await conn.close()
    assert stored == 0  # only a hash is kept
    response = await client.get("/v1/customers", headers={"X-API-Key": secret})
    assert response.status_code == 200
    used = (await api.get(f"/v1/api-keys/{created['id']}")).json()
    assert used["last_used_at"] is not None


async def test_write_implies_read_but_not_other_domains(api, client):
    secret = (await _create(api, scopes=["customers:write"]))["key"]
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200
    denied = await client.get("/v1/interactions", headers=headers)
    assert "interactions:read" in assert_problem(denied, 403, "forbidden")["detail"]


async def test_revoked_keys_stop_working_at_once(api, client):
    created = await _create(api)
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/v1/customers", headers=headers)).status_code == 200

    revoked = await api.post(f"/v1/api-keys/{created['id']}/revoke")

    assert revoked.json()["revoked_at"] is not None
    assert_problem(await client.get("/v1/customers", headers=headers), 401, "unauthorized")
    assert created["id"] not in {k["id"] for k in (await api.get("/v1/api-keys")).json()["data"]}
    everything = (await api.get("/v1/api-keys", params={"include_revoked": True})).json()["data"]
    assert created["id"] in {k["id"] for k in everything}


async def test_rotation_replaces_the_secret_with_an_optional_grace_period(api, client):
    created = await _create(api)
    old = {"Authorization": f"Bearer {created['key']}"}

    graceful = (
        await api.post(f"/v1/api-keys/{created['id']}/rotate", json={"grace_period_seconds": 3600})
    ).json()
    assert graceful["id"] == created["id"] and graceful["key"] != created["key"]
    new = {"Authorization": f"Bearer {graceful['key']}"}
    assert (await client.get("/v1/customers", headers=old)).status_code == 200
    assert (await client.get("/v1/customers", headers=new)).status_code == 200

    abrupt = (await api.post(f"/v1/api-keys/{created['id']}/rotate")).json()
    assert_problem(await client.get("/v1/customers", headers=new), 401, "unauthorized")
    newest = {"Authorization": f"Bearer {abrupt['key']}"}
    assert (await client.get("/v1/customers", headers=newest)).status_code == 200


async def test_key_requests_are_validated(api):
    assert_problem(
        await api.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}),
        422,
        "validation-error",
    )
    assert_problem(
        await api.post("/v1/api-keys", json={"name": "x", "scopes": []}), 422, "validation-error"
    )
