"""Campaigns over GraphQL: the same service as REST, its errors in GraphQL's terms."""

from datetime import UTC, datetime, timedelta

import httpx

CREATE = """mutation($input: CampaignInput!, $key: String) {
    createCampaign(input: $input, idempotencyKey: $key) { id code status version }
}"""
LIST = """query($filter: CampaignFilter, $after: String) {
    campaigns(first: 2, after: $after, filter: $filter) {
        edges { node { code performance { reach orders revenue roi } } }
        pageInfo { hasNextPage endCursor }
    }
}"""


async def _graphql(api: httpx.AsyncClient, query: str, **variables: object) -> dict:
    response = await api.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    return response.json()


def _input(code: str, **fields: object) -> dict:
    return {"code": code, "name": code, "channel": "EMAIL", "currency": "EUR",
            "startsAt": "2025-03-01T00:00:00Z", **fields}  # fmt: skip


async def test_campaigns_are_written_filtered_and_measured(api, new_customer, record):
    made = [
        (await _graphql(api, CREATE, input=_input(code, **fields)))["data"]["createCampaign"]
        for code, fields in [
            ("OLD", {"endsAt": "2025-03-31T00:00:00Z", "cost": 1000}),
            ("SMS", {"channel": "SMS"}),
            ("NEXT", {"startsAt": (datetime.now(UTC) + timedelta(days=3)).isoformat()}),
        ]
    ]
    assert [c["status"] for c in made] == ["ENDED", "RUNNING", "PLANNED"]
    customer = await new_customer()
    at = "2025-03-02T10:00:00Z"
    await record(customer, "email", at, direction="outbound", campaign="OLD")
    await record(customer, "purchase", "2025-03-03T10:00:00Z", amount=2500, currency="EUR")

    page = (await _graphql(api, LIST))["data"]["campaigns"]
    assert [e["node"] for e in page["edges"]] == [
        {"code": "OLD", "performance": {"reach": 1, "orders": 1, "revenue": 2500, "roi": 1.5}},
        {"code": "SMS", "performance": {"reach": 0, "orders": 0, "revenue": 0, "roi": None}},
    ]
    rest = (await api.get("/v1/campaigns", params={"limit": 2})).json()
    assert page["pageInfo"]["endCursor"] == rest["next_cursor"]
    following = await _graphql(api, LIST, after=page["pageInfo"]["endCursor"])
    assert [e["node"]["code"] for e in following["data"]["campaigns"]["edges"]] == ["NEXT"]
    planned = await _graphql(api, LIST, filter={"status": "PLANNED"})
    assert [e["node"]["code"] for e in planned["data"]["campaigns"]["edges"]] == ["NEXT"]
    sms = await _graphql(api, LIST, filter={"channel": "SMS", "activeAt": at})
    assert [e["node"]["code"] for e in sms["data"]["campaigns"]["edges"]] == ["SMS"]


async def test_failures_name_the_graphql_field(api):
    await _graphql(api, CREATE, input=_input("TAKEN"))
    taken = (await _graphql(api, CREATE, input=_input("TAKEN")))["errors"][0]["extensions"]
    assert (taken["code"], [e["field"] for e in taken["errors"]]) == ("conflict", ["code"])
    unknown = _input("X", segmentId="00000000-0000-0000-0000-000000000001")
    refused = (await _graphql(api, CREATE, input=unknown))["errors"][0]["extensions"]
    assert refused["code"] == "validation-error"
    assert [e["field"] for e in refused["errors"]] == ["segmentId"]
    backwards = _input("Y", endsAt="2025-02-01T00:00:00Z")
    refused = (await _graphql(api, CREATE, input=backwards))["errors"][0]["extensions"]
    assert [e["field"] for e in refused["errors"]] == ["endsAt"]
    assert len((await api.get("/v1/campaigns")).json()["data"]) == 1


async def test_a_retried_mutation_has_one_effect_and_delete_honours_the_version(api):
    first = await _graphql(api, CREATE, input=_input("ONCE"), key="k-1")
    again = await _graphql(api, CREATE, input=_input("ONCE"), key="k-1")
    assert again["data"] == first["data"]
    campaign_id = first["data"]["createCampaign"]["id"]
    delete = "mutation($id: ID!, $v: Int) { deleteCampaign(id: $id, ifMatchVersion: $v) }"
    stale = await _graphql(api, delete, id=campaign_id, v=2)
    assert stale["errors"][0]["extensions"]["code"] == "precondition-failed"
    assert (await _graphql(api, delete, id=campaign_id, v=1))["data"] == {
        "deleteCampaign": campaign_id
    }
    gone = await _graphql(api, "query($id: ID!) { campaign(id: $id) { id } }", id=campaign_id)
    assert gone["data"] == {"campaign": None}
