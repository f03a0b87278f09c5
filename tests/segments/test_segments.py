"""Segments over REST: definitions, refreshes with their events and history, members,
counts, previews and a customer's segments."""

import pytest

from support import assert_problem, eventually_events

GERMANS = {"field": "country", "op": "eq", "value": "DE"}


def german(**fields: object) -> dict:
    return {"address": {"country": "DE"}, **fields}


async def test_a_segment_is_created_read_listed_changed_and_deleted(api, create_segment):
    created = await api.post("/v1/segments", json={"name": "Germans", "condition": GERMANS})
    assert created.status_code == 201, created.text
    segment = created.json()
    assert created.headers["location"] == f"/v1/segments/{segment['id']}"
    assert created.headers["etag"] == '"1"'
    assert segment["kind"] == "rule" and segment["condition"] == GERMANS
    assert segment["refresh_interval"] == 86_400  # daily unless told
    assert segment["refreshed_at"] is None
    assert segment["next_refresh_at"] == segment["created_at"]  # due at once

    fetched = await api.get(created.headers["location"])
    assert fetched.json() == segment and fetched.headers["etag"] == '"1"'
    static = await create_segment(kind="static")
    listed = (await api.get("/v1/segments")).json()["data"]
    assert [s["id"] for s in listed] == [segment["id"], static["id"]]
    rules = (await api.get("/v1/segments", params={"kind": "rule"})).json()["data"]
    assert [s["id"] for s in rules] == [segment["id"]]

    stale = await api.patch(
        created.headers["location"], json={"name": "x"}, headers={"If-Match": '"3"'}
    )
    assert_problem(stale, 412, "precondition-failed")
    changed = await api.patch(
        created.headers["location"],
        json={"description": "Customers in Germany", "refresh_interval": None},
        headers={"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["description"] == "Customers in Germany"
    assert changed.json()["refresh_interval"] is None
    assert changed.json()["next_refresh_at"] is None  # refreshed on request only now
    assert changed.json()["version"] == 2 and changed.headers["etag"] == '"2"'
    unchanged = await api.patch(created.headers["location"], json={"description": None})
    assert unchanged.json()["description"] is None and unchanged.json()["version"] == 3

    deleted = await api.delete(created.headers["location"], headers={"If-Match": '"3"'})
    assert deleted.status_code == 204
    assert_problem(await api.get(created.headers["location"]), 404, "not-found")


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"name": "x", "kind": "rule"}, "condition", "needs a condition"),
        ({"name": "x", "kind": "model", "condition": GERMANS}, "condition", "one score condition"),
        ({"name": "x", "kind": "static", "condition": GERMANS}, "condition", "no condition"),
        ({"name": "x", "kind": "static", "refresh_interval": 3600}, "refresh_interval", "never"),
        ({"name": "x", "condition": GERMANS, "refresh_interval": 5}, "refresh_interval", "60"),
        ({"name": "", "condition": GERMANS}, "name", "at least 1"),
        ({"name": "x", "kind": "smart", "condition": GERMANS}, "kind", "'rule'"),
    ],
)
async def test_a_segment_must_fit_its_kind(api, body, field, words):
    problem = assert_problem(await api.post("/v1/segments", json=body), 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert words in problem["errors"][0]["message"]


async def test_changes_must_fit_the_kind_which_is_fixed(api, create_segment):
    rule = await create_segment(GERMANS)
    static = await create_segment(kind="static")
    for url, body, field in [
        (f"/v1/segments/{rule['id']}", {"condition": None}, "condition"),
        (f"/v1/segments/{rule['id']}", {"name": None}, "name"),
        (f"/v1/segments/{rule['id']}", {"kind": "static"}, "kind"),
        (f"/v1/segments/{static['id']}", {"condition": GERMANS}, "condition"),
        (f"/v1/segments/{static['id']}", {"refresh_interval": 600}, "refresh_interval"),
    ]:
        problem = assert_problem(await api.patch(url, json=body), 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == [field], problem


async def test_names_are_unique_whatever_their_case(api, create_segment):
    first = await create_segment(GERMANS, name="Germans")
    other = await create_segment(GERMANS, name="Others")
    taken = await api.post("/v1/segments", json={"name": "GERMANS", "condition": GERMANS})
    assert assert_problem(taken, 409, "conflict")["errors"][0]["field"] == "name"
    renamed = await api.patch(f"/v1/segments/{other['id']}", json={"name": "germans"})
    assert_problem(renamed, 409, "conflict")
    assert (await api.patch(f"/v1/segments/{first['id']}", json={"name": "GERMANS"})).is_success


async def test_a_refresh_records_who_entered_and_exited(api, new_customer, create_segment, refresh):
    ada, bob = await new_customer(**german()), await new_customer(**german())
    await new_customer(address={"country": "FR"})
    segment = await create_segment(GERMANS, name="Germans")

    first = await refresh(segment["id"])
    assert (first["entered"], first["exited"], first["members"]) == (2, 0, 2)
    again = await refresh(segment["id"])
    assert (again["entered"], again["exited"], again["members"]) == (0, 0, 2)

    moved = await api.patch(f"/v1/customers/{bob['id']}", json={"address": {"country": "AT"}})
    assert moved.is_success
    cleo = await new_customer(**german())
    third = await refresh(segment["id"])
    assert (third["entered"], third["exited"], third["members"]) == (1, 1, 2)

    entered = await eventually_events(api, 3, type="segment.entered")
    exited = await eventually_events(api, 1, type="segment.exited")
    assert sorted(e["customer_id"] for e in entered) == sorted([ada["id"], bob["id"], cleo["id"]])
    assert [e["customer_id"] for e in exited] == [bob["id"]]
    assert exited[0]["data"] == {
        "segment_id": segment["id"],
        "segment_name": "Germans",
        "customer_id": bob["id"],
    }
    fetched = (await api.get(f"/v1/segments/{segment['id']}")).json()
    assert fetched["refreshed_at"] == third["refreshed_at"]
    assert fetched["next_refresh_at"] > fetched["refreshed_at"]

    history = (await api.get(f"/v1/segments/{segment['id']}/history")).json()["data"]
    stays = {(s["customer_id"], s["exited_at"] is None) for s in history}
    assert stays == {(ada["id"], True), (bob["id"], False), (cleo["id"], True)}
    assert history[0]["customer_id"] == cleo["id"]  # latest entry first

    # Bob comes back: a second stay.
    await api.patch(f"/v1/customers/{bob['id']}", json={"address": {"country": "DE"}})
    assert (await refresh(segment["id"]))["entered"] == 1
    bobs = await api.get(f"/v1/segments/{segment['id']}/history", params={"customer_id": bob["id"]})
    assert [s["exited_at"] is None for s in bobs.json()["data"]] == [True, False]


async def test_members_are_paged_and_rendered_as_the_customers_list_renders_them(
    api, key_for, new_customer, create_segment, refresh
):
    ids = [(await new_customer(**german(first_name=f"N{n}")))["id"] for n in range(5)]
    segment = await create_segment(GERMANS)
    await refresh(segment["id"])

    seen, cursor = [], None
    while True:
        params = {"limit": 2, "sort": "created_at", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"/v1/segments/{segment['id']}/members", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == ids

    reader = await key_for("segments:read")
    members = await api.get(f"/v1/segments/{segment['id']}/members", headers=reader)
    listed = await api.get("/v1/customers", headers=await key_for("customers:read"))
    assert members.json()["data"] == listed.json()["data"]  # newest first, redacted alike
    assert members.json()["data"][0]["first_name"] is None
    assert "first_name" in members.json()["data"][0]["redacted_fields"]
    count = await api.get(f"/v1/segments/{segment['id']}/count", headers=reader)
    assert count.json()["members"] == 5


async def test_the_count_is_of_live_members_as_last_refreshed(
    api, new_customer, create_segment, refresh
):
    ada, _ = await new_customer(**german()), await new_customer(**german())
    segment = await create_segment(GERMANS)
    counted = await api.get(f"/v1/segments/{segment['id']}/count")
    assert counted.json() == {"members": 0, "refreshed_at": None}
    report = await refresh(segment["id"])
    await new_customer(**german())  # not a member until the next refresh
    assert (await api.delete(f"/v1/customers/{ada['id']}")).status_code == 204
    counted = await api.get(f"/v1/segments/{segment['id']}/count")
    assert counted.json() == {"members": 1, "refreshed_at": report["refreshed_at"]}


async def test_a_preview_counts_and_samples_without_saving_anything(api, new_customer):
    for n in range(4):
        await new_customer(**german(first_name=f"P{n}"))
    await new_customer(address={"country": "FR"})

    response = await api.post("/v1/segments/preview", json={"condition": GERMANS, "sample": 3})
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["count"] == 4
    assert [c["first_name"] for c in preview["sample"]] == ["P3", "P2", "P1"]
    none = await api.post("/v1/segments/preview", json={"condition": GERMANS, "sample": 0})
    assert none.json() == {"count": 4, "sample": []}
    assert (await api.get("/v1/segments")).json()["data"] == []
    assert await eventually_events(api, 0, type=["segment.entered"]) == []


async def test_a_customers_segments_say_when_they_entered(
    api, new_customer, create_segment, refresh
):
    ada = await new_customer(**german(tags=["vip"]))
    germans = await create_segment(GERMANS, name="Germans")
    vips = await create_segment({"field": "tags", "op": "contains", "value": "vip"}, name="VIPs")
    await create_segment({"field": "country", "op": "eq", "value": "FR"}, name="French")
    reports = [await refresh(s["id"]) for s in (germans, vips)]

    response = await api.get(f"/v1/customers/{ada['id']}/segments")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [(m["segment"]["name"], m["entered_at"]) for m in data] == [
        ("Germans", reports[0]["refreshed_at"]),
        ("VIPs", reports[1]["refreshed_at"]),
    ]
    first = await api.get(f"/v1/customers/{ada['id']}/segments", params={"limit": 1})
    second = await api.get(
        f"/v1/customers/{ada['id']}/segments",
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
    )
    assert [m["segment"]["name"] for m in second.json()["data"]] == ["VIPs"]
    unknown = await api.get("/v1/customers/01a20000-0000-7000-8000-000000000000/segments")
    assert_problem(unknown, 404, "not-found")


async def test_deleting_a_segment_lets_its_members_exit(api, new_customer, create_segment, refresh):
    ada = await new_customer(**german())
    segment = await create_segment(GERMANS)
    await refresh(segment["id"])
    assert (await api.delete(f"/v1/segments/{segment['id']}")).status_code == 204
    [exited] = await eventually_events(api, 1, type="segment.exited")
    assert exited["customer_id"] == ada["id"] and exited["data"]["segment_id"] == segment["id"]
    assert (await api.get(f"/v1/customers/{ada['id']}/segments")).json()["data"] == []


async def test_unknown_segments_are_404s(api):
    missing = "/v1/segments/01a20000-0000-7000-8000-000000000000"
    someone = "01a20000-0000-7000-8000-000000000001"
    for method, path, body in [
        ("GET", missing, None),
        ("PATCH", missing, {}),
        ("DELETE", missing, None),
        ("POST", f"{missing}/refresh", None),
        ("GET", f"{missing}/count", None),
        ("GET", f"{missing}/members", None),
        ("GET", f"{missing}/history", None),
        ("POST", f"{missing}/members", {"customer_ids": [someone]}),
        ("DELETE", f"{missing}/members/{someone}", None),
    ]:
        assert_problem(await api.request(method, path, json=body), 404, "not-found")


async def test_creating_changing_and_deleting_a_segment_are_events_without_personal_values(
    api, create_segment
):
    segment = await create_segment(
        name="Ada's", condition={"field": "email", "op": "starts_with", "value": "ada@"}
    )
    await api.patch(f"/v1/segments/{segment['id']}", json={"description": "Ada's addresses"})
    assert (await api.delete(f"/v1/segments/{segment['id']}")).status_code == 204

    types = ["segment.created", "segment.updated", "segment.deleted"]
    found = await eventually_events(api, 3, type=types)
    assert [e["type"] for e in found] == types
    assert {e["data"]["id"] for e in found} == {segment["id"]}
    assert found[1]["data"]["description"] == "Ada's addresses"
    assert "ada@" not in str(found[0]["data"])  # a personal value: withheld from the feed
