"""Customers over GraphQL: the same data, rules and cursors as REST."""

import uuid

import pytest

CUSTOMER_FIELDS = """
    id externalId kind firstName lastName companyName email phone industry birthDate gender
    incomeBand education occupation
    address { line1 line2 city region postalCode country }
    interests values lifestyle preferredChannel
    consents { channel granted at source }
    tags attributes
    acquisition { source channel campaign cost currency }
    lifecycleStage createdAt updatedAt version erasedAt redactedFields
"""
GET = f"query($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}"
CREATE = f"""mutation($input: CustomerInput!) {{
    createCustomer(input: $input) {{ {CUSTOMER_FIELDS} }}
}}"""
UPDATE = f"""mutation($id: ID!, $input: CustomerPatchInput!, $version: Int) {{
    updateCustomer(id: $id, input: $input, ifMatchVersion: $version) {{ {CUSTOMER_FIELDS} }}
}}"""
PAGE = """query($first: Int!, $after: String, $sort: CustomerSort!, $filter: CustomerFilter) {
    customers(first: $first, after: $after, sort: $sort, filter: $filter) {
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
    }
}"""

# Every field set, an acquisition cost beyond GraphQL's 32-bit Int included.
REST_CUSTOMER = {
    "external_id": "crm-42",
    "kind": "industrial",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company_name": "Analytical Engines Ltd",
    "email": "ada@example.com",
    "phone": "+4930123456",
    "industry": "machinery",
    "birth_date": "1985-12-10",
    "gender": "female",
    "income_band": "high",
    "education": "doctorate",
    "occupation": "engineer",
    "address": {
        "line1": "Main St 1",
        "line2": "Floor 2",
        "city": "Berlin",
        "region": "BE",
        "postal_code": "10115",
        "country": "DE",
    },
    "interests": ["tea", "maths"],
    "values": ["quality"],
    "lifestyle": "urban",
    "preferred_channel": "in_person",
    "consents": {
        "email": {"granted": True, "source": "signup-form"},
        "sms": {"granted": False, "at": "2024-01-02T03:04:05Z"},
    },
    "tags": ["vip", "b2b"],
    "attributes": {"tier": {"level": 2}, "score": 1.5, "camelKey": [1, "two"]},
    "acquisition": {
        "source": "fair",
        "channel": "offline",
        "campaign": "spring",
        "cost": 5_000_000_000,
        "currency": "EUR",
    },
}
GRAPHQL_INPUT = {
    "externalId": "crm-42",
    "kind": "INDUSTRIAL",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "companyName": "Analytical Engines Ltd",
    "email": "ada@example.com",
    "phone": "+4930123456",
    "industry": "machinery",
    "birthDate": "1985-12-10",
    "gender": "FEMALE",
    "incomeBand": "high",
    "education": "doctorate",
    "occupation": "engineer",
    "address": {
        "line1": "Main St 1",
        "line2": "Floor 2",
        "city": "Berlin",
        "region": "BE",
        "postalCode": "10115",
        "country": "DE",
    },
    "interests": ["tea", "maths"],
    "values": ["quality"],
    "lifestyle": "urban",
    "preferredChannel": "IN_PERSON",
    "consents": [
        {"channel": "EMAIL", "granted": True, "source": "signup-form"},
        {"channel": "SMS", "granted": False, "at": "2024-01-02T03:04:05+00:00"},
    ],
    "tags": ["vip", "b2b"],
    "attributes": {"tier": {"level": 2}, "score": 1.5, "camelKey": [1, "two"]},
    "acquisition": {
        "source": "fair",
        "channel": "offline",
        "campaign": "spring",
        "cost": 5_000_000_000,
        "currency": "EUR",
    },
}


async def test_a_customer_created_over_rest_reads_the_same_over_graphql(
    api, gql, assert_same_as_rest
):
    rest = (await api.post("/v1/customers", json=REST_CUSTOMER)).json()

    customer = (await gql(GET, {"id": rest["id"]}))["customer"]

    assert customer["acquisition"]["cost"] == 5_000_000_000
    assert customer["preferredChannel"] == "IN_PERSON"
    assert customer["redactedFields"] == []
    assert_same_as_rest(customer, rest)


async def test_a_customer_created_over_graphql_reads_the_same_over_rest_and_is_announced(
    api, gql, assert_same_as_rest, announced
):
    created = (await gql(CREATE, {"input": GRAPHQL_INPUT}))["createCustomer"]

    rest = await api.get(f"/v1/customers/{created['id']}")

    assert rest.status_code == 200
    assert_same_as_rest(created, rest.json())
    [event] = await announced("customer.created")
    assert event["customer_id"] == created["id"]


async def test_fields_left_out_of_create_take_rest_defaults(api, gql, assert_same_as_rest):
    created = (await gql(CREATE, {"input": {"lastName": "Byron"}}))["createCustomer"]

    assert created["kind"] == "CONSUMER"
    assert created["consents"] == [] and created["attributes"] == {} and created["tags"] == []
    assert created["version"] == 1 and created["lifecycleStage"] == "prospect"
    assert_same_as_rest(created, (await api.get(f"/v1/customers/{created['id']}")).json())


async def test_an_unknown_customer_is_null(gql):
    assert await gql(GET, {"id": str(uuid.uuid4())}) == {"customer": None}


async def _ids(gql, **variables) -> tuple[list[str], dict]:
    page = (await gql(PAGE, {"first": 50, "sort": "CREATED_AT", **variables}))["customers"]
    return [e["node"]["id"] for e in page["edges"]], page


async def test_pages_follow_after_without_duplicates_or_gaps(gql, new_customer):
    created = [(await new_customer())["id"] for _ in range(7)]

    seen, after, sizes = [], None, []
    while True:
        ids, page = await _ids(gql, first=3, after=after)
        seen += ids
        sizes.append(len(ids))
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break

    assert sizes == [3, 3, 1]
    assert seen == created
    newest_first = (await gql("{ customers { edges { node { id } } } }"))["customers"]
    assert [e["node"]["id"] for e in newest_first["edges"]] == created[::-1]


async def test_every_edge_cursor_continues_right_after_its_node(gql, new_customer):
    created = [(await new_customer())["id"] for _ in range(5)]
    _, page = await _ids(gql, first=3)

    ids, _ = await _ids(gql, first=2, after=page["edges"][1]["cursor"])

    assert ids == created[2:4]


@pytest.mark.parametrize(
    ("sort", "rest_sort"), [("CREATED_AT", "created_at"), ("UPDATED_AT_DESC", "-updated_at")]
)
async def test_cursors_are_interchangeable_with_rest(api, gql, new_customer, sort, rest_sort):
    for _ in range(7):
        await new_customer()
    _, first = await _ids(gql, first=3, sort=sort)

    rest = (
        await api.get(
            "/v1/customers",
            params={"sort": rest_sort, "limit": 3, "cursor": first["pageInfo"]["endCursor"]},
        )
    ).json()
    second, _ = await _ids(gql, first=3, sort=sort, after=first["pageInfo"]["endCursor"])
    third, _ = await _ids(gql, first=3, sort=sort, after=rest["next_cursor"])
    rest_third = (
        await api.get(
            "/v1/customers", params={"sort": rest_sort, "limit": 3, "cursor": rest["next_cursor"]}
        )
    ).json()

    assert [c["id"] for c in rest["data"]] == second
    assert [c["id"] for c in rest_third["data"]] == third
    assert len(third) == 1


async def test_filters_narrow_the_list(gql, new_customer):
    vip = await new_customer(tags=["vip"], address={"country": "FR"})
    await new_customer(tags=["vip"], address={"country": "DE"})
    await new_customer(address={"country": "FR"})

    ids, _ = await _ids(gql, filter={"tags": ["vip"], "country": "fr"})

    assert ids == [vip["id"]]


async def test_a_key_without_pii_read_sees_personal_fields_redacted(gql, key_for, new_customer):
    customer = await new_customer(
        first_name="Ada",
        phone="+4930123456",
        company_name="Analytical Engines Ltd",
        address={"line1": "Main St 1", "city": "Berlin", "country": "DE"},
    )
    query = """query($id: ID!) {
        customer(id: $id) {
            firstName email phone companyName address { line1 city } redactedFields
        }
        customers { edges { node { firstName email } } }
    }"""

    redacted = await gql(query, {"id": customer["id"]}, headers=await key_for("customers:read"))
    full = await gql(
        query, {"id": customer["id"]}, headers=await key_for("customers:read", "pii:read")
    )

    seen = redacted["customer"]
    assert seen["firstName"] is seen["email"] is seen["phone"] is None
    assert seen["address"] == {"line1": None, "city": "Berlin"}
    assert seen["companyName"] == "Analytical Engines Ltd"
    assert set(seen["redactedFields"]) == {
        "firstName", "lastName", "email", "phone", "birthDate", "address.line1", "address.line2"
    }  # fmt: skip
    assert redacted["customers"]["edges"] == [{"node": {"firstName": None, "email": None}}]
    assert full["customer"]["firstName"] == "Ada"
    assert full["customer"]["address"]["line1"] == "Main St 1"
    assert full["customer"]["redactedFields"] == []


async def test_filtering_by_email_needs_pii_read(gql_error, key_for, new_customer):
    await new_customer(email="ada@example.com")

    error, _ = await gql_error(
        PAGE,
        {"first": 5, "sort": "CREATED_AT", "filter": {"email": "ada@example.com"}},
        code="forbidden",
        headers=await key_for("customers:read"),
    )

    assert error["extensions"]["status"] == 403


async def test_update_merges_like_a_rest_merge_patch(api, gql, new_customer, assert_same_as_rest):
    customer = await new_customer(
        first_name="Ada",
        last_name="Lovelace",
        phone="+4930123456",
        address={"line1": "Main St 1", "city": "Berlin", "country": "DE"},
        attributes={"a": 1, "b": 2},
        consents={"email": {"granted": True}},
    )
    patch = {
        "firstName": "Augusta",
        "phone": None,
        "address": {"city": "Hamburg"},
        "attributes": {"b": None, "c": 3},
        "consents": [{"channel": "SMS", "granted": False}],
    }

    updated = (await gql(UPDATE, {"id": customer["id"], "input": patch, "version": 1}))[
        "updateCustomer"
    ]

    assert updated["firstName"] == "Augusta" and updated["lastName"] == "Lovelace"
    assert updated["phone"] is None
    assert updated["address"]["line1"] == "Main St 1" and updated["address"]["city"] == "Hamburg"
    assert updated["attributes"] == {"a": 1, "c": 3}
    assert {c["channel"]: c["granted"] for c in updated["consents"]} == {
        "EMAIL": True,
        "SMS": False,
    }
    assert updated["version"] == 2
    assert_same_as_rest(updated, (await api.get(f"/v1/customers/{customer['id']}")).json())


async def test_a_stale_if_match_version_changes_nothing(api, gql, gql_error, new_customer):
    customer = await new_customer(first_name="Ada")
    await gql(UPDATE, {"id": customer["id"], "input": {"firstName": "Augusta"}, "version": 1})

    error, data = await gql_error(
        UPDATE,
        {"id": customer["id"], "input": {"firstName": "Lost"}, "version": 1},
        code="precondition-failed",
    )

    assert error["extensions"]["status"] == 412
    assert error["path"] == ["updateCustomer"]
    assert data is None
    current = (await api.get(f"/v1/customers/{customer['id']}")).json()
    assert current["first_name"] == "Augusta" and current["version"] == 2


async def test_updating_an_unknown_customer_is_not_found(gql_error):
    error, _ = await gql_error(
        UPDATE, {"id": str(uuid.uuid4()), "input": {"firstName": "X"}}, code="not-found"
    )
    assert error["extensions"]["status"] == 404


async def test_invalid_input_names_the_graphql_fields_and_writes_nothing(api, gql_error):
    error, data = await gql_error(
        CREATE,
        {"input": {"kind": "INDUSTRIAL", "birthDate": "1800-01-01", "address": {"country": "XX"}}},
        code="validation-error",
    )

    assert data is None
    assert error["extensions"]["status"] == 422
    fields = {e["field"]: e["message"] for e in error["extensions"]["errors"]}
    assert set(fields) == {"companyName", "birthDate", "address.country"}
    assert "industrial" in fields["companyName"]
    assert (await api.get("/v1/customers")).json()["data"] == []


async def test_a_channel_may_have_one_consent(gql_error):
    consents = [{"channel": "EMAIL", "granted": True}, {"channel": "EMAIL", "granted": False}]

    error, _ = await gql_error(CREATE, {"input": {"consents": consents}}, code="validation-error")

    assert [e["field"] for e in error["extensions"]["errors"]] == ["consents"]


async def test_a_patch_leaving_the_customer_invalid_is_a_validation_error(gql_error, new_customer):
    customer = await new_customer(kind="industrial", company_name="Acme")

    error, _ = await gql_error(
        UPDATE, {"id": customer["id"], "input": {"companyName": None}}, code="validation-error"
    )

    assert [e["field"] for e in error["extensions"]["errors"]] == ["companyName"]


async def test_a_taken_email_is_a_conflict(gql_error, new_customer):
    await new_customer(email="ada@example.com")

    error, _ = await gql_error(CREATE, {"input": {"email": "ADA@example.com"}}, code="conflict")

    assert error["extensions"]["status"] == 409
    assert error["extensions"]["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 201}, "first"),
        ({"first": 5, "filter": {"q": "a\u0000b"}}, "q"),
        ({"first": 5, "filter": {"country": "DEU"}}, "country"),
        ({"first": 5, "filter": {"createdAfter": "2024-01-01T00:00:00"}}, "createdAfter"),
    ],
)
async def test_bad_list_arguments_are_validation_errors(gql_error, variables, field):
    error, _ = await gql_error(PAGE, {"sort": "CREATED_AT", **variables}, code="validation-error")
    assert [e["field"] for e in error["extensions"]["errors"]] == [field]


async def test_a_cursor_of_another_order_is_a_validation_error(gql, gql_error, new_customer):
    for _ in range(2):
        await new_customer()
    _, page = await _ids(gql, first=1, sort="CREATED_AT")

    error, _ = await gql_error(
        PAGE,
        {"first": 1, "sort": "UPDATED_AT", "after": page["pageInfo"]["endCursor"]},
        code="validation-error",
    )

    assert error["path"] == ["customers"]
    assert [e["field"] for e in error["extensions"]["errors"]] == ["after"]


async def test_a_malformed_id_is_a_validation_error(gql_error):
    error, data = await gql_error(GET, {"id": "not-a-uuid"}, code="validation-error")

    assert data == {"customer": None}
    assert error["extensions"]["errors"] == [{"field": "id", "message": "is not a UUID"}]
