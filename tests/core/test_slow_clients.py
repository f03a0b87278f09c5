"""A client that trickles its request body in gets a 408 problem and holds nothing."""

import asyncio
import json

import httpx

from crm_api.app import create_app
from live import serve, settings_for


async def _trickle(port: int, key: str) -> bytes:
    """Send the headers and half of a declared body, then nothing; answer what comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"kind": "consumer", "first_name": "Slow"}).encode()
    writer.write(
        b"POST /v1/customers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[: len(body) // 2]
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(65536), timeout=30)
    writer.close()
    return answer


async def test_a_body_that_stops_arriving_is_a_408_and_others_are_served_meanwhile(
    database_url, admin_key, api
) -> None:
    app = create_app(settings_for(database_url, body_timeout_seconds=1.0))
    with serve(app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        stalled = [asyncio.create_task(_trickle(port, admin_key)) for _ in range(30)]
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}
        ) as http:
            # While thirty clients stall, writes from others go through at once.
            created = await http.post("/v1/customers", json={"kind": "consumer"})
            assert created.status_code == 201, created.text
        answers = await asyncio.gather(*stalled)
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        assert b"content-type: application/problem+json" in head.lower()
        assert json.loads(body)["type"] == "/problems/request-timeout"
    listed = await api.get("/v1/customers")
    assert [c["id"] for c in listed.json()["data"]] == [created.json()["id"]]
