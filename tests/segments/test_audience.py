"""A segment's audience on a channel: its members who consented to be contacted there."""

from support import assert_problem

GRANTED = {"granted": True}
WITHDRAWN = {"granted": False}


async def _audience(api, segment_id: str, channel: str, **params: object) -> list[str]:
    response = await api.get(
        f"/v1/segments/{segment_id}/audience", params={"channel": channel, **params}
    )
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


async def _static_segment(api, create_segment, *customers: dict) -> str:
    segment = await create_segment(kind="static")
    added = await api.post(
        f"/v1/segments/{segment['id']}/members", json={"customer_ids": [c["id"] for c in customers]}
    )
    assert added.status_code == 200, added.text
    return segment["id"]


async def test_only_members_with_a_granted_consent_appear(api, new_customer, create_segment):
    ada = await new_customer(consents={"email": GRANTED, "sms": WITHDRAWN})
    bob = await new_customer(consents={"email": WITHDRAWN})
    cleo = await new_customer(consents={"sms": GRANTED})
    dan = await new_customer()
    gone = await new_customer(consents={"email": GRANTED})
    outsider = await new_customer(consents={"email": GRANTED, "sms": GRANTED})
    segment_id = await _static_segment(api, create_segment, ada, bob, cleo, dan, gone)
    assert (await api.delete(f"/v1/customers/{gone['id']}")).status_code == 204

    assert await _audience(api, segment_id, "email") == [ada["id"]]
    assert await _audience(api, segment_id, "sms") == [cleo["id"]]
    assert await _audience(api, segment_id, "phone") == []
    assert outsider["id"] not in await _audience(api, segment_id, "sms")


async def test_withdrawing_consent_leaves_the_audience(api, new_customer, create_segment):
    ada = await new_customer(consents={"email": GRANTED})
    bob = await new_customer(consents={"email": GRANTED})
    segment_id = await _static_segment(api, create_segment, ada, bob)
    assert set(await _audience(api, segment_id, "email")) == {ada["id"], bob["id"]}

    withdrawn = await api.patch(
        f"/v1/customers/{ada['id']}", json={"consents": {"email": WITHDRAWN}}
    )
    assert withdrawn.status_code == 200, withdrawn.text
    assert await _audience(api, segment_id, "email") == [bob["id"]]

    regranted = await api.patch(f"/v1/customers/{ada['id']}", json={"consents": {"email": GRANTED}})
    assert regranted.status_code == 200, regranted.text
    assert set(await _audience(api, segment_id, "email")) == {ada["id"], bob["id"]}


async def test_the_audience_pages_by_keyset(api, new_customer, create_segment):
    consented = [await new_customer(consents={"email": GRANTED}) for _ in range(5)]
    silent = [await new_customer() for _ in range(3)]
    segment_id = await _static_segment(api, create_segment, *consented, *silent)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"channel": "email", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(f"/v1/segments/{segment_id}/audience", params=params)).json()
        seen += [c["id"] for c in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break

    assert pages == 3
    # Newest first by default, each consented member once.
    assert seen == [c["id"] for c in reversed(consented)]


async def test_scopes_redaction_and_problems(api, key_for, new_customer, create_segment):
    ada = await new_customer(consents={"email": GRANTED}, first_name="Ada")
    segment_id = await _static_segment(api, create_segment, ada)
    path = f"/v1/segments/{segment_id}/audience"

    # Like the members list: segments:read suffices, personal fields need pii:read.
    reader = await key_for("segments:read")
    [shown] = (await api.get(path, params={"channel": "email"}, headers=reader)).json()["data"]
    assert shown["id"] == ada["id"] and shown["email"] is None
    assert "email" in shown["redacted_fields"]
    full = await key_for("segments:read", "pii:read")
    [shown] = (await api.get(path, params={"channel": "email"}, headers=full)).json()["data"]
    assert shown["email"] == ada["email"]

    denied = await api.get(
        path, params={"channel": "email"}, headers=await key_for("customers:read")
    )
    assert_problem(denied, 403, "forbidden")
    assert_problem(await api.get(path), 422, "validation-error")
    unknown = "/v1/segments/01a20000-0000-7000-8000-000000000000/audience"
    assert_problem(await api.get(unknown, params={"channel": "email"}), 404, "not-found")


async def test_the_audience_over_graphql(api, new_customer, create_segment):
    consented = [await new_customer(consents={"email": GRANTED}) for _ in range(3)]
    segment_id = await _static_segment(api, create_segment, *consented, await new_customer())
    query = """query($id: ID!, $after: String) { segment(id: $id) {
        audience(channel: EMAIL, first: 2, after: $after) {
            edges { node { id } } pageInfo { hasNextPage endCursor } } } }"""

    async def page(after: str | None) -> dict:
        body = await api.post(
            "/graphql", json={"query": query, "variables": {"id": segment_id, "after": after}}
        )
        assert "errors" not in body.json(), body.text
        return body.json()["data"]["segment"]["audience"]

    first = await page(None)
    second = await page(first["pageInfo"]["endCursor"])

    assert first["pageInfo"]["hasNextPage"] and not second["pageInfo"]["hasNextPage"]
    ids = [e["node"]["id"] for e in first["edges"] + second["edges"]]
    assert (
        ids == await _audience(api, segment_id, "email") == [c["id"] for c in reversed(consented)]
    )
