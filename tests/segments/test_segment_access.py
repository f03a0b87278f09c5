"""Scopes and personal data: segments:read|write, and pii:read for personal fields."""

from support import assert_problem

BY_EMAIL = {
    "all": [
        {"field": "tags", "op": "contains", "value": "vip"},
        {"any": [{"field": "email_domain", "op": "eq", "value": "example.com"}]},
        {"not": {"field": "birth_date", "op": "gt", "value": "2000-01-01"}},
    ]
}


async def test_conditions_on_personal_fields_need_pii_read(api, key_for, new_customer, search):
    ada = await new_customer(email="ada@example.com", tags=["vip"], birth_date="1990-01-01")
    for scopes, route, body in [
        (("customers:read",), "/v1/customers/search", {}),
        (("segments:read",), "/v1/segments/preview", {}),
        (("segments:write",), "/v1/segments", {"name": "VIP mail"}),
    ]:
        headers = await key_for(*scopes)
        refused = await api.post(route, json={**body, "condition": BY_EMAIL}, headers=headers)
        problem = assert_problem(refused, 403, "forbidden")
        assert "pii:read" in problem["detail"]
        assert [e["field"] for e in problem["errors"]] == [
            "condition.all.1.any.0.field",
            "condition.all.2.not.field",
        ]
        allowed = await key_for(*scopes, "pii:read")
        response = await api.post(route, json={**body, "condition": BY_EMAIL}, headers=allowed)
        assert response.is_success, response.text
    with_pii = await key_for("customers:read", "pii:read")
    assert await search(BY_EMAIL, headers=with_pii) == {ada["id"]}


async def test_without_pii_read_stored_personal_values_are_withheld(api, key_for, create_segment):
    segment = await create_segment(BY_EMAIL)
    reader = await key_for("segments:read")
    fetched = (await api.get(f"/v1/segments/{segment['id']}", headers=reader)).json()
    [listed] = (await api.get("/v1/segments", headers=reader)).json()["data"]
    for shown in (fetched, listed):
        assert shown["redacted_fields"] == [
            "condition.all.1.any.0.value",
            "condition.all.2.not.value",
        ]
        assert shown["condition"]["all"][0] == BY_EMAIL["all"][0]
        assert shown["condition"]["all"][1]["any"][0]["value"] is None
        assert shown["condition"]["all"][2]["not"] == {
            "field": "birth_date",
            "op": "gt",
            "value": None,
        }
    with_pii = await key_for("segments:read", "pii:read")
    full = await api.get(f"/v1/segments/{segment['id']}", headers=with_pii)
    assert full.json()["condition"] == BY_EMAIL and full.json()["redacted_fields"] == []
    # Renaming it keeps the condition, which the key could not have written itself.
    writer = await key_for("segments:write")
    renamed = await api.patch(f"/v1/segments/{segment['id']}", json={"name": "x"}, headers=writer)
    assert renamed.status_code == 200, renamed.text
    assert (await api.get(f"/v1/segments/{segment['id']}")).json()["condition"] == BY_EMAIL


async def test_reading_and_writing_segments_take_their_scopes(api, key_for, create_segment):
    segment = await create_segment({"field": "kind", "op": "eq", "value": "consumer"})
    reader, writer = await key_for("segments:read"), await key_for("segments:write")
    assert (await api.get(f"/v1/segments/{segment['id']}", headers=reader)).status_code == 200
    denied = await api.post(f"/v1/segments/{segment['id']}/refresh", headers=reader)
    assert "segments:write" in assert_problem(denied, 403, "forbidden")["detail"]
    assert (await api.post(f"/v1/segments/{segment['id']}/refresh", headers=writer)).is_success
    # write implies read
    assert (await api.get(f"/v1/segments/{segment['id']}/count", headers=writer)).is_success
    search = await api.post(
        "/v1/customers/search", json={"condition": segment["condition"]}, headers=reader
    )
    assert "customers:read" in assert_problem(search, 403, "forbidden")["detail"]
