"""Customers over REST: create, read, merge-patch, conditional requests, delete."""

import json
import uuid

from support import assert_problem, events_of

ADA = {
    "external_id": "crm-1",
    "kind": "consumer",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "Ada@Example.com",
    "phone": "+4930123456",
    "birth_date": "1990-12-10",
    "gender": "female",
    "income_band": "50-75k",
    "address": {"line1": "1 Analytical St", "city": "London", "postal_code": "N1", "country": "gb"},
    "interests": ["mathematics", "poetry", "mathematics"],
    "values": ["curiosity"],
    "preferred_channel": "email",
    "consents": {"email": {"granted": True, "source": "signup-form"}},
    "tags": ["vip"],
    "attributes": {"shoe_size": 38, "prefs": {"newsletter": "weekly"}},
    "acquisition": {"source": "google", "channel": "paid_search", "cost": 1250, "currency": "eur"},
}


async def test_create_returns_the_stored_customer_with_location_and_etag(api):
    response = await api.post("/v1/customers", json=ADA)

    assert response.status_code == 201, response.text
    customer = response.json()
    assert response.headers["location"] == f"/v1/customers/{customer['id']}"
    assert response.headers["etag"] == '"1"'
    assert uuid.UUID(customer["id"]).version == 7
    assert customer["email"] == "Ada@example.com"  # domain part normalised
    assert customer["address"]["country"] == "GB"
    assert customer["interests"] == ["mathematics", "poetry"]
    assert customer["acquisition"] == {
        "source": "google",
        "channel": "paid_search",
        "campaign": None,
        "cost": 1250,
        "currency": "EUR",
    }
    assert customer["consents"]["email"]["granted"] is True
    assert customer["consents"]["email"]["at"]  # defaulted to now
    assert customer["lifecycle_stage"] == "prospect"
    assert customer["version"] == 1
    assert customer["redacted_fields"] == []

    fetched = await api.get(f"/v1/customers/{customer['id']}")
    assert fetched.json() == customer
    created = await events_of(api, type="customer.created")
    assert [e["data"]["id"] for e in created] == [customer["id"]]


async def test_email_is_unique_among_live_customers_case_insensitively(api, new_customer):
    await new_customer(email="grace@example.com")

    response = await api.post("/v1/customers", json={"email": "GRACE@example.com"})

    body = assert_problem(response, 409, "conflict")
    assert body["errors"] == [
        {"field": "email", "message": "is already used by another customer", "location": "body"}
    ]
    assert len(await events_of(api, type="customer.created")) == 1


async def test_external_id_is_unique(api, new_customer):
    await new_customer(external_id="p-1")
    response = await api.post("/v1/customers", json={"external_id": "p-1"})
    assert assert_problem(response, 409, "conflict")["errors"][0]["field"] == "external_id"


async def test_invalid_fields_are_reported_with_their_paths_and_nothing_is_written(api):
    response = await api.post(
        "/v1/customers",
        json={
            "email": "not-an-email",
            "address": {"country": "XX"},
            "birth_date": "2999-01-01",
            "phone": "12345",
            "shoe_size": 40,
            "acquisition": {"cost": 100},
        },
    )

    body = assert_problem(response, 422, "validation-error")
    fields = {e["field"] for e in body["errors"]}
    assert {"email", "address.country", "birth_date", "phone", "shoe_size", "acquisition"} <= fields
    assert all(e["location"] == "body" for e in body["errors"])
    listed = await api.get("/v1/customers")
    assert listed.json()["data"] == []


async def test_organisations_need_a_company_name(api):
    response = await api.post(
        "/v1/customers", json={"kind": "government", "email": "x@gov.example"}
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [
        {
            "field": "company_name",
            "message": "is required for government customers",
            "location": "body",
        }
    ]
    ok = await api.post(
        "/v1/customers", json={"kind": "government", "company_name": "City of Bath"}
    )
    assert ok.status_code == 201


async def test_text_with_nul_characters_is_refused_not_a_server_error(api):
    response = await api.post(
        "/v1/customers",
        json={"first_name": "A\u0000da", "external_id": "x\u0000", "tags": ["ok", "t\u0000"]},
    )
    body = assert_problem(response, 422, "validation-error")
    assert {(e["field"], e["message"]) for e in body["errors"]} == {
        ("first_name", "must not contain NUL characters"),
        ("external_id", "must not contain '/' or NUL characters"),
        ("tags.1", "must not contain NUL characters"),
    }
    response = await api.post("/v1/customers", json={"attributes": {"k": "v\u0000"}})
    assert_problem(response, 422, "validation-error")


async def test_unknown_customer_is_a_404_problem(api):
    missing = uuid.uuid4()
    body = assert_problem(await api.get(f"/v1/customers/{missing}"), 404, "not-found")
    assert str(missing) in body["detail"]
    assert body["instance"] == f"/v1/customers/{missing}"
    malformed = assert_problem(await api.get("/v1/customers/not-a-uuid"), 422, "validation-error")
    [error] = malformed["errors"]
    assert (error["field"], error["location"]) == ("customer_id", "path")
    assert "UUID" in error["message"]


async def test_if_none_match_answers_304_until_the_customer_changes(api, new_customer):
    customer = await new_customer()
    url = f"/v1/customers/{customer['id']}"

    assert (await api.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    await api.patch(url, json={"first_name": "Changed"})
    response = await api.get(url, headers={"If-None-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["etag"] == '"2"'


async def test_patch_is_a_json_merge_patch(api):
    customer = (await api.post("/v1/customers", json=ADA)).json()
    url = f"/v1/customers/{customer['id']}"

    response = await api.patch(
        url,
        json={
            "first_name": "Augusta",
            "phone": None,
            "address": {"city": "Marylebone", "line1": None},
            "attributes": {"shoe_size": None, "prefs": {"sms": "never"}},
            "consents": {"sms": {"granted": False, "source": "call-centre"}, "email": None},
            "tags": ["vip", "author"],
        },
        headers={"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["first_name"] == "Augusta"
    assert updated["last_name"] == "Lovelace"  # untouched
    assert updated["phone"] is None
    assert updated["address"] == {
        "line1": None,
        "line2": None,
        "city": "Marylebone",
        "region": None,
        "postal_code": "N1",
        "country": "GB",
    }
    assert updated["attributes"] == {"prefs": {"newsletter": "weekly", "sms": "never"}}
    assert set(updated["consents"]) == {"sms"}
    assert updated["tags"] == ["vip", "author"]
    assert updated["version"] == 2
    assert response.headers["etag"] == '"2"'
    events = await events_of(api, type="customer.updated")
    assert [e["data"]["version"] for e in events] == [2]


async def test_a_patch_that_changes_nothing_keeps_the_version_and_emits_nothing(api, new_customer):
    customer = await new_customer(first_name="Same")
    response = await api.patch(f"/v1/customers/{customer['id']}", json={"first_name": "Same"})
    assert response.json()["version"] == 1
    assert await events_of(api, type="customer.updated") == []


async def test_patch_with_a_stale_if_match_changes_nothing(api, new_customer):
    customer = await new_customer(first_name="Old")
    url = f"/v1/customers/{customer['id']}"
    await api.patch(url, json={"first_name": "New"}, headers={"If-Match": '"1"'})

    response = await api.patch(url, json={"first_name": "Stale"}, headers={"If-Match": '"1"'})

    assert_problem(response, 412, "precondition-failed")
    assert (await api.get(url)).json()["first_name"] == "New"
    weak = await api.patch(url, json={"first_name": "Weak"}, headers={"If-Match": 'W/"2"'})
    assert_problem(weak, 412, "precondition-failed")
    ok = await api.patch(url, json={"first_name": "Fresh"}, headers={"If-Match": '"2"'})
    assert ok.status_code == 200


async def test_patch_that_would_leave_the_customer_invalid_is_refused(api, new_customer):
    customer = await new_customer()
    url = f"/v1/customers/{customer['id']}"
    response = await api.patch(url, json={"kind": "industrial"})
    assert_problem(response, 422, "validation-error")
    assert_problem(await api.patch(url, json={"kind": None}), 422, "validation-error")
    assert (await api.get(url)).json()["kind"] == "consumer"


async def test_patch_to_an_email_in_use_is_a_conflict(api, new_customer):
    await new_customer(email="taken@example.com")
    customer = await new_customer()
    response = await api.patch(
        f"/v1/customers/{customer['id']}", json={"email": "Taken@example.com"}
    )
    assert assert_problem(response, 409, "conflict")["errors"][0]["field"] == "email"


async def test_delete_hides_the_customer_and_frees_its_email(api, new_customer):
    customer = await new_customer(email="leaver@example.com")
    url = f"/v1/customers/{customer['id']}"

    assert_problem(await api.delete(url, headers={"If-Match": '"7"'}), 412, "precondition-failed")
    response = await api.delete(url, headers={"If-Match": '"1"'})

    assert response.status_code == 204
    assert_problem(await api.get(url), 404, "not-found")
    assert_problem(await api.delete(url), 404, "not-found")
    assert (await api.get("/v1/customers")).json()["data"] == []
    assert (
        await api.post("/v1/customers", json={"email": "leaver@example.com"})
    ).status_code == 201
    deleted = await events_of(api, type="customer.deleted")
    assert [e["customer_id"] for e in deleted] == [customer["id"]]


async def test_upsert_by_external_id_creates_then_replaces_then_is_a_no_op(api):
    url = "/v1/customers/by-external-id/shop-42"
    body = {"first_name": "Lin", "email": "lin@example.com", "tags": ["b2c"]}

    created = await api.put(url, json=body)
    replaced = await api.put(url, json={**body, "tags": ["b2c", "loyal"]})
    repeated = await api.put(url, json={**body, "tags": ["b2c", "loyal"]})

    assert created.status_code == 201
    assert created.json()["external_id"] == "shop-42"
    assert replaced.status_code == 200
    assert replaced.json()["id"] == created.json()["id"]
    assert replaced.json()["version"] == 2
    assert repeated.status_code == 200
    assert repeated.json()["version"] == 2
    assert len(await events_of(api, customer_id=created.json()["id"])) == 2
    mismatch = await api.put(url, json={**body, "external_id": "other"})
    assert assert_problem(mismatch, 422, "validation-error")["errors"][0]["field"] == "external_id"


async def test_put_replaces_every_field(api):
    url = "/v1/customers/by-external-id/shop-7"
    await api.put(url, json={"first_name": "Kim", "phone": "+4930999999", "tags": ["a"]})
    replaced = (await api.put(url, json={"first_name": "Kim"})).json()
    assert replaced["phone"] is None
    assert replaced["tags"] == []


async def test_text_the_database_cannot_store_is_refused_not_a_server_error(api):
    lone_surrogate = b'{"first_name": "a\\ud800b"}'
    response = await api.post(
        "/v1/customers", content=lone_surrogate, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation-error")
    # Over GraphQL the input arrives decoded, surrogates and all.
    graphql = await api.post(
        "/graphql",
        content=json.dumps(
            {
                "query": "mutation($c: CustomerInput!) { createCustomer(input: $c) { id } }",
                "variables": {"c": {"firstName": "a\ud800b"}},
            }
        ),
        headers={"Content-Type": "application/json"},
    )
    assert graphql.json()["errors"][0]["extensions"]["errors"] == [
        {"field": "firstName", "message": "must be valid Unicode (no lone surrogates)"}
    ]
    huge = await api.post("/v1/customers", json={"attributes": {"n": 2**70}})
    assert_problem(huge, 422, "validation-error")
