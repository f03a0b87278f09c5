"""Segments made of segments: membership as last refreshed, and no cycles."""

from support import assert_problem

GERMANS = {"field": "country", "op": "eq", "value": "DE"}
VIPS = {"field": "tags", "op": "contains", "value": "vip"}


def member_of(segment: dict) -> dict:
    return {"segment": segment["id"]}


async def test_a_segment_of_segments_uses_their_members_as_last_refreshed(
    new_customer, create_segment, refresh, member_ids, search
):
    ada = await new_customer(address={"country": "DE"}, tags=["vip"])
    await new_customer(address={"country": "DE"})
    await new_customer(tags=["vip"])
    germans = await create_segment(GERMANS)
    german_vips = await create_segment({"all": [member_of(germans), VIPS]})

    assert (await refresh(german_vips["id"]))["members"] == 0  # germans not refreshed yet
    await refresh(germans["id"])
    assert (await refresh(german_vips["id"]))["members"] == 1
    assert await member_ids(german_vips["id"]) == {ada["id"]}
    assert await search({"not": member_of(germans)}) == await search({"not": GERMANS})


async def test_a_cycle_is_refused_naming_it(api, create_segment):
    a = await create_segment(GERMANS, name="A")
    b = await create_segment({"any": [VIPS, member_of(a)]}, name="B")
    c = await create_segment({"all": [GERMANS, member_of(b)]}, name="C")

    for segment, condition, path, cycle in [
        (a, member_of(a), "condition.segment", "A -> A"),
        (a, {"all": [GERMANS, {"not": member_of(b)}]}, "condition.all.1.not.segment",
         "A -> B -> A"),
        (a, {"any": [member_of(c)]}, "condition.any.0.segment", "A -> C -> B -> A"),
    ]:  # fmt: skip
        response = await api.patch(f"/v1/segments/{segment['id']}", json={"condition": condition})
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"] == [
            {"field": path, "message": f"would make a cycle: {cycle}", "location": "body"}
        ]
        assert cycle in problem["detail"]
    assert (await api.get(f"/v1/segments/{a['id']}")).json()["condition"] == GERMANS
    # Referring to the same segments without closing a loop is fine.
    fine = await api.patch(
        f"/v1/segments/{c['id']}", json={"condition": {"all": [member_of(a), member_of(b)]}}
    )
    assert fine.status_code == 200, fine.text


async def test_a_segment_in_use_cannot_be_deleted(api, create_segment):
    germans = await create_segment(GERMANS, name="Germans")
    await create_segment({"not": member_of(germans)}, name="Foreigners")
    await create_segment({"all": [VIPS, member_of(germans)]}, name="German VIPs")

    refused = await api.delete(f"/v1/segments/{germans['id']}")
    problem = assert_problem(refused, 409, "conflict")
    assert "Foreigners, German VIPs" in problem["detail"]
    assert problem["errors"][0]["field"] == "segment_id"
    assert (await api.get(f"/v1/segments/{germans['id']}")).status_code == 200
