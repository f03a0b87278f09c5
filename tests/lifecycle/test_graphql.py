"""The lifecycle over GraphQL: the same services, rules, scopes and data as REST."""

GRAPH = "lifecycleStages { version stages { name description targets } }"
TRANSITION = """mutation($id: ID!, $to: String!, $reason: String, $version: Int) {
    transitionCustomer(customerId: $id, to: $to, reason: $reason, ifMatchVersion: $version) {
        id customerId fromStage toStage reason automatic rule actorKeyId occurredAt
    }
}"""
CUSTOMER = """query($id: ID!) {
    customer(id: $id) {
        version lifecycleStage
        lifecycle { stage since allowed transitions(first: 1) {
            edges { node { fromStage toStage reason } } pageInfo { hasNextPage endCursor }
        } }
    }
}"""
REPLACE = """mutation($stages: [LifecycleStageInput!]!, $version: Int) {
    replaceLifecycleStages(stages: $stages, ifMatchVersion: $version) { version stages { name } }
}"""
RULE = """mutation($settings: JSON) {
    updateLifecycleRule(name: FIRST_PURCHASE, enabled: true, settings: $settings) {
        name enabled settings toStage version
    }
}"""


async def gql(api, query: str, variables: dict | None = None, headers: dict | None = None):
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_stages_and_rules_read_as_in_rest(api):
    body = await gql(api, f"{{ {GRAPH} lifecycleRules {{ name enabled fromStages toStage }} }}")
    rest = (await api.get("/v1/lifecycle/stages")).json()
    assert body["data"]["lifecycleStages"] == {"version": rest["version"], "stages": rest["stages"]}
    rules = {r["name"]: r for r in body["data"]["lifecycleRules"]}
    assert rules["WIN_BACK"] == {
        "name": "WIN_BACK",
        "enabled": False,
        "fromStages": ["churned"],
        "toStage": "won_back",
    }


async def test_a_customer_moves_and_shows_the_move(api, new_customer):
    customer = await new_customer()
    moved = await gql(
        api, TRANSITION, {"id": customer["id"], "to": "active", "reason": "bought", "version": 1}
    )
    made = moved["data"]["transitionCustomer"]
    assert (made["fromStage"], made["toStage"], made["automatic"]) == ("prospect", "active", False)
    assert made["actorKeyId"]

    read = (await gql(api, CUSTOMER, {"id": customer["id"]}))["data"]["customer"]
    assert read["version"] == 2 and read["lifecycleStage"] == "active"
    assert read["lifecycle"]["stage"] == "active"
    assert read["lifecycle"]["allowed"] == ["loyal", "at_risk"]
    [edge] = read["lifecycle"]["transitions"]["edges"]
    assert edge["node"] == {"fromStage": "prospect", "toStage": "active", "reason": "bought"}

    stale = await gql(api, TRANSITION, {"id": customer["id"], "to": "loyal", "version": 1})
    assert stale["errors"][0]["extensions"]["code"] == "precondition-failed"
    refused = await gql(api, TRANSITION, {"id": customer["id"], "to": "churned"})
    [error] = refused["errors"]
    assert error["extensions"]["status"] == 409
    assert "loyal, at_risk" in error["message"]


async def test_admins_replace_the_graph_and_switch_rules(api, key_for):
    current = (await api.get("/v1/lifecycle/stages")).json()["version"]
    stages = [{"name": "prospect", "targets": ["active"]}, {"name": "active"}]
    writer = await key_for("lifecycle:write")
    denied = await gql(api, REPLACE, {"stages": stages}, headers=writer)
    assert denied["errors"][0]["extensions"]["code"] == "forbidden"

    replaced = await gql(api, REPLACE, {"stages": stages, "version": current})
    assert replaced["data"]["replaceLifecycleStages"]["stages"] == [
        {"name": "prospect"},
        {"name": "active"},
    ]
    unreachable = await gql(api, REPLACE, {"stages": [*stages, {"name": "island"}]})
    [error] = unreachable["errors"]
    assert error["extensions"]["errors"] == [
        {"field": "stages.2.name", "message": "is not reachable from prospect"}
    ]

    rule = (await gql(api, RULE, {"settings": {"target": "active"}}))["data"]
    assert rule["updateLifecycleRule"]["enabled"] is True
    assert rule["updateLifecycleRule"]["toStage"] == "active"
    bad = await gql(api, RULE, {"settings": {"target": "loyal"}})
    assert bad["errors"][0]["extensions"]["errors"][0]["field"] == "settings.target"
