"""`crm-api serve --workers 2`: two server processes behind one port share what must be
shared, the idempotency of writes and each key's rate limit."""

import asyncio

import httpx

from crm_api.core.scopes import Scope
from live import free_port, issue_key, ready, server_process


async def _post_from_new_connections(base_url: str, count: int, key: str, **request) -> list:  # type: ignore[no-untyped-def]
    """``count`` requests at once, each on a connection of its own, so the kernel spreads
    them over both processes."""

    async def one() -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as http:
            return await http.post(**request)

    return await asyncio.gather(*(one() for _ in range(count)))


async def test_two_processes_share_idempotency_and_rate_limits(database_url: str) -> None:
    admin = await issue_key(database_url, Scope.ADMIN)
    limited = await issue_key(
        database_url, Scope.CUSTOMERS_WRITE, name="limited", rate_limit_per_minute=20
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with server_process(database_url, port, "--workers", "2", CRM_RATE_LIMIT_PER_MINUTE="6000"):
        await ready(base_url)
        body = {"kind": "consumer", "first_name": "Twice", "external_id": "twice-1"}
        answers = await _post_from_new_connections(
            base_url, 40, admin, url="/v1/customers", json=body,
            headers={"Idempotency-Key": "one-customer"},
        )  # fmt: skip
        created = [a for a in answers if a.status_code == 201]
        assert created and {a.json()["id"] for a in created} == {created[0].json()["id"]}
        assert {a.status_code for a in answers} <= {201, 409}

        answers = await _post_from_new_connections(
            base_url, 60, limited, url="/v1/customers",
            json={"kind": "consumer", "first_name": "Limited"},
        )  # fmt: skip
        admitted = sum(a.status_code == 201 for a in answers)
        limited_out = [a for a in answers if a.status_code == 429]
        # One bucket of 20 for both processes (each may hold a lease of one token more,
        # and a second of the burst refills a third of a token).
        assert 20 <= admitted <= 23, admitted
        assert len(limited_out) == 60 - admitted
        assert all(int(a.headers["retry-after"]) >= 1 for a in limited_out)

        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin}"}
        ) as http:
            found = await http.get("/v1/customers", params={"external_id": "twice-1"})
        assert len(found.json()["data"]) == 1
