"""Static segments: members added and removed by id, with the same events and history."""

from support import assert_problem, eventually_events


async def test_members_are_added_and_removed_by_id(api, new_customer, create_segment, member_ids):
    ada, bob, cleo = [await new_customer() for _ in range(3)]
    segment = await create_segment(kind="static", name="Beta testers")
    assert segment["condition"] is None and segment["refresh_interval"] is None
    members = f"/v1/segments/{segment['id']}/members"

    added = await api.post(members, json={"customer_ids": [ada["id"], bob["id"], ada["id"]]})
    assert added.status_code == 200, added.text
    assert added.json() == {"added": 2, "members": 2}
    again = await api.post(members, json={"customer_ids": [bob["id"], cleo["id"]]})
    assert again.json() == {"added": 1, "members": 3}
    assert await member_ids(segment["id"]) == {ada["id"], bob["id"], cleo["id"]}

    assert (await api.delete(f"{members}/{bob['id']}")).status_code == 204
    assert_problem(await api.delete(f"{members}/{bob['id']}"), 404, "not-found")
    assert await member_ids(segment["id"]) == {ada["id"], cleo["id"]}
    counted = await api.get(f"/v1/segments/{segment['id']}/count")
    assert counted.json() == {"members": 2, "refreshed_at": None}

    entered = await eventually_events(api, 3, type="segment.entered")
    [exited] = await eventually_events(api, 1, type="segment.exited")
    assert {e["customer_id"] for e in entered} == {ada["id"], bob["id"], cleo["id"]}
    assert exited["data"] == {
        "segment_id": segment["id"],
        "segment_name": "Beta testers",
        "customer_id": bob["id"],
    }
    history = (await api.get(f"/v1/segments/{segment['id']}/history")).json()["data"]
    assert {(s["customer_id"], s["exited_at"] is None) for s in history} == {
        (ada["id"], True),
        (bob["id"], False),
        (cleo["id"], True),
    }


async def test_only_live_customers_can_be_added(api, new_customer, create_segment):
    ada, gone = await new_customer(), await new_customer()
    await api.delete(f"/v1/customers/{gone['id']}")
    segment = await create_segment(kind="static")
    unknown = "01a20000-0000-7000-8000-000000000000"
    response = await api.post(
        f"/v1/segments/{segment['id']}/members",
        json={"customer_ids": [ada["id"], gone["id"], unknown]},
    )
    problem = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in problem["errors"]] == ["customer_ids.1", "customer_ids.2"]
    assert (await api.get(f"/v1/segments/{segment['id']}/count")).json()["members"] == 0


async def test_static_and_dynamic_segments_change_each_their_own_way(
    api, new_customer, create_segment
):
    ada = await new_customer()
    static = await create_segment(kind="static")
    rule = await create_segment({"field": "kind", "op": "eq", "value": "consumer"})
    refreshed = await api.post(f"/v1/segments/{static['id']}/refresh")
    assert_problem(refreshed, 409, "conflict")
    added = await api.post(f"/v1/segments/{rule['id']}/members", json={"customer_ids": [ada["id"]]})
    assert "refresh it instead" in assert_problem(added, 409, "conflict")["detail"]
    removed = await api.delete(f"/v1/segments/{rule['id']}/members/{ada['id']}")
    assert_problem(removed, 409, "conflict")
