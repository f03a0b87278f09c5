"""Live events over a real websocket (graphql-transport-ws) from a live uvicorn server."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from crm_api.app import create_app
from crm_api.core.db import Database, asyncpg_dsn
from crm_api.events import service as events
from crm_api.events.live import LISTENER_NAME
from crm_api.events.schemas import EventType
from live import database_name, serve, settings_for

EVENTS = """
subscription Events($types: [EventType!], $customerId: ID, $after: String) {
  events(types: $types, customerId: $customerId, after: $after) {
    id type occurredAt customerId data cursor
  }
}
"""
# Events settle once every older transaction on the server has ended; a shared test server
# runs other suites' transactions too, so an expected event may take a while.
ARRIVAL_SECONDS = 15.0


@pytest.fixture
def base_url(database_url: str) -> Iterator[str]:
    with serve(create_app(settings_for(database_url))) as url:
        yield url


@pytest.fixture
async def http(base_url: str, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        yield client


class Socket:
    """One graphql-transport-ws connection, acknowledged."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def subscribe(self, id: str = "1", query: str = EVENTS, **variables: Any) -> None:
        payload = {"query": query, "variables": variables}
        await self.ws.send(json.dumps({"id": id, "type": "subscribe", "payload": payload}))

    async def message(self, within: float = ARRIVAL_SECONDS) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), within))

    async def event(self, id: str = "1") -> dict:
        message = await self.message()
        assert message["type"] == "next" and message["id"] == id, message
        assert "errors" not in message["payload"], message
        return message["payload"]["data"]["events"]

    async def error(self, id: str = "1") -> dict:
        """The one error the operation ended with."""
        message = await self.message()
        assert message["id"] == id, message
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        [error] = errors
        return error

    async def silent(self, seconds: float = 0.3) -> bool:
        try:
            await self.message(seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def socket(
    base_url: str, init: dict | None = None, headers: dict | None = None
) -> AsyncIterator[Socket]:
    url = base_url.replace("http://", "ws://") + "/graphql"
    async with connect(
        url, subprotocols=["graphql-transport-ws"], additional_headers=headers
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        yield Socket(ws)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def issued(http: httpx.AsyncClient, *scopes: str) -> dict:
    response = await http.post("/v1/api-keys", json={"name": "live", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return response.json()


async def created(http: httpx.AsyncClient, **fields: Any) -> dict:
    fields.setdefault("email", f"{uuid.uuid4().hex[:12]}@example.com")
    response = await http.post("/v1/customers", json=fields)
    assert response.status_code == 201, response.text
    return response.json()


async def noted(http: httpx.AsyncClient, customer: dict) -> dict:
    response = await http.post(
        "/v1/interactions", json={"customer_id": customer["id"], "type": "note", "body": "hi"}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def feed_end(http: httpx.AsyncClient) -> str:
    """The REST feed's cursor past its newest event, once the feed has one."""
    for _ in range(int(ARRIVAL_SECONDS * 10)):
        page = (await http.get("/v1/events", params={"limit": 200})).json()
        if page["next_cursor"] and not page["has_more"]:
            return page["next_cursor"]
        await asyncio.sleep(0.1)
    raise AssertionError("the feed stayed empty")


async def test_a_subscriber_receives_the_events_of_writes_as_rest_shows_them(
    base_url, http, admin_key
):
    await created(http)
    after = await feed_end(http)
    async with socket(base_url, {"authorization": f"Bearer {admin_key}"}) as ws:
        await ws.subscribe(after=after)
        customer = await created(http, first_name="Ada")
        interaction = await noted(http, customer)

        first, second = await ws.event(), await ws.event()

    assert (first["type"], first["customerId"]) == ("CUSTOMER_CREATED", customer["id"])
    assert first["data"]["first_name"] == "Ada" and first["data"]["email"] == customer["email"]
    assert (second["type"], second["customerId"]) == ("INTERACTION_CREATED", customer["id"])
    assert second["data"]["id"] == interaction["id"]
    rest = (await http.get("/v1/events", params={"cursor": after})).json()

    def shape(e: dict, *, graphql: bool) -> tuple:
        type_ = EventType[e["type"]].value if graphql else e["type"]
        occurred_at = e["occurredAt" if graphql else "occurred_at"]
        customer_id = e["customerId" if graphql else "customer_id"]
        return e["id"], type_, datetime.fromisoformat(occurred_at), customer_id, e["data"]

    assert [shape(e, graphql=True) for e in (first, second)] == [
        shape(e, graphql=False) for e in rest["data"]
    ]
    assert second["cursor"] == rest["next_cursor"]


async def test_without_a_cursor_only_events_from_now_on_are_streamed(base_url, http, admin_key):
    before = await created(http)
    await feed_end(http)
    async with socket(base_url, {"Authorization": f"Bearer {admin_key}"}) as ws:
        await ws.subscribe()
        # The subscription starts at some instant after the request: write until it shows.
        later, message = [], None
        while message is None and len(later) < 25:
            later.append((await created(http))["id"])
            with contextlib.suppress(TimeoutError):
                message = await ws.message(0.2)
        first = (message or await ws.message())["payload"]["data"]["events"]

    assert first["customerId"] in later and first["customerId"] != before["id"]


async def test_types_and_customer_filter_what_is_streamed(base_url, http, admin_key):
    await created(http)
    after = await feed_end(http)
    watched, other = await created(http), await created(http)
    async with socket(base_url, {"X-API-Key": admin_key}) as ws:
        await ws.subscribe("types", after=after, types=["INTERACTION_CREATED"])
        await ws.subscribe("customer", after=after, customerId=watched["id"])
        await noted(http, other)
        await noted(http, watched)

        streamed: dict[str, list[tuple[str, str]]] = {"types": [], "customer": []}
        for _ in range(4):
            message = await ws.message()
            event = message["payload"]["data"]["events"]
            streamed[message["id"]].append((event["type"], event["customerId"]))
        assert await ws.silent()

    assert streamed == {
        "types": [("INTERACTION_CREATED", other["id"]), ("INTERACTION_CREATED", watched["id"])],
        "customer": [("CUSTOMER_CREATED", watched["id"]), ("INTERACTION_CREATED", watched["id"])],
    }


async def test_rolled_back_writes_stream_nothing(base_url, http, admin_key, database_url):
    taken = await created(http)
    after = await feed_end(http)
    async with socket(base_url, {"authorization": f"Bearer {admin_key}"}) as ws:
        await ws.subscribe(after=after)
        duplicate = await http.post("/v1/customers", json={"email": taken["email"].upper()})
        assert duplicate.status_code == 409
        invalid = await http.post("/v1/customers", json={"email": "not an address"})
        assert invalid.status_code == 422
        db = await Database.connect(database_url, min_size=1, max_size=1)
        try:
            async with db.connection() as conn:
                transaction = conn.transaction()
                await transaction.start()
                await events.record(conn, "customer.updated", {"doomed": True}, customer_id=None)
                await transaction.rollback()
        finally:
            await db.close()
        committed = await created(http)

        first = await ws.event()
        assert await ws.silent()

    assert (first["type"], first["customerId"]) == ("CUSTOMER_CREATED", committed["id"])


async def test_a_client_resumes_from_the_last_cursor_it_received(base_url, http, admin_key):
    await created(http)
    after = await feed_end(http)
    init = {"authorization": f"Bearer {admin_key}"}
    async with socket(base_url, init) as ws:
        await ws.subscribe(after=after)
        first = await created(http)
        received = await ws.event()
    assert received["customerId"] == first["id"]

    missed = [await created(http), await created(http)]
    async with socket(base_url, init) as ws:
        await ws.subscribe(after=received["cursor"])
        again = [await ws.event(), await ws.event()]
        assert await ws.silent()

    assert [e["customerId"] for e in again] == [c["id"] for c in missed]


async def test_one_listening_connection_serves_every_subscriber_and_survives_its_loss(
    base_url, http, admin_key, database_url
):
    await created(http)
    after = await feed_end(http)
    init = {"authorization": f"Bearer {admin_key}"}
    admin = await asyncpg.connect(asyncpg_dsn(database_url))
    listening = """
        SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2
    """
    try:
        async with socket(base_url, init) as one, socket(base_url, init) as two:
            await one.subscribe(after=after)
            await two.subscribe(after=after)
            customer = await created(http)
            assert (await one.event())["customerId"] == customer["id"]
            assert (await two.event())["customerId"] == customer["id"]
            [listener] = await admin.fetch(listening, database_name(database_url), LISTENER_NAME)

            await admin.execute("SELECT pg_terminate_backend($1)", listener["pid"])
            after_loss = await created(http)

            assert (await one.event())["customerId"] == after_loss["id"]
            assert (await two.event())["customerId"] == after_loss["id"]
            [again] = await admin.fetch(listening, database_name(database_url), LISTENER_NAME)
            assert again["pid"] != listener["pid"]
    finally:
        await admin.close()


async def test_keys_are_checked_when_subscribing_and_while_streaming(base_url, http):
    reader = await issued(http, "events:read")
    await created(http)
    after = await feed_end(http)
    # A non-browser client may send the key with the upgrade request instead.
    async with socket(base_url, headers=bearer(reader["key"])) as ws:
        await ws.subscribe(after=after)
        customer = await created(http)
        received = await ws.event()
        assert received["customerId"] == customer["id"]
        assert received["data"]["email"] is None  # no pii:read, as in the REST feed
        assert "email" in received["data"]["redacted_fields"]

        assert (await http.post(f"/v1/api-keys/{reader['id']}/revoke")).status_code == 200
        await created(http)

        error = await ws.error()
        assert error["extensions"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("init", "code", "detail"),
    [
        ({}, "unauthorized", "API key is required"),
        ({"authorization": "Bearer not-a-key"}, "unauthorized", "unknown, revoked or expired"),
        (None, "forbidden", "lacks the scope events:read"),
    ],
)
async def test_a_subscription_needs_a_valid_key_with_events_read(
    base_url, http, init, code, detail
):
    if init is None:
        key = await issued(http, "customers:read", "pii:read")
        init = {"authorization": f"Bearer {key['key']}"}
    async with socket(base_url, init) as ws:
        await ws.subscribe()
        error = await ws.error()
        assert await ws.silent()

    assert error["extensions"]["code"] == code
    assert detail in error["message"]


async def test_browsers_subscribe_from_the_origins_cors_admits(database_url, admin_key):
    settings = settings_for(database_url, cors_origins=["https://app.example"])
    init = {"authorization": f"Bearer {admin_key}"}
    with serve(create_app(settings)) as url:
        async with socket(url, init, headers={"Origin": "https://app.example"}) as ws:
            await ws.subscribe()
            assert await ws.silent()  # subscribed, nothing happened yet
        with pytest.raises(InvalidStatus) as refused:
            async with socket(url, init, headers={"Origin": "https://elsewhere.example"}):
                pass
    assert refused.value.response.status_code == 403


async def test_each_subscription_takes_a_request_from_the_keys_rate_limit(database_url, admin_key):
    with serve(create_app(settings_for(database_url, rate_limit_per_minute=6000))) as url:
        async with httpx.AsyncClient(base_url=url, headers=bearer(admin_key)) as http:
            tight = {"name": "tight", "scopes": ["events:read"], "rate_limit_per_minute": 2}
            key = (await http.post("/v1/api-keys", json=tight)).json()["key"]
            async with socket(url, {"authorization": f"Bearer {key}"}) as ws:
                for id in ("1", "2", "3"):
                    await ws.subscribe(id=id)
                error = await ws.error("3")  # the first two are admitted and stream
                assert await ws.silent()
            # One bucket for the key, whatever carries its requests.
            refused = await http.get("/v1/events", headers=bearer(key))

    assert error["extensions"]["code"] == "rate-limited"
    assert error["extensions"]["status"] == 429
    assert refused.status_code == 429


async def test_the_websocket_carries_subscriptions_only(base_url, admin_key):
    async with socket(base_url, {"authorization": f"Bearer {admin_key}"}) as ws:
        await ws.subscribe(query="{ customers { edges { node { id } } } }")
        error = await ws.error()

    assert error["message"] == "queries are not allowed"


async def test_plain_http_refuses_a_subscription(api):
    response = await api.post("/graphql", json={"query": "subscription { events { id } }"})

    assert response.status_code == 400
    assert "subscriptions are not allowed" in response.text
