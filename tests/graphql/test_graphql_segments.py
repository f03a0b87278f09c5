"""Segments over GraphQL: the same services, rules, scopes and data as REST."""

SEGMENT_FIELDS = """
    id name description kind condition refreshInterval refreshedAt nextRefreshAt
    createdAt updatedAt version redactedFields
"""
CREATE = f"""mutation($input: SegmentInput!) {{
    createSegment(input: $input) {{ {SEGMENT_FIELDS} }}
}}"""
UPDATE = f"""mutation($id: ID!, $input: SegmentPatchInput!, $version: Int) {{
    updateSegment(id: $id, input: $input, ifMatchVersion: $version) {{ {SEGMENT_FIELDS} }}
}}"""
DELETE = "mutation($id: ID!) { deleteSegment(id: $id) }"
REFRESH = """mutation($id: ID!) {
    refreshSegment(id: $id) { entered exited members refreshedAt }
}"""
GET = f"query($id: ID!) {{ segment(id: $id) {{ {SEGMENT_FIELDS} }} }}"
LIST = """query($first: Int!, $after: String, $kind: SegmentKind) {
    segments(first: $first, after: $after, kind: $kind) {
        edges { cursor node { id name } }
        pageInfo { hasNextPage endCursor }
    }
}"""
MEMBERS = """query($id: ID!, $first: Int!, $after: String) {
    segment(id: $id) {
        memberCount
        members(first: $first, after: $after, sort: CREATED_AT) {
            edges { node { id firstName redactedFields } }
            pageInfo { hasNextPage endCursor }
        }
        history { edges { node { customerId enteredAt exitedAt } } }
    }
}"""
PREVIEW = """query($condition: JSON!, $sample: Int!) {
    segmentPreview(condition: $condition, sample: $sample) { count sample { id firstName } }
}"""
CUSTOMER_SEGMENTS = """query($customerId: ID!) {
    customerSegments(customerId: $customerId) { edges { node { enteredAt segment { name } } } }
}"""
SEARCH = """query($condition: JSON!, $after: String) {
    searchCustomers(condition: $condition, first: 2, after: $after) {
        edges { node { id } }
        pageInfo { hasNextPage endCursor }
    }
}"""
ADD = """mutation($id: ID!, $customerIds: [ID!]!) {
    addSegmentMembers(id: $id, customerIds: $customerIds) { added members }
}"""
REMOVE = """mutation($id: ID!, $customerId: ID!) {
    removeSegmentMember(id: $id, customerId: $customerId)
}"""
GERMANS = {"field": "country", "op": "eq", "value": "DE"}


def german(**fields: object) -> dict:
    return {"address": {"country": "DE"}, **fields}


async def test_a_segment_is_managed_as_over_rest(api, gql, gql_error, assert_same_as_rest):
    created = (await gql(CREATE, {"input": {"name": "Germans", "condition": GERMANS}}))[
        "createSegment"
    ]
    assert created["kind"] == "RULE" and created["refreshInterval"] == 86_400
    rest = await api.get(f"/v1/segments/{created['id']}")
    assert_same_as_rest(created, rest.json())
    assert (await gql(GET, {"id": created["id"]}))["segment"] == created

    error, _ = await gql_error(
        UPDATE,
        {"id": created["id"], "input": {"name": "x"}, "version": 7},
        code="precondition-failed",
    )
    assert error["extensions"]["status"] == 412
    updated = await gql(
        UPDATE,
        {"id": created["id"], "input": {"description": "In Germany"}, "version": 1},
    )
    assert updated["updateSegment"]["description"] == "In Germany"
    assert updated["updateSegment"]["version"] == 2

    static = (await gql(CREATE, {"input": {"name": "Picked", "kind": "STATIC"}}))["createSegment"]
    listed = await gql(LIST, {"first": 1})
    assert [e["node"]["name"] for e in listed["segments"]["edges"]] == ["Germans"]
    after = listed["segments"]["pageInfo"]["endCursor"]
    rest_next = (await api.get("/v1/segments", params={"limit": 1})).json()["next_cursor"]
    assert after == rest_next
    second = await gql(LIST, {"first": 1, "after": after})
    assert [e["node"]["id"] for e in second["segments"]["edges"]] == [static["id"]]
    only_static = await gql(LIST, {"first": 5, "kind": "STATIC"})
    assert [e["node"]["id"] for e in only_static["segments"]["edges"]] == [static["id"]]

    assert (await gql(DELETE, {"id": created["id"]}))["deleteSegment"] == created["id"]
    assert (await gql(GET, {"id": created["id"]}))["segment"] is None


async def test_refresh_members_and_history(gql, key_for, new_customer):
    ada = await new_customer(**german(first_name="Ada"))
    bob = await new_customer(**german(first_name="Bob"))
    segment = (await gql(CREATE, {"input": {"name": "Germans", "condition": GERMANS}}))[
        "createSegment"
    ]

    report = (await gql(REFRESH, {"id": segment["id"]}))["refreshSegment"]
    assert (report["entered"], report["exited"], report["members"]) == (2, 0, 2)

    reader = await key_for("segments:read")
    page = (await gql(MEMBERS, {"id": segment["id"], "first": 1}, headers=reader))["segment"]
    assert page["memberCount"] == 2
    [first] = page["members"]["edges"]
    assert first["node"]["id"] == ada["id"] and first["node"]["firstName"] is None
    assert "firstName" in first["node"]["redactedFields"]
    after = page["members"]["pageInfo"]["endCursor"]
    rest = await gql(MEMBERS, {"id": segment["id"], "first": 1, "after": after})
    assert [e["node"]["id"] for e in rest["segment"]["members"]["edges"]] == [bob["id"]]
    assert {e["node"]["customerId"] for e in rest["segment"]["history"]["edges"]} == {
        ada["id"],
        bob["id"],
    }

    memberships = await gql(CUSTOMER_SEGMENTS, {"customerId": ada["id"]})
    [edge] = memberships["customerSegments"]["edges"]
    assert edge["node"] == {"enteredAt": report["refreshedAt"], "segment": {"name": "Germans"}}


async def test_preview_and_search_take_the_same_json_as_rest(gql, new_customer):
    ids = [(await new_customer(**german(first_name=f"P{n}")))["id"] for n in range(3)]
    await new_customer(address={"country": "FR"})

    preview = (await gql(PREVIEW, {"condition": GERMANS, "sample": 2}))["segmentPreview"]
    assert preview["count"] == 3
    assert [c["firstName"] for c in preview["sample"]] == ["P2", "P1"]

    first = (await gql(SEARCH, {"condition": GERMANS}))["searchCustomers"]
    after = first["pageInfo"]["endCursor"]
    second = (await gql(SEARCH, {"condition": GERMANS, "after": after}))["searchCustomers"]
    found = [e["node"]["id"] for page in (first, second) for e in page["edges"]]
    assert found == ids[::-1] and not second["pageInfo"]["hasNextPage"]


async def test_static_members_are_added_and_removed(gql, gql_error, new_customer):
    ada, bob = await new_customer(), await new_customer()
    segment = (await gql(CREATE, {"input": {"name": "Picked", "kind": "STATIC"}}))["createSegment"]
    added = await gql(ADD, {"id": segment["id"], "customerIds": [ada["id"], bob["id"]]})
    assert added["addSegmentMembers"] == {"added": 2, "members": 2}
    removed = await gql(REMOVE, {"id": segment["id"], "customerId": bob["id"]})
    assert removed["removeSegmentMember"] == bob["id"]
    error, _ = await gql_error(
        ADD, {"id": segment["id"], "customerIds": ["nope"]}, code="validation-error"
    )
    assert error["extensions"]["errors"][0]["field"] == "customerIds.0"
    await gql_error(REFRESH, {"id": segment["id"]}, code="conflict")


async def test_errors_name_the_path_in_the_condition(gql_error, key_for):
    bad = {"all": [GERMANS, {"field": "shoe_size", "op": "eq", "value": 4}]}
    error, _ = await gql_error(
        CREATE, {"input": {"name": "x", "condition": bad}}, code="validation-error"
    )
    assert error["extensions"]["errors"][0]["field"] == "condition.all.1.field"
    error, _ = await gql_error(
        PREVIEW, {"condition": {"not": {"x": 1}}, "sample": 1}, code="validation-error"
    )
    assert error["extensions"]["errors"][0]["field"] == "condition.not"
    personal = {"field": "email", "op": "eq", "value": "ada@example.com"}
    error, _ = await gql_error(
        SEARCH,
        {"condition": personal},
        code="forbidden",
        headers=await key_for("customers:read"),
    )
    assert error["extensions"]["errors"][0]["field"] == "condition.field"


async def test_segments_take_their_scopes(gql_error, key_for):
    reader = await key_for("segments:read")
    error, _ = await gql_error(
        CREATE, {"input": {"name": "x", "condition": GERMANS}}, code="forbidden", headers=reader
    )
    assert "segments:write" in error["message"]
    error, _ = await gql_error(SEARCH, {"condition": GERMANS}, code="forbidden", headers=reader)
    assert "customers:read" in error["message"]
    error, _ = await gql_error(
        LIST, {"first": 1}, code="forbidden", headers=await key_for("customers:read")
    )
    assert "segments:read" in error["message"]
