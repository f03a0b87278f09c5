"""GraphQL and REST are one API: every REST operation has its GraphQL counterpart (or a stated
reason to have none), what one transport writes the other reads the same, and a failure is
the same problem over both."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from crm_api.core.errors import PROBLEM_BASE
from crm_api.graphql.schema import schema
from graphql_shapes import as_rest, instants, selection

OPENAPI = Path(__file__).parents[2] / "openapi" / "openapi.json"

# operationId -> the GraphQL field doing the same: Root.field, or a path through the
# objects it returns (Query.customer.interactions) where GraphQL nests what REST addresses.
GRAPHQL = {
    "customers_create": "Mutation.createCustomer",
    "customers_list": "Query.customers",
    "customers_get": "Query.customer",
    "customers_update": "Mutation.updateCustomer",
    "customers_delete": "Mutation.deleteCustomer",
    "customers_upsert": "Mutation.upsertCustomer",
    "customers_erase": "Mutation.eraseCustomer",
    "customers_search": "Query.searchCustomers",
    "customers_segments": "Query.customerSegments",
    "customers_lifecycle": "Query.customerLifecycle",
    "customers_profile": "Query.customerProfile",
    "interactions_create": "Mutation.recordInteraction",
    "interactions_list": "Query.interactions",
    "interactions_get": "Query.interaction",
    "interactions_timeline": "Query.customer.interactions",
    "events_list": "Subscription.events",
    "webhook_endpoints_create": "Mutation.createWebhookEndpoint",
    "webhook_endpoints_list": "Query.webhookEndpoints",
    "webhook_endpoints_get": "Query.webhookEndpoint",
    "webhook_endpoints_update": "Mutation.updateWebhookEndpoint",
    "webhook_endpoints_delete": "Mutation.deleteWebhookEndpoint",
    "webhook_endpoints_rotate": "Mutation.rotateWebhookSecret",
    "webhook_endpoints_deliveries": "Query.webhookEndpoint.deliveries",
    "webhook_endpoints_replay": "Mutation.replayWebhookEndpoint",
    "webhook_endpoints_test": "Mutation.testWebhookEndpoint",
    "webhook_deliveries_get": "Query.webhookDelivery",
    "webhook_deliveries_retry": "Mutation.retryWebhookDelivery",
    "scoring_scorers": "Query.scorers",
    "scoring_start": "Mutation.startScoringRun",
    "scoring_runs": "Query.scoringRuns",
    "scoring_run": "Query.scoringRun",
    "scoring_scores": "Query.customer.scores",
    "scoring_churn": "Query.customer.churn",
    "scoring_clv": "Query.customer.clv",
    "scoring_risks": "Query.churnAtRisk",
    "segments_create": "Mutation.createSegment",
    "segments_list": "Query.segments",
    "segments_preview": "Query.segmentPreview",
    "segments_get": "Query.segment",
    "segments_update": "Mutation.updateSegment",
    "segments_delete": "Mutation.deleteSegment",
    "segments_refresh": "Mutation.refreshSegment",
    "segments_count": "Query.segment.memberCount",
    "segment_members_list": "Query.segment.members",
    "segment_members_add": "Mutation.addSegmentMembers",
    "segment_members_remove": "Mutation.removeSegmentMember",
    "segment_members_history": "Query.segment.history",
    "segment_members_audience": "Query.segment.audience",
    "analytics_sentiment": "Query.sentimentTrend",
    "analytics_affinities": "Query.productAffinities",
    "analytics_recommendations": "Query.recommendations",
    "analytics_kpis": "Query.analyticsKpis",
    "analytics_profitability": "Query.customerProfitability",
    "analytics_cohorts": "Query.analyticsCohorts",
    "lifecycle_stages_get": "Query.lifecycleStages",
    "lifecycle_stages_replace": "Mutation.replaceLifecycleStages",
    "lifecycle_rules_list": "Query.lifecycleRules",
    "lifecycle_rules_update": "Mutation.updateLifecycleRule",
    "lifecycle_transitions_create": "Mutation.transitionCustomer",
    "lifecycle_transitions_list": "Query.customerLifecycle.transitions",
    "lifecycle_transitions_get": "Query.lifecycleTransition",
    "loyalty_programs_create": "Mutation.createLoyaltyProgram",
    "loyalty_programs_list": "Query.loyaltyPrograms",
    "loyalty_programs_get": "Query.loyaltyProgram",
    "loyalty_programs_update": "Mutation.updateLoyaltyProgram",
    "loyalty_programs_delete": "Mutation.deleteLoyaltyProgram",
    "loyalty_rewards_create": "Mutation.createLoyaltyReward",
    "loyalty_rewards_list": "Query.loyaltyProgram.rewards",
    "loyalty_rewards_get": "Query.loyaltyReward",
    "loyalty_rewards_update": "Mutation.updateLoyaltyReward",
    "loyalty_accounts_enrol": "Mutation.enrolLoyaltyAccount",
    "loyalty_accounts_list": "Query.loyaltyAccounts",
    "loyalty_accounts_get": "Query.loyaltyAccount",
    "loyalty_accounts_entries": "Query.loyaltyEntries",
    "loyalty_accounts_earn": "Mutation.earnLoyaltyPoints",
    "loyalty_accounts_redeem": "Mutation.redeemLoyaltyPoints",
    "loyalty_accounts_adjust": "Mutation.adjustLoyaltyPoints",
    "loyalty_entries_get": "Query.loyaltyEntry",
    "loyalty_entries_reverse": "Mutation.reverseLoyaltyEntry",
    "campaigns_create": "Mutation.createCampaign",
    "campaigns_list": "Query.campaigns",
    "campaigns_get": "Query.campaign",
    "campaigns_update": "Mutation.updateCampaign",
    "campaigns_delete": "Mutation.deleteCampaign",
    "campaigns_performance": "Query.campaign.performance",
}
_BULK = "an NDJSON stream, line by line; GraphQL answers and takes one JSON document, so "
_KEYS = (
    "managing API keys is an operator's task (CLI and admin REST), kept off the GraphQL "
    "surface frontends use so that it issues no credentials"
)
REST_ONLY = {
    "ops_health": "a liveness probe for orchestrators, not data of the API",
    "ops_ready": "a readiness probe for orchestrators, not data of the API",
    "ops_metrics": "Prometheus scrapes its own text format, not data of the API",
    "customers_export": _BULK + "clients page through `customers` instead",
    "customers_import": _BULK + "clients create or upsert customers one mutation at a time",
    "interactions_import": _BULK + "clients record interactions one mutation at a time",
    "api_keys_create": _KEYS,
    "api_keys_list": _KEYS,
    "api_keys_get": _KEYS,
    "api_keys_revoke": _KEYS,
    "api_keys_rotate": _KEYS,
    "api_keys_update": _KEYS,
}


def _operation_ids() -> set[str]:
    document = json.loads(OPENAPI.read_text())
    return {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }


def _unwrapped(type_: Any) -> Any:
    while hasattr(type_, "of_type"):
        type_ = type_.of_type
    return type_


def _exists(path: str) -> bool:
    """Whether ``Root.field.subfield...`` names fields along the schema's types."""
    root, *names = path.split(".")
    definition = schema.get_type_by_name(root)
    for name in names:
        if definition is None:
            return False
        by_name = {schema.config.name_converter.get_graphql_name(f): f for f in definition.fields}
        if name not in by_name:
            return False
        definition = getattr(_unwrapped(by_name[name].type), "__strawberry_definition__", None)
    return True


def test_every_rest_operation_has_a_graphql_counterpart_or_a_reason() -> None:
    missing = sorted(_operation_ids() - GRAPHQL.keys() - REST_ONLY.keys())
    assert not missing, (
        f"REST operations without a GraphQL counterpart: {missing}. Add the query or "
        "mutation (a thin resolver calling the route's service function) and map it in "
        "GRAPHQL in tests/graphql/test_graphql_parity.py, or list it in REST_ONLY there "
        "with the reason GraphQL has none."
    )


def test_every_counterpart_is_in_the_schema() -> None:
    absent = {op: path for op, path in GRAPHQL.items() if not _exists(path)}
    assert not absent, f"mapped to GraphQL fields the schema lacks: {absent}"


def test_the_tables_name_only_rest_operations_and_each_once() -> None:
    assert not GRAPHQL.keys() & REST_ONLY.keys()
    stale = sorted((GRAPHQL.keys() | REST_ONLY.keys()) - _operation_ids())
    assert not stale, f"no longer REST operations (see {OPENAPI.name}): {stale}"


# -- the same data over both transports ----------------------------------------------


def _call(field: str, arguments: dict[str, str]) -> str:
    given = ", ".join(f"{name}: {json.dumps(value)}" for name, value in arguments.items())
    return f"{field}({given})" if given else field


@pytest.fixture
def reads_alike(api, gql):  # type: ignore[no-untyped-def]
    """Assert that a query of a whole ``type_name`` answers what REST's ``url`` answers."""

    async def check(field: str, type_name: str, arguments: dict[str, str], url: str) -> dict:
        found = await gql(f"{{ {_call(field, arguments)} {{ {selection(type_name)} }} }}")
        response = await api.get(url)
        assert response.status_code == 200, response.text
        assert as_rest(found[field], type_name) == instants(response.json())
        return found[field]

    return check


@pytest.fixture
def written(gql):  # type: ignore[no-untyped-def]
    """Run a mutation selecting the whole ``type_name``; returns its answer in REST's shape."""

    async def run(field: str, type_name: str, signature: str, arguments: str, **variables):
        query = f"mutation({signature}) {{ {field}({arguments}) {{ {selection(type_name)} }} }}"
        return as_rest((await gql(query, variables))[field], type_name)

    return run


async def _rest(api, method: str, url: str, /, **body: object) -> dict:  # type: ignore[no-untyped-def]
    response = await api.request(method, url, json=body)
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


async def _rest_read(api, url: str) -> Any:  # type: ignore[no-untyped-def]
    response = await api.get(url)
    assert response.status_code == 200, response.text
    return instants(response.json())


TIERS = [{"name": "Silver", "threshold": 100, "multiplier": "1.5"}]


async def test_loyalty_written_over_rest_reads_the_same_over_graphql(
    api, new_customer, reads_alike
):
    program = await _rest(
        api, "POST", "/v1/loyalty/programs", name="Club", currency="EUR", points_per_unit="2.5",
        expiry_days=365, lock_days=3, tiers=TIERS,
    )  # fmt: skip
    programs = f"/v1/loyalty/programs/{program['id']}"
    reward = await _rest(api, "POST", f"{programs}/rewards", name="Mug", cost=50, stock=3)
    customer = await new_customer()
    account = await _rest(
        api, "POST", "/v1/loyalty/accounts", customer_id=customer["id"], program_id=program["id"]
    )
    accounts = f"/v1/loyalty/accounts/{account['id']}"
    entry = await _rest(api, "POST", f"{accounts}/earn", amount=4990, currency="EUR")

    await reads_alike("loyaltyProgram", "LoyaltyProgram", {"id": program["id"]}, programs)
    await reads_alike(
        "loyaltyReward",
        "LoyaltyReward",
        {"programId": program["id"], "id": reward["id"]},
        f"{programs}/rewards/{reward['id']}",
    )
    shown = await reads_alike("loyaltyAccount", "LoyaltyAccount", {"id": account["id"]}, accounts)
    assert (shown["balance"], shown["locked"]) == (124, 124)
    await reads_alike(
        "loyaltyEntry", "LoyaltyEntry", {"id": entry["id"]}, f"/v1/loyalty/entries/{entry['id']}"
    )


async def test_loyalty_written_over_graphql_reads_the_same_over_rest(api, new_customer, written):
    program = await written(
        "createLoyaltyProgram",
        "LoyaltyProgram",
        "$input: LoyaltyProgramInput!",
        "input: $input",
        input={"name": "Club", "currency": "EUR", "pointsPerUnit": "2.5", "expiryDays": 365,
               "tiers": [{"name": "Silver", "threshold": 100, "multiplier": "1.5"}]},
    )  # fmt: skip
    programs = f"/v1/loyalty/programs/{program['id']}"
    assert program == await _rest_read(api, programs)
    reward = await written(
        "createLoyaltyReward",
        "LoyaltyReward",
        "$programId: ID!",
        'programId: $programId, input: {name: "Mug", cost: 50, stock: 3}',
        programId=program["id"],
    )
    assert reward == await _rest_read(api, f"{programs}/rewards/{reward['id']}")
    customer = await new_customer()
    account = await written(
        "enrolLoyaltyAccount",
        "LoyaltyAccount",
        "$customerId: ID!, $programId: ID!",
        "customerId: $customerId, programId: $programId",
        customerId=customer["id"],
        programId=program["id"],
    )
    assert account == await _rest_read(api, f"/v1/loyalty/accounts/{account['id']}")
    entry = await written(
        "earnLoyaltyPoints",
        "LoyaltyEntry",
        "$accountId: ID!",
        'accountId: $accountId, input: {amount: 4990, currency: "EUR"}',
        accountId=account["id"],
    )
    assert entry["points"] == 124
    assert entry == await _rest_read(api, f"/v1/loyalty/entries/{entry['id']}")


async def test_lifecycle_written_over_rest_reads_the_same_over_graphql(
    api, gql, new_customer, reads_alike
):
    customer = await new_customer()
    made = await _rest(
        api, "POST", f"/v1/customers/{customer['id']}/lifecycle/transitions", to="active"
    )
    base = f"/v1/customers/{customer['id']}/lifecycle"
    await reads_alike(
        "lifecycleTransition",
        "LifecycleTransition",
        {"customerId": customer["id"], "id": made["id"]},
        f"{base}/transitions/{made['id']}",
    )
    await reads_alike(
        "customerLifecycle", "CustomerLifecycle", {"customerId": customer["id"]}, base
    )
    graph = await _rest_read(api, "/v1/lifecycle/stages")
    await _rest(api, "PUT", "/v1/lifecycle/stages", stages=_with_stage(graph, "vip"))
    await reads_alike("lifecycleStages", "LifecycleGraph", {}, "/v1/lifecycle/stages")
    await _rest(api, "PATCH", "/v1/lifecycle/rules/first_purchase", enabled=True)
    rules = await gql(f"{{ lifecycleRules {{ {selection('LifecycleRule')} }} }}")
    assert [as_rest(r, "LifecycleRule") for r in rules["lifecycleRules"]] == await _rest_read(
        api, "/v1/lifecycle/rules"
    )


def _with_stage(graph: dict, name: str) -> list[dict]:
    """The graph's stages plus ``name``, reachable from prospect."""
    stages = [
        {**s, "targets": s["targets"] + [name]} if s["name"] == "prospect" else s
        for s in graph["stages"]
    ]
    return [*stages, {"name": name, "description": "By invitation.", "targets": []}]


async def test_lifecycle_written_over_graphql_reads_the_same_over_rest(api, new_customer, written):
    customer = await new_customer()
    made = await written(
        "transitionCustomer",
        "LifecycleTransition",
        "$customerId: ID!",
        'customerId: $customerId, to: "active", reason: "first order"',
        customerId=customer["id"],
    )
    base = f"/v1/customers/{customer['id']}/lifecycle"
    assert made == await _rest_read(api, f"{base}/transitions/{made['id']}")
    graph = await _rest_read(api, "/v1/lifecycle/stages")
    replaced = await written(
        "replaceLifecycleStages",
        "LifecycleGraph",
        "$stages: [LifecycleStageInput!]!",
        "stages: $stages",
        stages=_with_stage(graph, "vip"),
    )
    assert replaced == await _rest_read(api, "/v1/lifecycle/stages")
    rule = await written(
        "updateLifecycleRule",
        "LifecycleRule",
        "$settings: JSON",
        "name: INACTIVITY, enabled: true, settings: $settings",
        settings={"days": 30},
    )
    assert rule["settings"] == {"days": 30}
    rules = {r["name"]: r for r in await _rest_read(api, "/v1/lifecycle/rules")}
    assert rule == rules["inactivity"]


HOOK = "https://hooks.example.com/crm"


async def test_webhooks_written_over_rest_read_the_same_over_graphql(api, reads_alike):
    endpoint = await _rest(api, "POST", "/v1/webhook-endpoints", url=HOOK, event_types=["*"])
    endpoints = f"/v1/webhook-endpoints/{endpoint['id']}"
    await reads_alike("webhookEndpoint", "WebhookEndpoint", {"id": endpoint["id"]}, endpoints)
    delivery = await _rest(api, "POST", f"{endpoints}/test")
    await reads_alike(
        "webhookDelivery",
        "WebhookDeliveryDetail",
        {"id": delivery["id"]},
        f"/v1/webhook-deliveries/{delivery['id']}",
    )


async def test_webhooks_written_over_graphql_read_the_same_over_rest(api, written):
    created = await written(
        "createWebhookEndpoint",
        "WebhookEndpointWithSecret",
        "$url: String!",
        'input: {url: $url, eventTypes: ["customer.*"], description: "CRM sync"}',
        url=HOOK,
    )
    endpoint = created["endpoint"]
    assert created["secret"].startswith("whsec_")
    assert endpoint == await _rest_read(api, f"/v1/webhook-endpoints/{endpoint['id']}")
    delivery = await written(
        "testWebhookEndpoint", "WebhookDelivery", "$id: ID!", "id: $id", id=endpoint["id"]
    )
    detail = await _rest_read(api, f"/v1/webhook-deliveries/{delivery['id']}")
    assert delivery == {k: v for k, v in detail.items() if k != "attempt_log"}


CONDITION = {"all": [{"field": "country", "op": "eq", "value": "DE"},
                     {"field": "tags", "op": "contains", "value": "vip"}]}  # fmt: skip


async def test_segments_written_over_rest_read_the_same_over_graphql(api, reads_alike):
    segment = await _rest(
        api, "POST", "/v1/segments", name="German VIPs", condition=CONDITION, refresh_interval=3600
    )
    await reads_alike("segment", "Segment", {"id": segment["id"]}, f"/v1/segments/{segment['id']}")


async def test_segments_written_over_graphql_read_the_same_over_rest(api, written):
    segment = await written(
        "createSegment",
        "Segment",
        "$condition: JSON!",
        'input: {name: "German VIPs", condition: $condition, refreshInterval: 3600}',
        condition=CONDITION,
    )
    assert segment["condition"] == CONDITION
    assert segment == await _rest_read(api, f"/v1/segments/{segment['id']}")


SPRING = {"code": "SPRING25", "name": "Spring sale", "channel": "email", "cost": 150_000,
          "currency": "EUR", "starts_at": "2025-03-01T00:00:00Z"}  # fmt: skip


async def test_campaigns_written_over_rest_read_the_same_over_graphql(api, gql, reads_alike):
    campaign = await _rest(api, "POST", "/v1/campaigns", **SPRING)
    url = f"/v1/campaigns/{campaign['id']}"
    await reads_alike("campaign", "Campaign", {"id": campaign["id"]}, url)
    query = f"""query($id: ID!) {{
        campaign(id: $id) {{ performance {{ {selection("CampaignPerformance")} }} }}
    }}"""
    found = await gql(query, {"id": campaign["id"]})
    graphql = as_rest(found["campaign"]["performance"], "CampaignPerformance")
    rest = await _rest_read(api, f"{url}/performance")
    # Open-ended: touches count up to "now", which the two reads take at two instants.
    del graphql["touches_until"], rest["touches_until"]
    assert graphql == rest


async def test_campaigns_written_over_graphql_read_the_same_over_rest(api, written):
    campaign = await written(
        "createCampaign",
        "Campaign",
        "$input: CampaignInput!",
        "input: $input",
        input={"code": "SPRING25", "name": "Spring sale", "channel": "EMAIL", "cost": 150_000,
               "currency": "EUR", "startsAt": "2025-03-01T00:00:00Z"},
    )  # fmt: skip
    url = f"/v1/campaigns/{campaign['id']}"
    assert campaign == await _rest_read(api, url)
    changed = await written(
        "updateCampaign",
        "Campaign",
        "$id: ID!",
        "id: $id, input: {attributionWindowDays: 14}, ifMatchVersion: 1",
        id=campaign["id"],
    )
    assert changed["version"] == 2 and changed == await _rest_read(api, url)


async def test_scoring_runs_written_over_rest_read_the_same_over_graphql(api, reads_alike):
    run = await _rest(api, "POST", "/v1/scoring/runs", scorer="rfm")
    await reads_alike(
        "scoringRun", "ScoringRun", {"id": run["id"]}, f"/v1/scoring/runs/{run['id']}"
    )


async def test_scoring_runs_written_over_graphql_read_the_same_over_rest(api, written):
    run = await written(
        "startScoringRun",
        "ScoringRun",
        "$end: Date!",
        'input: {scorer: "rfm", observationEnd: $end}',
        end="2026-01-31",
    )
    assert run["status"] == "queued"
    assert run == await _rest_read(api, f"/v1/scoring/runs/{run['id']}")


# -- customers: the operations GraphQL gained ----------------------------------------

UPSERT = """mutation($externalId: String!, $input: CustomerInput!, $version: Int) {
    upsertCustomer(externalId: $externalId, input: $input, ifMatchVersion: $version) {
        created customer { id externalId firstName version }
    }
}"""


async def test_upsert_creates_then_replaces_as_rest_does(api, gql, gql_error):
    first = await gql(UPSERT, {"externalId": "crm-7", "input": {"firstName": "Ada"}})
    created = first["upsertCustomer"]
    assert created["created"] is True
    customer_id = created["customer"]["id"]
    again = await gql(
        UPSERT, {"externalId": "crm-7", "input": {"firstName": "Grace"}, "version": 1}
    )
    assert again["upsertCustomer"] == {
        "created": False,
        "customer": {"id": customer_id, "externalId": "crm-7", "firstName": "Grace", "version": 2},
    }
    rest = await api.put("/v1/customers/by-external-id/crm-7", json={"first_name": "Ada"})
    assert (rest.status_code, rest.json()["id"], rest.json()["version"]) == (200, customer_id, 3)
    await gql_error(
        UPSERT,
        {"externalId": "crm-7", "input": {"externalId": "crm-8"}},
        code="validation-error",
    )


async def test_delete_and_erase_are_seen_by_rest(api, gql, new_customer):
    doomed, private = await new_customer(), await new_customer(first_name="Ada")
    deleted = await gql(
        "mutation($id: ID!) { deleteCustomer(id: $id, ifMatchVersion: 1) }", {"id": doomed["id"]}
    )
    assert deleted == {"deleteCustomer": doomed["id"]}
    assert (await api.get(f"/v1/customers/{doomed['id']}")).status_code == 404

    erased = await gql(
        "mutation($id: ID!) { eraseCustomer(id: $id) { firstName email erasedAt } }",
        {"id": private["id"]},
    )
    assert erased["eraseCustomer"]["firstName"] is None
    rest = (await api.get(f"/v1/customers/{private['id']}")).json()
    assert (rest["first_name"], rest["email"]) == (None, None)
    assert instants(rest["erased_at"]) == instants(erased["eraseCustomer"]["erasedAt"])


async def test_an_interaction_recorded_over_rest_reads_the_same_over_graphql(
    api, new_customer, reads_alike
):
    customer = await new_customer()
    purchase = await _rest(
        api, "POST", "/v1/interactions", customer_id=customer["id"], type="purchase",
        channel="web", amount=2500, currency="EUR", metadata={"basket": "b-1"},
        items=[{"sku": "MUG", "name": "Mug", "quantity": 2, "unit_price": 1250}],
    )  # fmt: skip
    await reads_alike(
        "interaction", "Interaction", {"id": purchase["id"]}, f"/v1/interactions/{purchase['id']}"
    )


INTERACTIONS = """query($after: String, $filter: InteractionFilter) {
    interactions(first: 2, after: $after, filter: $filter) {
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
    }
}"""


async def test_interactions_list_pages_and_filters_as_rest(api, gql, new_customer):
    customers = [await new_customer(), await new_customer()]
    for customer in customers:
        for kind in ("email", "call", "email"):
            await _rest(api, "POST", "/v1/interactions", customer_id=customer["id"], type=kind)

    rest = await _rest_read(api, "/v1/interactions?limit=2")
    page = (await gql(INTERACTIONS))["interactions"]
    assert [e["node"]["id"] for e in page["edges"]] == [i["id"] for i in rest["data"]]
    assert page["pageInfo"]["endCursor"] == rest["next_cursor"]

    emails = f"/v1/interactions?limit=2&type=email&customer_id={customers[0]['id']}"
    rest = await _rest_read(api, emails)
    chosen = {"customerId": customers[0]["id"], "types": ["EMAIL"]}
    page = (await gql(INTERACTIONS, {"filter": chosen}))["interactions"]
    assert [e["node"]["id"] for e in page["edges"]] == [i["id"] for i in rest["data"]]
    assert page["pageInfo"]["hasNextPage"] is False


# -- the same failure over both ------------------------------------------------------

MISSING = str(uuid.UUID(int=1))
FAILURES = {
    404: (
        ("PATCH", f"/v1/customers/{MISSING}", {"first_name": "Ada"}),
        f'mutation {{ updateCustomer(id: "{MISSING}", input: {{firstName: "Ada"}}) {{ id }} }}',
    ),
    409: (
        ("POST", "/v1/customers", {"email": "taken@example.com"}),
        'mutation { createCustomer(input: {email: "taken@example.com"}) { id } }',
    ),
    422: (
        ("POST", "/v1/customers", {"email": "not an address"}),
        'mutation { createCustomer(input: {email: "not an address"}) { id } }',
    ),
    403: (
        ("POST", "/v1/customers", {"last_name": "Byron"}),
        'mutation { createCustomer(input: {lastName: "Byron"}) { id } }',
    ),
}


@pytest.mark.parametrize("status", sorted(FAILURES))
async def test_a_failure_is_the_same_problem_over_both(api, key_for, new_customer, status):
    await new_customer(email="taken@example.com")
    (method, url, body), mutation = FAILURES[status]
    headers = await key_for("customers:read") if status == 403 else {}

    rest = await api.request(method, url, json=body, headers=headers)
    graphql = await api.post("/graphql", json={"query": mutation}, headers=headers)

    problem = rest.json()
    [error] = graphql.json()["errors"]
    extensions = error["extensions"]
    assert rest.status_code == problem["status"] == extensions["status"] == status
    assert problem["type"] == extensions["type"] == PROBLEM_BASE + extensions["code"]
    assert [e["field"] for e in problem.get("errors", [])] == [
        e["field"] for e in extensions.get("errors", [])
    ]
