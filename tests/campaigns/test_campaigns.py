"""Campaigns over REST: registration, reads, filters, changes, deletion and their events."""

from datetime import UTC, datetime, timedelta

import pytest

from support import assert_problem, eventually_events


def _at(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def test_a_campaign_is_created_read_listed_changed_and_deleted(api):
    created = await api.post(
        "/v1/campaigns",
        json={"code": "SPRING25", "name": "Spring sale", "channel": "email",
              "cost": 150_000, "currency": "eur", "starts_at": "2025-03-01T00:00:00Z",
              "ends_at": "2025-03-31T00:00:00Z"},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    campaign = created.json()
    location = f"/v1/campaigns/{campaign['id']}"
    assert created.headers["location"] == location and created.headers["etag"] == '"1"'
    assert campaign["currency"] == "EUR" and campaign["cost"] == 150_000
    assert campaign["attribution_window_days"] == 7  # the default
    assert campaign["segment_id"] is None and campaign["status"] == "ended"

    fetched = await api.get(location)
    assert fetched.json() == campaign and fetched.headers["etag"] == '"1"'
    listed = (await api.get("/v1/campaigns")).json()
    assert [c["id"] for c in listed["data"]] == [campaign["id"]] and not listed["has_more"]

    stale = await api.patch(location, json={"name": "x"}, headers={"If-Match": '"2"'})
    assert_problem(stale, 412, "precondition-failed")
    changed = await api.patch(
        location, json={"ends_at": None, "cost": 200_000}, headers={"If-Match": '"1"'}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["ends_at"] is None and changed.json()["status"] == "running"
    assert changed.json()["version"] == 2 and changed.headers["etag"] == '"2"'
    same = await api.patch(location, json={"cost": 200_000})
    assert same.json()["version"] == 2  # nothing changed, nothing counted

    assert_problem(
        await api.delete(location, headers={"If-Match": '"1"'}), 412, "precondition-failed"
    )
    assert (await api.delete(location, headers={"If-Match": '"2"'})).status_code == 204
    assert_problem(await api.get(location), 404, "not-found")
    assert_problem(await api.get(f"{location}/performance"), 404, "not-found")
    assert_problem(await api.patch(location, json={"name": "x"}), 404, "not-found")
    assert (await api.get("/v1/campaigns")).json()["data"] == []

    kinds = ["campaign.created", "campaign.updated", "campaign.deleted"]
    events = await eventually_events(api, 3, type=kinds)
    assert [e["type"] for e in events] == kinds
    assert events[0]["data"] == campaign
    assert events[1]["data"]["cost"] == 200_000 and events[2]["data"]["version"] == 3


async def test_a_code_names_one_live_campaign(api, create_campaign):
    first = await create_campaign(code="SPRING25")
    other = await create_campaign(code="SUMMER25")
    taken = await api.post(
        "/v1/campaigns",
        json={"code": "SPRING25", "name": "x", "channel": "sms", "currency": "EUR",
              "starts_at": "2025-01-01T00:00:00Z"},
    )  # fmt: skip
    assert [e["field"] for e in assert_problem(taken, 409, "conflict")["errors"]] == ["code"]
    renamed = await api.patch(f"/v1/campaigns/{other['id']}", json={"code": "SPRING25"})
    assert [e["field"] for e in assert_problem(renamed, 409, "conflict")["errors"]] == ["code"]
    assert (await api.get(f"/v1/campaigns/{other['id']}")).json()["code"] == "SUMMER25"

    # Once deleted, its code may be registered again.
    assert (await api.delete(f"/v1/campaigns/{first['id']}")).status_code == 204
    again = await create_campaign(code="SPRING25")
    assert again["id"] != first["id"]


VALID = {"code": "X1", "name": "x", "channel": "email", "currency": "EUR",
         "starts_at": "2025-03-01T00:00:00Z"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": "2025-03-01T00:00:00Z"}, "ends_at"),
        ({"ends_at": "2025-02-01T00:00:00Z"}, "ends_at"),
        ({"attribution_window_days": 91}, "attribution_window_days"),
        ({"attribution_window_days": -1}, "attribution_window_days"),
        ({"cost": -5}, "cost"),
        ({"currency": "XYZ"}, "currency"),
        ({"channel": "fax"}, "channel"),
        ({"code": ""}, "code"),
        ({"starts_at": "2025-03-01T00:00:00"}, "starts_at"),  # no offset
        ({"segment_id": "00000000-0000-0000-0000-000000000001"}, "segment_id"),
    ],
)
async def test_an_invalid_campaign_is_refused_naming_the_field(api, change, field):
    problem = assert_problem(
        await api.post("/v1/campaigns", json=VALID | change), 422, "validation-error"
    )
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert (await api.get("/v1/campaigns")).json()["data"] == []


async def test_an_invalid_change_changes_nothing(api, create_campaign):
    campaign = await create_campaign(ends_at="2025-03-31T00:00:00Z")
    url = f"/v1/campaigns/{campaign['id']}"
    for body, field in [
        ({"ends_at": "2025-02-01T00:00:00Z"}, "ends_at"),
        ({"starts_at": "2025-04-01T00:00:00Z"}, "starts_at"),
        ({"name": None}, "name"),
        ({"currency": None}, "currency"),
        ({"segment_id": "00000000-0000-0000-0000-000000000001"}, "segment_id"),
        ({"id": campaign["id"]}, "id"),
    ]:
        problem = assert_problem(await api.patch(url, json=body), 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == [field], problem
    assert (await api.get(url)).json() == campaign


async def test_campaigns_are_filtered_by_channel_segment_status_and_time(api, create_campaign):
    segment = (await api.post("/v1/segments", json={"name": "VIP", "kind": "static"})).json()
    ended = await create_campaign(starts_at=_at(days=-30), ends_at=_at(days=-10))
    running = await create_campaign(channel="sms", starts_at=_at(days=-5), segment_id=segment["id"])
    planned = await create_campaign(starts_at=_at(days=5), ends_at=_at(days=9))

    async def ids(**params: str) -> list[str]:
        response = await api.get("/v1/campaigns", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["data"]]

    assert [c["status"] for c in (await api.get("/v1/campaigns")).json()["data"]] == [
        "ended", "running", "planned"
    ]  # fmt: skip
    assert await ids(status="planned") == [planned["id"]]
    assert await ids(status="ended") == [ended["id"]]
    assert await ids(channel="sms") == [running["id"]]
    assert await ids(segment_id=segment["id"]) == [running["id"]]
    assert await ids(active_at=_at(days=-20)) == [ended["id"]]
    assert await ids(active_at=_at(days=6)) == [running["id"], planned["id"]]
    assert await ids(active_at=_at(days=9)) == [running["id"]]  # ends_at is exclusive
    assert_problem(
        await api.get("/v1/campaigns", params={"status": "paused"}), 422, "validation-error"
    )
    first = (await api.get("/v1/campaigns", params={"limit": 2})).json()
    rest = (await api.get("/v1/campaigns", params={"cursor": first["next_cursor"]})).json()
    assert [c["id"] for c in first["data"] + rest["data"]] == [
        ended["id"], running["id"], planned["id"]
    ]  # fmt: skip


async def test_a_deleted_segment_leaves_its_campaigns_untargeted(api, create_campaign):
    segment = (await api.post("/v1/segments", json={"name": "VIP", "kind": "static"})).json()
    campaign = await create_campaign(segment_id=segment["id"])
    assert campaign["segment_id"] == segment["id"]
    assert (await api.delete(f"/v1/segments/{segment['id']}")).status_code == 204
    assert (await api.get(f"/v1/campaigns/{campaign['id']}")).json()["segment_id"] is None


async def test_a_retried_creation_registers_one_campaign(api):
    headers = {"Idempotency-Key": "campaign-1"}
    first = await api.post("/v1/campaigns", json=VALID, headers=headers)
    again = await api.post("/v1/campaigns", json=VALID, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len((await api.get("/v1/campaigns")).json()["data"]) == 1
    other = await api.post("/v1/campaigns", json=VALID | {"code": "X2"}, headers=headers)
    assert_problem(other, 422, "idempotency-key-reused")


async def test_reading_and_writing_take_the_campaign_scopes(api, key_for, create_campaign):
    campaign = await create_campaign()
    reader = await key_for("campaigns:read")
    assert (await api.get(f"/v1/campaigns/{campaign['id']}", headers=reader)).status_code == 200
    refused = await api.patch(f"/v1/campaigns/{campaign['id']}", json={"name": "x"}, headers=reader)
    assert_problem(refused, 403, "forbidden")
    other = await key_for("segments:read")
    assert_problem(await api.get("/v1/campaigns", headers=other), 403, "forbidden")
