"""The customer page in one GraphQL round trip: every nested field of a page of customers
costs the same few SQL statements whatever the page's size, and shows what REST shows.

Statements are counted where they leave for PostgreSQL: a query logger on every
connection of the app's own asyncpg pool (opened in full at startup for that).
"""

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from crm_api.config import Settings
from live import settings_for

# One connection: asyncpg looks up a type it has not met once per connection, so after
# one warm-up page no statement but the page's own reaches the server.
POOL = 1
PAGE_SIZES = (5, 100)
MOST_STATEMENTS = 15

PAGE = """query($first: Int!) { customers(first: $first) { edges { node {
    id lifecycleStage
    interactions(first: 3) {
        edges { node { id type amount items { sku quantity unitPrice } } }
        pageInfo { hasNextPage endCursor }
    }
    segments(first: 5) { edges { node { enteredAt segment { id name memberCount } } } }
    scores { scorer kind score label }
    churn { churnProbability scorer }
    clv { clv currency }
    lifecycle {
        stage since allowed
        transitions(first: 3) { edges { node { fromStage toStage automatic rule } } }
    }
    loyaltyAccounts {
        id programId balance available locked tier qualifyingPoints
        nextTier { name threshold pointsNeeded }
        entries(first: 2) { edges { node { seq kind points balanceAfter } } }
    }
} } } }"""

ACCOUNT_FIELDS = """
    id customerId programId balance available locked lifetimeEarned tier tierSince
    qualifyingPoints nextTier { name threshold qualifyingPoints pointsNeeded }
    createdAt updatedAt version
"""
ENTRY_FIELDS = """
    id accountId customerId programId seq kind points balanceAfter qualifyingPoints
    reference reason rewardId rewardQuantity reversesId interactionId amount currency
    multiplier uncoveredPoints actorKeyId idempotencyKey occurredAt
"""
TRANSITION_FIELDS = "id customerId fromStage toStage reason automatic rule actorKeyId occurredAt"
SEGMENT_FIELDS = """
    id name description kind condition refreshInterval refreshedAt nextRefreshAt createdAt
    updatedAt version redactedFields
"""
ONE = f"""query($id: ID!, $first: Int!, $entries: String, $transitions: String,
           $segments: String) {{ customer(id: $id) {{
    loyaltyAccounts {{
        {ACCOUNT_FIELDS}
        entries(first: $first, after: $entries) {{
            edges {{ node {{ {ENTRY_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
        }}
    }}
    lifecycle {{
        customerId stage since allowed
        transitions(first: $first, after: $transitions) {{
            edges {{ node {{ {TRANSITION_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}
        }}
    }}
    segments(first: $first, after: $segments) {{
        edges {{ node {{ enteredAt segment {{ {SEGMENT_FIELDS} }} }} }}
        pageInfo {{ hasNextPage endCursor }}
    }}
}} }}"""


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The pool's connections are all open from startup, so the counter reaches each; the
    # API key, once verified, is not read again while statements are counted.
    counted = {"pool_min_size": POOL, "pool_size": POOL, "api_key_cache_seconds": 3600}
    return settings_for(database_url).model_copy(update=counted)


@pytest.fixture
async def sent(app: Any) -> list[str]:
    """The SQL of every statement the app sends from now on, as asyncpg sends it."""
    statements: list[str] = []
    pool = app.state.db.pool
    async with AsyncExitStack() as held:
        for _ in range(POOL):
            conn = await held.enter_async_context(pool.acquire(timeout=5))
            conn.add_query_logger(lambda record: statements.append(record.query))
    return statements


async def settled() -> None:
    # asyncpg calls query loggers soon after the statement, not during it.
    for _ in range(3):
        await asyncio.sleep(0)


def ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()


async def seed(
    api: httpx.AsyncClient, count: int, start_worker: Callable[..., Any], *scorers: str
) -> list[str]:
    """``count`` customers with everything the page shows, made over REST; their ids.

    Every customer buys once or more (auto-earned points in a tiered programme, and the
    first_purchase rule moves them), gets an email, is in two segments and is scored.
    """
    ok(await api.patch("/v1/lifecycle/rules/first_purchase", json={"enabled": True}))
    tiers = [{"name": "silver", "threshold": 50}, {"name": "gold", "threshold": 5000}]
    program = {"name": "club", "currency": "EUR", "points_per_unit": "1", "tiers": tiers}
    ok(await api.post("/v1/loyalty/programs", json={**program, "auto_earn": True}), 201)
    static = ok(await api.post("/v1/segments", json={"name": "page", "kind": "static"}), 201)
    rule = {"field": "tags", "op": "contains", "value": "vip"}
    vip = ok(await api.post("/v1/segments", json={"name": "vip", "condition": rule}), 201)
    now = datetime.now(UTC)
    ids = []
    for n in range(count):
        customer = {"email": f"page{n}@example.com", "tags": ["vip"]}
        customer_id = ok(await api.post("/v1/customers", json=customer), 201)["id"]
        ids.append(customer_id)
        for bought in range(1 + n % 3):
            purchase = {
                "customer_id": customer_id,
                "type": "purchase",
                "occurred_at": (now - timedelta(days=90 - 30 * bought - n % 7)).isoformat(),
                "amount": 1000 + 250 * n + 700 * bought,
                "currency": "EUR",
                "items": [{"sku": f"sku-{n}", "quantity": 1 + bought, "unit_price": 1000}],
            }
            ok(await api.post("/v1/interactions", json=purchase), 201)
        email = {"customer_id": customer_id, "type": "email", "subject": "hello"}
        ok(await api.post("/v1/interactions", json=email), 201)
    ok(await api.post(f"/v1/segments/{static['id']}/members", json={"customer_ids": ids}))
    ok(await api.post(f"/v1/segments/{vip['id']}/refresh"))
    if scorers:
        await start_worker()
    for scorer in scorers:
        await scored(api, scorer)
    return ids


async def scored(api: httpx.AsyncClient, scorer: str) -> None:
    body = {"scorer": scorer, "observation_end": date.today().isoformat()}
    run = ok(await api.post("/v1/scoring/runs", json=body), 202)
    for _ in range(600):
        run = ok(await api.get(f"/v1/scoring/runs/{run['id']}"))
        if run["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "succeeded", run


async def test_a_page_of_customers_with_every_nested_field_costs_a_fixed_few_statements(
    api, gql, sent, start_worker
):
    await seed(api, max(PAGE_SIZES), start_worker, "rfm", "bgnbd")
    await gql(PAGE, {"first": 1})  # the API key is verified once, then cached; types met

    counts = {}
    for size in PAGE_SIZES:
        await settled()
        before = len(sent)
        edges = (await gql(PAGE, {"first": size}))["customers"]["edges"]
        await settled()
        counts[size] = len(sent) - before

        assert len(edges) == size
        for node in (edge["node"] for edge in edges):
            timeline = [e["node"] for e in node["interactions"]["edges"]]
            assert {i["type"] for i in timeline} >= {"PURCHASE"}
            assert all(i["items"] for i in timeline if i["type"] == "PURCHASE")
            segments = [e["node"]["segment"] for e in node["segments"]["edges"]]
            assert sorted(s["name"] for s in segments) == ["page", "vip"]
            assert {s["memberCount"] for s in segments} == {max(PAGE_SIZES)}
            assert {s["scorer"] for s in node["scores"]} == {"rfm", "bgnbd"}
            assert node["churn"]["scorer"] == "bgnbd"
            assert node["lifecycle"]["stage"] == node["lifecycleStage"] == "onboarding"
            [moved] = node["lifecycle"]["transitions"]["edges"]
            assert moved["node"]["rule"] == "first_purchase"
            [account] = node["loyaltyAccounts"]
            assert account["balance"] > 0 and account["entries"]["edges"]

    assert counts[PAGE_SIZES[0]] == counts[PAGE_SIZES[-1]], counts
    assert counts[PAGE_SIZES[-1]] <= MOST_STATEMENTS, counts


async def test_the_page_shows_what_rest_shows_and_its_cursors_continue_as_rest_does(
    api, gql, assert_same_as_rest, start_worker
):
    [customer_id] = await seed(api, 1, start_worker)
    # More to page through: a second purchase, a second programme, spending, a manual move.
    purchase = {"customer_id": customer_id, "type": "purchase", "amount": 990, "currency": "EUR"}
    ok(await api.post("/v1/interactions", json=purchase), 201)
    other = {"name": "partners", "currency": "EUR", "points_per_unit": "1"}
    program = ok(await api.post("/v1/loyalty/programs", json=other), 201)
    enrolment = {"customer_id": customer_id, "program_id": program["id"]}
    account = ok(await api.post("/v1/loyalty/accounts", json=enrolment), 201)
    for action, body in (("earn", {"points": 40}), ("redeem", {"points": 15})):
        ok(await api.post(f"/v1/loyalty/accounts/{account['id']}/{action}", json=body), 201)
    moved = {"to": "active", "reason": "first order shipped"}
    ok(await api.post(f"/v1/customers/{customer_id}/lifecycle/transitions", json=moved), 201)

    page = (await gql(ONE, {"id": customer_id, "first": 1}))["customer"]
    accounts = page["loyaltyAccounts"]
    rest_accounts = ok(await api.get("/v1/loyalty/accounts", params={"customer_id": customer_id}))
    assert len(accounts) == len(rest_accounts["data"]) == 2
    for n, (graphql_account, rest_account) in enumerate(
        zip(accounts, rest_accounts["data"], strict=True)
    ):
        entries = graphql_account.pop("entries")
        assert_same_as_rest(graphql_account, rest_account)
        await same_pages(
            api, gql, assert_same_as_rest, customer_id, entries,
            "entries", lambda found, n=n: found["loyaltyAccounts"][n]["entries"],
            f"/v1/loyalty/accounts/{rest_account['id']}/entries",
        )  # fmt: skip

    lifecycle = page["lifecycle"]
    transitions = lifecycle.pop("transitions")
    assert_same_as_rest(lifecycle, ok(await api.get(f"/v1/customers/{customer_id}/lifecycle")))
    assert lifecycle["stage"] == "active"
    await same_pages(
        api, gql, assert_same_as_rest, customer_id, transitions,
        "transitions", lambda found: found["lifecycle"]["transitions"],
        f"/v1/customers/{customer_id}/lifecycle/transitions",
    )  # fmt: skip

    await same_pages(
        api, gql, assert_same_as_rest, customer_id, page["segments"],
        "segments", lambda found: found["segments"], f"/v1/customers/{customer_id}/segments",
    )  # fmt: skip


async def same_pages(api, gql, assert_same_as_rest, customer_id, first, after, pick, path) -> None:
    """The connection ``first`` (one item a page) and the pages after it, read with the
    variable ``after``, match REST's pages of ``path``."""
    found, cursor, pages = first, None, 0
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        rest = ok(await api.get(path, params=params))
        [edge] = found["edges"]
        assert_same_as_rest(numbers(edge["node"]), rest["data"][0])
        assert found["pageInfo"]["hasNextPage"] is rest["has_more"]
        pages += 1
        if not rest["has_more"]:
            break
        assert found["pageInfo"]["endCursor"] == rest["next_cursor"]
        cursor = rest["next_cursor"]
        variables = {"id": customer_id, "first": 1, after: cursor}
        found = pick((await gql(ONE, variables))["customer"])
    assert pages >= 2


def numbers(node: dict) -> dict:
    """GraphQL's Decimal scalar is a string ("1.5"); REST writes the same rate as a number."""
    if node.get("multiplier") is not None:
        return {**node, "multiplier": float(node["multiplier"])}
    return node
