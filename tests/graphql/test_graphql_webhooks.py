"""Webhook endpoints and deliveries over GraphQL: the same rules, scope and data as REST."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from support import ago
from webhook_receiver import Answer

ENDPOINT_FIELDS = """
    id url description eventTypes enabled disabledReason receivesPii consecutiveFailures
    previousSecretExpiresAt createdAt updatedAt version
"""
DELIVERY_FIELDS = """
    id endpointId eventId eventType status attempts nextAttemptAt lastStatusCode lastError
    createdAt deliveredAt
"""
CREATE = f"""mutation($input: WebhookEndpointInput!) {{
    createWebhookEndpoint(input: $input) {{ secret endpoint {{ {ENDPOINT_FIELDS} }} }}
}}"""
GET = f"query($id: ID!) {{ webhookEndpoint(id: $id) {{ {ENDPOINT_FIELDS} }} }}"
LIST = """query($first: Int!, $after: String) {
    webhookEndpoints(first: $first, after: $after) {
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
    }
}"""
UPDATE = f"""mutation($id: ID!, $input: WebhookEndpointPatchInput!, $version: Int) {{
    updateWebhookEndpoint(id: $id, input: $input, ifMatchVersion: $version) {{
        {ENDPOINT_FIELDS}
    }}
}}"""
DELETE = """mutation($id: ID!, $version: Int) {
    deleteWebhookEndpoint(id: $id, ifMatchVersion: $version)
}"""
ROTATE = f"""mutation($id: ID!) {{
    rotateWebhookSecret(id: $id) {{ secret endpoint {{ {ENDPOINT_FIELDS} }} }}
}}"""
TEST = f"mutation($id: ID!) {{ testWebhookEndpoint(id: $id) {{ {DELIVERY_FIELDS} }} }}"
RETRY = f"mutation($id: ID!) {{ retryWebhookDelivery(id: $id) {{ {DELIVERY_FIELDS} }} }}"
REPLAY = """mutation($id: ID!, $since: DateTime!, $until: DateTime) {
    replayWebhookEndpoint(id: $id, since: $since, until: $until) { scheduled }
}"""
DELIVERIES = """query(
    $id: ID!, $first: Int! = 50, $after: String,
    $status: WebhookDeliveryStatus, $eventType: String, $since: DateTime
) {
    webhookEndpoint(id: $id) {
        deliveries(
            first: $first, after: $after, status: $status, eventType: $eventType, since: $since
        ) {
            edges { cursor node { id eventType status lastError } }
            pageInfo { hasNextPage endCursor }
        }
    }
}"""
DELIVERY = f"""query($id: ID!) {{
    webhookDelivery(id: $id) {{
        {DELIVERY_FIELDS}
        attemptLog {{ id attemptedAt statusCode durationMs responseBody error }}
    }}
}}"""
HOOK = "https://hooks.example.com/crm"


@pytest.fixture
def create_endpoint(gql):  # type: ignore[no-untyped-def]
    """Create an endpoint over GraphQL (customer events only, unless told); returns
    ``{secret, endpoint}``."""

    async def create(*, headers: dict | None = None, **fields: object) -> dict:
        data = {"url": HOOK, "eventTypes": ["customer.*"], **fields}
        return (await gql(CREATE, {"input": data}, headers=headers))["createWebhookEndpoint"]

    return create


async def _deliveries(gql, endpoint_id: str, **variables) -> tuple[list[dict], dict]:
    found = await gql(DELIVERIES, {"id": endpoint_id, **variables})
    page = found["webhookEndpoint"]["deliveries"]
    return [e["node"] for e in page["edges"]], page


async def test_create_shows_the_secret_once_and_rest_sees_the_same_endpoint(
    api, gql, create_endpoint, assert_same_as_rest, announced
):
    created = await create_endpoint(
        description="Billing sync", eventTypes=["customer.created", "interaction.*"]
    )

    endpoint = created["endpoint"]
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 20
    assert endpoint["url"] == HOOK and endpoint["description"] == "Billing sync"
    assert endpoint["eventTypes"] == ["customer.created", "interaction.*"]
    assert endpoint["enabled"] is True and endpoint["receivesPii"] is True
    assert endpoint["version"] == 1 and endpoint["consecutiveFailures"] == 0
    rest = await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert rest.status_code == 200
    assert "secret" not in rest.json()
    assert_same_as_rest(endpoint, rest.json())
    assert (await gql(GET, {"id": endpoint["id"]}))["webhookEndpoint"] == endpoint
    [event] = await announced("webhook_endpoint.created")
    assert event["data"]["id"] == endpoint["id"]


async def test_fields_left_out_of_create_take_rest_defaults(gql):
    created = await gql(CREATE, {"input": {"url": HOOK}})

    endpoint = created["createWebhookEndpoint"]["endpoint"]
    assert endpoint["eventTypes"] == ["*"]
    assert endpoint["enabled"] is True and endpoint["description"] is None


async def test_a_webhooks_manage_key_suffices_and_without_pii_read_gets_no_personal_data(
    gql, key_for, create_endpoint
):
    manager = await key_for("webhooks:manage")

    created = await create_endpoint(headers=manager)
    listed = await gql(LIST, {"first": 5}, headers=manager)

    assert created["endpoint"]["receivesPii"] is False
    assert [e["node"]["id"] for e in listed["webhookEndpoints"]["edges"]] == [
        created["endpoint"]["id"]
    ]


async def test_endpoints_page_oldest_first_with_cursors_shared_with_rest(api, gql, create_endpoint):
    created = [(await create_endpoint())["endpoint"]["id"] for _ in range(3)]

    first = (await gql(LIST, {"first": 2}))["webhookEndpoints"]
    after = first["pageInfo"]["endCursor"]
    second = (await gql(LIST, {"first": 2, "after": after}))["webhookEndpoints"]
    rest = (await api.get("/v1/webhook-endpoints", params={"limit": 2, "cursor": after})).json()

    assert [e["node"]["id"] for e in first["edges"]] == created[:2]
    assert first["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in second["edges"]] == created[2:]
    assert second["pageInfo"]["hasNextPage"] is False
    assert [e["id"] for e in rest["data"]] == created[2:]


async def test_update_changes_what_is_given_and_honours_if_match_version(
    api, gql, gql_error, create_endpoint
):
    endpoint = (await create_endpoint(description="old"))["endpoint"]
    patch = {"eventTypes": ["customer.created", "interaction.*"], "description": None}

    updated = (await gql(UPDATE, {"id": endpoint["id"], "input": patch, "version": 1}))[
        "updateWebhookEndpoint"
    ]
    error, data = await gql_error(
        UPDATE,
        {"id": endpoint["id"], "input": {"url": "https://elsewhere.example.com/"}, "version": 1},
        code="precondition-failed",
    )

    assert updated["eventTypes"] == ["customer.created", "interaction.*"]
    assert updated["description"] is None and updated["url"] == HOOK
    assert updated["version"] == 2
    assert error["extensions"]["status"] == 412 and data is None
    rest = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert rest["url"] == HOOK and rest["version"] == 2


async def test_delete_removes_the_endpoint_with_its_deliveries(
    api, gql, gql_error, create_endpoint
):
    endpoint = (await create_endpoint())["endpoint"]
    delivery = (await gql(TEST, {"id": endpoint["id"]}))["testWebhookEndpoint"]

    stale, _ = await gql_error(
        DELETE, {"id": endpoint["id"], "version": 7}, code="precondition-failed"
    )
    deleted = await gql(DELETE, {"id": endpoint["id"], "version": 1})

    assert "ETag" in stale["message"]
    assert deleted == {"deleteWebhookEndpoint": endpoint["id"]}
    assert await gql(GET, {"id": endpoint["id"]}) == {"webhookEndpoint": None}
    assert await gql(DELIVERY, {"id": delivery["id"]}) == {"webhookDelivery": None}
    assert (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).status_code == 404
    again, _ = await gql_error(DELETE, {"id": endpoint["id"]}, code="not-found")
    assert endpoint["id"] in again["message"]


async def test_rotating_issues_a_new_secret_and_keeps_the_old_one_signing_for_a_while(
    api, gql, create_endpoint
):
    created = await create_endpoint()

    rotated = (await gql(ROTATE, {"id": created["endpoint"]["id"]}))["rotateWebhookSecret"]

    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    endpoint = rotated["endpoint"]
    assert endpoint["version"] == 2
    grace_ends = datetime.fromisoformat(endpoint["previousSecretExpiresAt"])
    # CRM_WEBHOOK_SECRET_GRACE_HOURS, 24 by default.
    assert abs(grace_ends - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    rest = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert rest["version"] == 2 and rest["previous_secret_expires_at"] is not None


@pytest.mark.parametrize(
    ("input", "field", "message"),
    [
        ({"url": "ftp://hooks.example.com/"}, "url", "http or https"),
        ({"url": "not a url"}, "url", "http or https"),
        ({"url": ""}, "url", "at least 1 character"),
        ({"url": HOOK, "eventTypes": ["customer.exploded"]}, "eventTypes.0", "no event type"),
        ({"url": HOOK, "eventTypes": ["customer.*", "Customers"]}, "eventTypes.1", "must be"),
        ({"url": HOOK, "eventTypes": []}, "eventTypes", "at least 1 item"),
    ],
)
async def test_invalid_create_input_names_the_field_and_creates_nothing(
    api, gql_error, input, field, message
):
    error, data = await gql_error(CREATE, {"input": input}, code="validation-error")

    assert data is None
    assert error["extensions"]["status"] == 422
    [found] = error["extensions"]["errors"]
    assert found["field"] == field and message in found["message"], found
    assert (await api.get("/v1/webhook-endpoints")).json()["data"] == []


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"url": "gopher://hooks.example.com/"}, "url", "http or https"),
        ({"url": None}, "url", "cannot be null"),
        ({"eventTypes": ["nothing.here"]}, "eventTypes.0", "no event type"),
        ({"enabled": None}, "enabled", "cannot be null"),
    ],
)
async def test_an_invalid_patch_names_the_field_and_changes_nothing(
    api, gql_error, create_endpoint, patch, field, message
):
    endpoint = (await create_endpoint())["endpoint"]

    error, _ = await gql_error(
        UPDATE, {"id": endpoint["id"], "input": patch}, code="validation-error"
    )

    [found] = error["extensions"]["errors"]
    assert found["field"] == field and message in found["message"], found
    rest = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}")).json()
    assert rest["version"] == 1 and rest["url"] == HOOK


# Every webhook operation (as a field selection), and the id it takes.
OPERATIONS = [
    ("query", "webhookEndpoint(id: $id) { id }", "endpoint"),
    ("query", "webhookEndpoints { edges { node { id } } }", None),
    ("query", "webhookDelivery(id: $id) { id }", "delivery"),
    ("mutation", f'createWebhookEndpoint(input: {{url: "{HOOK}"}}) {{ secret }}', None),
    ("mutation", "updateWebhookEndpoint(id: $id, input: {enabled: false}) { id }", "endpoint"),
    ("mutation", "deleteWebhookEndpoint(id: $id)", "endpoint"),
    ("mutation", "rotateWebhookSecret(id: $id) { secret }", "endpoint"),
    ("mutation", "retryWebhookDelivery(id: $id) { id }", "delivery"),
    (
        "mutation",
        'replayWebhookEndpoint(id: $id, since: "2024-01-01T00:00:00Z") { scheduled }',
        "endpoint",
    ),
    ("mutation", "testWebhookEndpoint(id: $id) { id }", "endpoint"),
]


@pytest.mark.parametrize(("kind", "selection", "about"), OPERATIONS, ids=[o[1] for o in OPERATIONS])
async def test_every_webhook_operation_needs_webhooks_manage_and_writes_nothing_without_it(
    api, gql_error, key_for, kind, selection, about
):
    endpoint = (await api.post("/v1/webhook-endpoints", json={"url": HOOK})).json()
    delivery = (await api.post(f"/v1/webhook-endpoints/{endpoint['id']}/test")).json()
    ids = {"endpoint": endpoint["id"], "delivery": delivery["id"]}
    # Every other scope there is, none of them implying webhooks:manage.
    other = await key_for("customers:write", "interactions:write", "events:read", "pii:read")

    operation = f"{kind}{'($id: ID!)' if about else ''} {{ {selection} }}"

    error, _ = await gql_error(
        operation, {"id": ids[about]} if about else {}, code="forbidden", headers=other
    )

    assert error["extensions"]["status"] == 403
    assert "webhooks:manage" in error["message"]
    [still] = (await api.get("/v1/webhook-endpoints")).json()["data"]
    assert still == {k: v for k, v in endpoint.items() if k != "secret"}
    queued = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries")).json()
    assert [(d["id"], d["status"]) for d in queued["data"]] == [(delivery["id"], "pending")]


async def test_test_and_replay_queue_deliveries_listed_newest_first(
    api, gql, create_endpoint, new_customer, announced
):
    endpoint = (await create_endpoint(eventTypes=["customer.*"]))["endpoint"]
    await new_customer()
    # A replay takes settled events only: those no open transaction can still precede.
    assert await announced("customer.created")

    test = (await gql(TEST, {"id": endpoint["id"]}))["testWebhookEndpoint"]
    replayed = await gql(REPLAY, {"id": endpoint["id"], "since": ago(hours=1)})
    listed, _ = await _deliveries(gql, endpoint["id"])
    again = await gql(REPLAY, {"id": endpoint["id"], "since": ago(hours=1)})
    relisted, _ = await _deliveries(gql, endpoint["id"])

    assert test["eventType"] == "webhook.test" and test["status"] == "PENDING"
    assert test["endpointId"] == endpoint["id"] and test["attempts"] == 0
    # Only the subscribed customer event, not the endpoint's own webhook_endpoint.created.
    assert replayed == {"replayWebhookEndpoint": {"scheduled": 1}}
    assert [(d["eventType"], d["status"]) for d in listed] == [
        ("customer.created", "PENDING"),
        ("webhook.test", "PENDING"),
    ]
    assert listed[1]["id"] == test["id"]
    # Replayed again, the event keeps its delivery and so its webhook-id.
    assert again == {"replayWebhookEndpoint": {"scheduled": 1}}
    assert relisted == listed
    rest = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries")).json()
    assert [d["id"] for d in rest["data"]] == [d["id"] for d in listed]


async def test_deliveries_filter_and_page_with_cursors_shared_with_rest(api, gql, create_endpoint):
    endpoint_id = (await create_endpoint())["endpoint"]["id"]
    sent = [(await gql(TEST, {"id": endpoint_id}))["testWebhookEndpoint"]["id"] for _ in range(3)]
    newest_first = sent[::-1]

    first, page = await _deliveries(gql, endpoint_id, first=2)
    after = page["pageInfo"]["endCursor"]
    second, last_page = await _deliveries(gql, endpoint_id, first=2, after=after)
    rest = await api.get(
        f"/v1/webhook-endpoints/{endpoint_id}/deliveries", params={"limit": 2, "cursor": after}
    )

    assert [d["id"] for d in first] == newest_first[:2] and page["pageInfo"]["hasNextPage"]
    assert [d["id"] for d in second] == newest_first[2:]
    assert last_page["pageInfo"]["hasNextPage"] is False
    assert rest.status_code == 200, rest.text
    assert [d["id"] for d in rest.json()["data"]] == newest_first[2:]
    for filters, expected in [
        ({"status": "PENDING"}, newest_first),
        ({"status": "SUCCEEDED"}, []),
        ({"eventType": "webhook.test"}, newest_first),
        ({"eventType": "customer.created"}, []),
        ({"since": ago(minutes=5)}, newest_first),
        ({"since": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()}, []),
    ]:
        found, _ = await _deliveries(gql, endpoint_id, **filters)
        assert [d["id"] for d in found] == expected, filters


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 0}, "first"),
        ({"after": "not-a-cursor"}, "after"),
        ({"since": "2024-01-01T00:00:00"}, "since"),
        ({"eventType": "x" * 65}, "eventType"),
    ],
)
async def test_bad_delivery_list_arguments_are_validation_errors(
    gql_error, create_endpoint, variables, field
):
    endpoint_id = (await create_endpoint())["endpoint"]["id"]

    error, _ = await gql_error(
        DELIVERIES, {"id": endpoint_id, **variables}, code="validation-error"
    )

    assert error["path"] == ["webhookEndpoint", "deliveries"]
    assert [e["field"] for e in error["extensions"]["errors"]] == [field]


async def test_disabling_fails_queued_deliveries_which_retry_requeues_once_enabled(
    gql, gql_error, create_endpoint
):
    endpoint_id = (await create_endpoint())["endpoint"]["id"]
    delivery_id = (await gql(TEST, {"id": endpoint_id}))["testWebhookEndpoint"]["id"]

    await gql(UPDATE, {"id": endpoint_id, "input": {"enabled": False}})
    [failed], _ = await _deliveries(gql, endpoint_id, status="FAILED")
    refused, _ = await gql_error(RETRY, {"id": delivery_id}, code="conflict")
    for operation, variables in [
        (TEST, {"id": endpoint_id}),
        (REPLAY, {"id": endpoint_id, "since": ago(hours=1)}),
    ]:
        await gql_error(operation, variables, code="conflict")
    await gql(UPDATE, {"id": endpoint_id, "input": {"enabled": True}})
    retried = (await gql(RETRY, {"id": delivery_id}))["retryWebhookDelivery"]

    assert failed["id"] == delivery_id and "disabled" in failed["lastError"]
    assert "enable it first" in refused["message"]
    assert retried["id"] == delivery_id and retried["status"] == "PENDING"
    assert [d["id"] for d in (await _deliveries(gql, endpoint_id, status="PENDING"))[0]] == [
        delivery_id
    ]


@pytest.mark.parametrize(
    ("variables", "field", "message"),
    [
        ({"since": "2999-01-01T00:00:00Z"}, "since", "future"),
        ({"since": ago(hours=1), "until": ago(hours=2)}, "until", "before since"),
    ],
)
async def test_a_replay_window_must_make_sense(
    gql_error, create_endpoint, variables, field, message
):
    endpoint_id = (await create_endpoint())["endpoint"]["id"]

    error, _ = await gql_error(REPLAY, {"id": endpoint_id, **variables}, code="validation-error")

    [found] = error["extensions"]["errors"]
    assert found["field"] == field and message in found["message"], found


async def test_unknown_ids_read_as_null_and_cannot_be_changed(gql, gql_error):
    unknown = str(uuid.uuid4())

    assert await gql(GET, {"id": unknown}) == {"webhookEndpoint": None}
    assert await gql(DELIVERY, {"id": unknown}) == {"webhookDelivery": None}
    for operation in (ROTATE, TEST, RETRY):
        error, _ = await gql_error(operation, {"id": unknown}, code="not-found")
        assert unknown in error["message"]
    malformed, _ = await gql_error(GET, {"id": "endpoint-1"}, code="validation-error")
    assert malformed["extensions"]["errors"] == [{"field": "id", "message": "is not a UUID"}]


# -- a real delivery: a receiver on loopback and the delivery worker -------------------


async def _once(gql, delivery_id: str, attempts: int) -> dict:
    """The delivery once it has succeeded after ``attempts`` attempts (waits up to 10 s)."""
    for _ in range(200):
        found = (await gql(DELIVERY, {"id": delivery_id}))["webhookDelivery"]
        if found["status"] == "SUCCEEDED" and found["attempts"] == attempts:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"not delivered after {attempts} attempts: {found}")


async def test_a_delivery_shows_every_attempt_and_retry_sends_it_again_under_its_id(
    gql, create_endpoint, receiver, start_worker
):
    receiver.behaviour = lambda got, earlier: Answer(500 if earlier == 0 else 200)
    created = await create_endpoint(url=receiver.url)
    await start_worker()
    delivery_id = (await gql(TEST, {"id": created["endpoint"]["id"]}))["testWebhookEndpoint"]["id"]

    delivered = await _once(gql, delivery_id, attempts=2)
    retried = (await gql(RETRY, {"id": delivery_id}))["retryWebhookDelivery"]
    redelivered = await _once(gql, delivery_id, attempts=3)

    log = delivered["attemptLog"]
    assert [(a["statusCode"], a["responseBody"]) for a in log] == [(500, "ok"), (200, "ok")]
    assert log[0]["attemptedAt"] < log[1]["attemptedAt"]
    assert all(a["error"] is None and a["durationMs"] >= 0 for a in log)
    assert delivered["lastStatusCode"] == 200 and delivered["deliveredAt"] is not None
    assert retried["status"] == "PENDING"
    assert [a["statusCode"] for a in redelivered["attemptLog"]] == [500, 200, 200]
    # Every attempt carried the delivery's id and the secret createWebhookEndpoint showed.
    assert [got.id for got in receiver.received] == [delivery_id] * 3
    for got in receiver.received:
        payload = Webhook(created["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "webhook.test"
        assert payload["data"]["endpoint_id"] == created["endpoint"]["id"]
