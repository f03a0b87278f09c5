"""Deliveries end to end: committed events reach a real receiver on loopback, signed,
retried on failure, never invented by a rolled-back transaction."""

import asyncio
import uuid

import asyncpg
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from crm_api.core.db import asyncpg_dsn
from support import eventually_events
from webhook_receiver import Answer


async def delivery(api, delivery_id: str) -> dict:
    response = await api.get(f"/v1/webhook-deliveries/{delivery_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def settled(api, delivery_id: str, *, within: float = 10.0) -> dict:
    """The delivery once its outcome is recorded (succeeded or failed)."""
    for _ in range(int(within / 0.05)):
        found = await delivery(api, delivery_id)
        if found["status"] in ("succeeded", "failed"):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"delivery still {found['status']}: {found}")


async def test_a_committed_event_reaches_the_subscriber_signed_and_recorded(
    api, receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.*")
    await start_worker()
    customer = await new_customer(first_name="Grace")
    visit = await api.post(
        "/v1/interactions", json={"customer_id": customer["id"], "type": "visit"}
    )
    assert visit.status_code == 201

    [got] = await receiver.wait_for(1)
    payload = Webhook(endpoint["secret"]).verify(got.body, got.headers)
    assert payload["type"] == "customer.created"
    assert payload["data"]["id"] == customer["id"]
    assert payload["data"]["first_name"] == "Grace"
    assert payload["timestamp"].endswith("Z")
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1  # not subscribed to interactions

    recorded = await settled(api, got.id)
    assert recorded["status"] == "succeeded"
    assert recorded["endpoint_id"] == endpoint["id"]
    assert recorded["event_type"] == "customer.created"
    [attempt] = recorded["attempt_log"]
    assert attempt["status_code"] == 200
    assert attempt["response_body"] == "ok"
    assert attempt["duration_ms"] >= 0


async def test_a_forged_or_tampered_delivery_fails_verification(
    receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.*")
    await start_worker()
    await new_customer()
    [got] = await receiver.wait_for(1)

    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(got.body.replace(b"customer", b"kustomer"), got.headers)
    other = await subscribe("customer.*")
    with pytest.raises(WebhookVerificationError):
        Webhook(other["secret"]).verify(got.body, got.headers)


async def test_endpoints_set_up_without_pii_read_get_redacted_customers(
    api, key_for, receiver, subscribe, start_worker, new_customer
):
    manager = await key_for("webhooks:manage")
    endpoint = await subscribe("customer.created", headers=manager)
    assert endpoint["receives_pii"] is False
    await start_worker()
    await new_customer(email="private@example.com", first_name="Ada")

    [got] = await receiver.wait_for(1)
    data = Webhook(endpoint["secret"]).verify(got.body, got.headers)["data"]
    assert data["email"] is None and data["first_name"] is None
    assert "email" in data["redacted_fields"]


async def test_a_failing_receiver_gets_everything_once_it_recovers(
    api, receiver, subscribe, start_worker, new_customer
):
    # Down for the first three attempts of every delivery, then healthy.
    receiver.behaviour = lambda got, earlier: Answer(503 if earlier < 3 else 200)
    await subscribe("customer.created")
    await start_worker()
    customers = [await new_customer() for _ in range(5)]

    await receiver.wait_for(20)
    by_id: dict[str, list] = {}
    for got in receiver.received:
        by_id.setdefault(got.id, []).append(got.json["data"]["id"])
    # Five deliveries, four attempts each, every attempt of one delivery about one event.
    assert sorted(len(v) for v in by_id.values()) == [4] * 5
    assert sorted(v[0] for v in by_id.values()) == sorted(c["id"] for c in customers)
    assert all(len(set(v)) == 1 for v in by_id.values())
    recorded = await settled(api, next(iter(by_id)))
    assert [a["status_code"] for a in recorded["attempt_log"]] == [503, 503, 503, 200]
    assert recorded["attempts"] == 4


async def test_retry_after_is_honoured(api, receiver, subscribe, start_worker, new_customer):
    receiver.behaviour = lambda got, earlier: (
        Answer(429, headers={"Retry-After": "1"}) if earlier == 0 else Answer()
    )
    await subscribe("customer.*")
    await start_worker()  # the schedule alone would retry after 0.1 s
    await new_customer()

    first, second = await receiver.wait_for(2)
    assert first.id == second.id
    assert second.arrived - first.arrived >= 0.95


async def test_a_delivery_that_runs_out_of_attempts_fails_and_can_be_retried(
    api, receiver, subscribe, start_worker, new_customer
):
    receiver.behaviour = lambda got, earlier: Answer(500, body=b"x" * 5000)
    await subscribe("customer.*")
    await start_worker(webhook_retry_schedule_seconds=[0, 0.05])
    await new_customer()

    first, _ = await receiver.wait_for(2)
    recorded = await settled(api, first.id)
    assert recorded["status"] == "failed"
    assert recorded["last_status_code"] == 500
    assert "500" in recorded["last_error"]
    assert [len(a["response_body"]) for a in recorded["attempt_log"]] == [1024, 1024]

    receiver.behaviour = lambda got, earlier: Answer()
    retried = await api.post(f"/v1/webhook-deliveries/{first.id}/retry")
    assert retried.status_code == 202, retried.text
    third = (await receiver.wait_for(3))[2]
    assert third.id == first.id and third.body == first.body
    assert (await settled(api, first.id))["status"] == "succeeded"


async def test_410_gone_disables_the_endpoint_and_says_so(
    api, receiver, subscribe, start_worker, new_customer
):
    receiver.behaviour = lambda got, earlier: Answer(410)
    endpoint = await subscribe("customer.*")
    await start_worker()
    await new_customer()
    [got] = await receiver.wait_for(1)

    found = await settled(api, got.id)
    assert found["status"] == "failed"
    state = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert state["enabled"] is False
    assert "410" in state["disabled_reason"]
    [disabled] = await eventually_events(api, 1, type="webhook_endpoint.disabled")
    assert disabled["data"]["id"] == endpoint["id"]
    assert "secret" not in disabled["data"]
    await new_customer()
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1  # a disabled endpoint gets nothing more


async def test_a_run_of_failures_disables_the_endpoint_and_other_subscribers_hear_of_it(
    api, receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.*")
    watcher = await subscribe("webhook_endpoint.disabled")
    receiver.behaviour = lambda got, earlier: (
        Answer() if got.json["type"].startswith("webhook_endpoint") else Answer(500)
    )
    await start_worker(webhook_disable_after_failures=3)
    await new_customer()
    await new_customer()

    deadline = asyncio.get_running_loop().time() + 10
    while not receiver.of_type("webhook_endpoint.disabled"):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    [notice] = receiver.of_type("webhook_endpoint.disabled")
    data = Webhook(watcher["secret"]).verify(notice.body, notice.headers)["data"]
    assert data["id"] == endpoint["id"]
    assert data["enabled"] is False
    assert data["disabled_reason"] == "3 consecutive failed delivery attempts"
    listed = await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries")
    assert {d["status"] for d in listed.json()["data"]} == {"failed"}


async def test_an_event_whose_transaction_rolled_back_is_never_delivered(
    api, database_url, receiver, subscribe, start_worker, new_customer
):
    await subscribe("customer.*", "interaction.*")
    await start_worker()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        # A write that is still open holds back what commits after it, then rolls back.
        doomed = conn.transaction()
        await doomed.start()
        await conn.execute(
            "INSERT INTO events (id, type, data) VALUES ($1, 'customer.created', '{}')",
            uuid.uuid4(),
        )
        kept = await new_customer()
        await asyncio.sleep(0.5)
        assert receiver.received == []  # not before the earlier transaction has ended
        await doomed.rollback()
    finally:
        await conn.close()
    # A request that fails validation wrote nothing either.
    refused = await api.post("/v1/interactions", json={"customer_id": kept["id"], "type": "x"})
    assert refused.status_code == 422

    [got] = await receiver.wait_for(1)
    assert got.json["data"]["id"] == kept["id"]
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 1


async def test_redirects_are_not_followed_and_slow_receivers_time_out(
    api, receiver, subscribe, start_worker, new_customer
):
    receiver.behaviour = lambda got, earlier: (
        Answer(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        if earlier == 0
        else Answer(delay=1.5)
    )
    await subscribe("customer.*")
    await start_worker(webhook_timeout_seconds=0.5, webhook_retry_schedule_seconds=[0, 0.05])
    await new_customer()
    first, _ = await receiver.wait_for(2)

    recorded = await settled(api, first.id)
    redirect, slow = recorded["attempt_log"]
    assert redirect["status_code"] == 302
    assert slow["status_code"] is None
    assert "timed out" in slow["error"]
    assert recorded["status"] == "failed"
