"""Personal data: redaction without `pii:read`, and irreversible erasure."""

import json

from support import assert_problem, events_of

PERSONAL = {
    "first_name": "Mary",
    "last_name": "Shelley",
    "email": "mary@example.com",
    "phone": "+442071234567",
    "birth_date": "1997-08-30",
    "external_id": "pub-1818",
    "address": {"line1": "24 Chester Sq", "city": "London", "postal_code": "SW1", "country": "GB"},
    "attributes": {"favourite": "Frankenstein"},
    "consents": {"email": {"granted": True}},
    "company_name": "Lackington",
    "tags": ["author"],
    "gender": "female",
}
REDACTED = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "address.line1",
    "address.line2",
]


async def test_without_pii_read_personal_fields_are_withheld_everywhere(api, key_for, new_customer):
    customer = await new_customer(**PERSONAL)
    headers = await key_for("customers:read", "events:read")

    fetched = (await api.get(f"/v1/customers/{customer['id']}", headers=headers)).json()
    listed = (await api.get("/v1/customers", headers=headers)).json()["data"][0]
    event = (await api.get("/v1/events", headers=headers)).json()["data"][0]["data"]

    assert fetched == listed  # one rendering, whichever route serves it
    for view in (fetched, listed, event):
        assert view["redacted_fields"] == REDACTED
        for field in ("first_name", "last_name", "email", "phone", "birth_date"):
            assert view[field] is None
        assert view["address"]["line1"] is None
        assert view["address"]["city"] == "London"
        assert view["company_name"] == "Lackington"
    with_pii = await key_for("customers:read", "pii:read")
    full = (await api.get(f"/v1/customers/{customer['id']}", headers=with_pii)).json()
    assert full["email"] == "mary@example.com"
    assert full["redacted_fields"] == []


async def test_without_pii_read_search_cannot_probe_personal_fields(api, key_for, new_customer):
    await new_customer(**PERSONAL)
    headers = await key_for("customers:read")

    by_name = await api.get("/v1/customers", params={"q": "mary"}, headers=headers)
    by_company = await api.get("/v1/customers", params={"q": "lack"}, headers=headers)
    by_email = await api.get("/v1/customers", params={"email": "mary@example.com"}, headers=headers)

    assert by_name.json()["data"] == []
    assert len(by_company.json()["data"]) == 1
    assert "pii:read" in assert_problem(by_email, 403, "forbidden")["detail"]


async def test_erasure_removes_personal_data_from_customer_timeline_and_history(api, new_customer):
    customer = await new_customer(**PERSONAL)
    url = f"/v1/customers/{customer['id']}"
    await api.patch(url, json={"phone": "+442079999999"})
    recorded = await api.post(
        "/v1/interactions",
        json={
            "customer_id": customer["id"],
            "type": "support",
            "channel": "email",
            "subject": "Mary's order",
            "body": "Please call me on +442071234567",
            "metadata": {"ticket_email": "mary@example.com"},
        },
    )
    assert recorded.status_code == 201

    response = await api.post(f"{url}/erase")

    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["erased_at"] is not None
    for field in ("first_name", "last_name", "email", "phone", "birth_date", "external_id"):
        assert erased[field] is None
    assert erased["address"] == {
        "line1": None,
        "line2": None,
        "city": None,
        "region": None,
        "postal_code": None,
        "country": "GB",
    }
    assert erased["attributes"] == {} and erased["consents"] == {}
    assert erased["gender"] == "female" and erased["tags"] == ["author"]  # kept for aggregates
    timeline = (await api.get(f"{url}/interactions")).json()["data"]
    assert timeline[0]["type"] == "support"
    assert (timeline[0]["subject"], timeline[0]["body"], timeline[0]["metadata"]) == (
        None,
        None,
        {},
    )
    history = await events_of(api, customer_id=customer["id"])
    assert [e["type"] for e in history][-1] == "customer.erased"
    dumped = json.dumps(history)
    for secret in (
        "Mary",
        "Shelley",
        "mary@example.com",
        "+44207",
        "Chester",
        "pub-1818",
        "1997-08-30",
    ):
        assert secret not in dumped


async def test_an_erased_customer_cannot_be_changed_and_erasing_again_is_harmless(
    api, new_customer
):
    customer = await new_customer(**PERSONAL)
    url = f"/v1/customers/{customer['id']}"
    first = (await api.post(f"{url}/erase")).json()

    assert_problem(await api.patch(url, json={"first_name": "Back"}), 409, "conflict")
    again = await api.post(f"{url}/erase")
    assert again.status_code == 200
    assert again.json()["erased_at"] == first["erased_at"]
    assert len(await events_of(api, type="customer.erased")) == 1


async def test_erasure_leaves_events_without_personal_data_as_they_were(api, new_customer):
    customer = await new_customer(**PERSONAL)
    moved = await api.post(
        f"/v1/customers/{customer['id']}/lifecycle/transitions", json={"to": "onboarding"}
    )
    assert moved.status_code == 201, moved.text
    before = await events_of(api, type="lifecycle.transitioned")

    assert (await api.post(f"/v1/customers/{customer['id']}/erase")).status_code == 200

    assert await events_of(api, type="lifecycle.transitioned") == before
