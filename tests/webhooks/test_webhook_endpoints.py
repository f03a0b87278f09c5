"""Managing webhook endpoints over REST: secrets, validation, rotation, replay, tests."""

import asyncio

import pytest
from standardwebhooks import Webhook

from crm_api.webhooks.signing import SECRET_PREFIX
from support import assert_problem, eventually_events
from webhook_receiver import Answer


async def test_the_secret_is_shown_once_and_endpoints_are_managed_with_etags(api, receiver):
    created = await api.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["customer.*", "interaction.created"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith(SECRET_PREFIX)
    assert len(Webhook(endpoint["secret"])._whsecret) == 32
    assert created.headers["location"] == f"/v1/webhook-endpoints/{endpoint['id']}"

    fetched = await api.get(created.headers["location"])
    assert "secret" not in fetched.json()
    assert fetched.headers["etag"] == '"1"'
    stale = await api.patch(
        created.headers["location"], json={"description": "x"}, headers={"If-Match": '"7"'}
    )
    assert_problem(stale, 412, "precondition-failed")
    changed = await api.patch(
        created.headers["location"],
        json={"description": "CRM sync", "event_types": ["*"]},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["*"] and changed.json()["version"] == 2
    listed = (await api.get("/v1/webhook-endpoints")).json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]

    assert (await api.delete(created.headers["location"])).status_code == 204
    assert_problem(await api.get(created.headers["location"]), 404, "not-found")
    types = [
        e["type"]
        for e in await eventually_events(
            api,
            3,
            type=[
                "webhook_endpoint.created",
                "webhook_endpoint.updated",
                "webhook_endpoint.deleted",
            ],
        )
    ]
    assert types == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.deleted",
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "http:///no-host"}, "url"),
        ({"url": "https://example.com/hook#frag"}, "url"),
        ({"url": "https://example.com/hook", "event_types": ["custmer.*"]}, "event_types.0"),
        ({"url": "https://example.com/h", "event_types": ["customer.created!"]}, "event_types.0"),
        ({"url": "https://example.com/hook", "event_types": []}, "event_types"),
        ({"url": "https://example.com/hook", "secret": "mine"}, "secret"),
    ],
)
async def test_bad_endpoints_are_refused_naming_the_field(api, body, field):
    response = await api.post("/v1/webhook-endpoints", json=body)
    problem = assert_problem(response, 422, "validation-error")
    assert field in [e["field"] for e in problem["errors"]], problem
    assert (await api.get("/v1/webhook-endpoints")).json()["data"] == []


async def test_after_rotation_both_secrets_sign_during_the_grace_period(
    api, receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.*")
    rotated = await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    assert rotated.json()["previous_secret_expires_at"]
    await start_worker()
    await new_customer()

    [got] = await receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], new_secret):
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "customer.created"


async def test_a_rotation_without_grace_signs_with_the_new_secret_only(
    app, api, receiver, subscribe, start_worker, new_customer
):
    app.state.settings = app.state.settings.model_copy(update={"webhook_secret_grace_hours": 0})
    endpoint = await subscribe("customer.*")
    rotated = (await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")).json()
    await start_worker()
    await new_customer()

    [got] = await receiver.wait_for(1)
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    Webhook(rotated["secret"]).verify(got.body, got.headers)


async def test_replay_sends_a_window_again_under_the_original_webhook_ids(
    api, receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.created")
    await start_worker()
    for _ in range(3):
        await new_customer()
    first = await receiver.wait_for(3)
    await asyncio.sleep(0.2)  # every outcome recorded

    replay = await api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/replay", json={"since": "2020-01-01T00:00:00Z"}
    )
    assert replay.status_code == 202, replay.text
    assert replay.json() == {"scheduled": 3}
    again = (await receiver.wait_for(6))[3:]
    assert sorted(r.id for r in again) == sorted(r.id for r in first)
    assert sorted(r.body for r in again) == sorted(r.body for r in first)

    future = await api.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/replay", json={"since": "2999-01-01T00:00:00Z"}
    )
    assert_problem(future, 422, "validation-error")


async def test_a_test_event_goes_to_that_endpoint_alone(api, receiver, subscribe, start_worker):
    tested = await subscribe("*")
    bystander = await subscribe("*")
    await start_worker()
    # Both hear of the endpoints' creation first; wait until those deliveries are over.
    await receiver.wait_for(1)
    before = -1
    while before != len(receiver.received):
        before = len(receiver.received)
        await asyncio.sleep(0.3)

    response = await api.post(f"/v1/webhook-endpoints/{tested['id']}/test")
    assert response.status_code == 202, response.text
    assert response.json()["event_type"] == "webhook.test"
    got = (await receiver.wait_for(before + 1))[before]
    assert got.id == response.json()["id"]
    payload = Webhook(tested["secret"]).verify(got.body, got.headers)
    assert payload["data"]["endpoint_id"] == tested["id"]
    await asyncio.sleep(0.3)
    assert len(receiver.received) == before + 1
    assert bystander["id"] != tested["id"]


async def test_deliveries_are_listed_newest_first_with_filters(
    api, receiver, subscribe, start_worker, new_customer
):
    endpoint = await subscribe("customer.*")
    customer = await new_customer()
    await api.patch(f"/v1/customers/{customer['id']}", json={"first_name": "Changed"})
    url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    await start_worker()
    await receiver.wait_for(2)
    await asyncio.sleep(0.2)

    updated = (await api.get(url, params={"event_type": "customer.updated"})).json()["data"]
    assert [d["status"] for d in updated] == ["succeeded"]
    assert (await api.get(url, params={"status": "pending"})).json()["data"] == []
    page = (await api.get(url, params={"limit": 1})).json()
    rest = (await api.get(url, params={"limit": 1, "cursor": page["next_cursor"]})).json()
    assert [d["event_type"] for d in page["data"] + rest["data"]] == [
        "customer.updated",
        "customer.created",
    ]
    assert_problem(await api.get(url, params={"status": "lost"}), 422, "validation-error")
    # Text PostgreSQL cannot hold is refused by name, not sent to the database.
    problem = assert_problem(
        await api.get(url, params={"event_type": "customer.\x00"}), 422, "validation-error"
    )
    assert [e["field"] for e in problem["errors"]] == ["event_type"]


async def test_disabling_fails_what_is_queued_and_enabling_starts_afresh(
    api, receiver, subscribe, start_worker, new_customer
):
    receiver.behaviour = lambda got, earlier: Answer(500 if earlier == 0 else 200)
    endpoint = await subscribe("customer.*")
    location = f"/v1/webhook-endpoints/{endpoint['id']}"
    await start_worker(webhook_retry_schedule_seconds=[0, 60])
    await new_customer()
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)  # the failure recorded: the next attempt is a minute away
    off = await api.patch(location, json={"enabled": False})
    assert off.json()["enabled"] is False
    [queued] = (await api.get(f"{location}/deliveries")).json()["data"]
    assert queued["status"] == "failed" and "disabled" in queued["last_error"]
    assert_problem(await api.post(f"{location}/test"), 409, "conflict")
    assert_problem(await api.post(f"/v1/webhook-deliveries/{queued['id']}/retry"), 409, "conflict")

    await api.patch(location, json={"enabled": True})
    retried = await api.post(f"/v1/webhook-deliveries/{queued['id']}/retry")
    assert retried.status_code == 202
    _, got = await receiver.wait_for(2)
    assert got.id == queued["id"]
