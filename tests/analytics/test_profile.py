"""The 360-degree customer profile: every section of a hand-built customer against values
worked out by hand, sections withheld for lack of a scope, unknown customers, GraphQL
answering the same, and a statement count that does not grow with the customer's history.
"""

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import date
from typing import Any

import asyncpg
import pytest

from analytics.baskets import buy
from crm_api.analytics.profile import _ACTIVITY
from crm_api.config import Settings
from crm_api.core.db import asyncpg_dsn
from crm_api.core.json import dumps
from graphql_shapes import as_rest, instants, selection
from live import settings_for
from support import assert_problem

ALL_SECTIONS = {
    "lifecycle": "lifecycle:read",
    "lifetime": "interactions:read",
    "channels": "interactions:read",
    "categories": "analytics:read",
    "segments": "segments:read",
    "scores": "scoring:read",
    "loyalty": "loyalty:read",
    "interactions": "interactions:read",
}
CHANNELS = ("email", "phone", "sms", "chat", "social", "web", "app", "in_person")


@pytest.fixture
def settings(database_url: str) -> Settings:
    # One pooled connection, open from startup, so a query logger on it sees every
    # statement the app sends; the API key, once verified, is not read again.
    counted = {"pool_min_size": 1, "pool_size": 1, "api_key_cache_seconds": 3600}
    return settings_for(database_url).model_copy(update=counted)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def record(api, customer_id: str, type_: str, at: str, **fields: Any) -> dict:
    body = {"customer_id": customer_id, "type": type_, "occurred_at": at, **fields}
    return ok(await api.post("/v1/interactions", json=body), 201)


async def scored_by_rfm(api, start_worker) -> dict:
    await start_worker()
    body = {"scorer": "rfm", "observation_end": date(2026, 4, 1).isoformat()}
    run = ok(await api.post("/v1/scoring/runs", json=body), 202)
    for _ in range(300):
        run = ok(await api.get(f"/v1/scoring/runs/{run['id']}"))
        if run["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert run["status"] == "succeeded", run
    return run


@pytest.fixture
async def ada(api, new_customer) -> dict[str, Any]:
    """Ada, by hand (all 2026):

    01-10 purchase 3001 EUR  tofu (vegetarian)        P1
    02-10 purchase 2000 EUR  bread (bakery)           P2
    02-15 refund    500 EUR  of P2                    R1
    03-01..03 chat inbound x3; 03-04..05 email inbound x2; 03-06..07 email outbound x2
    03-10 purchase 1500 USD  tofu (vegetarian)        P3
    Max buys steak (meat) on 01-01, before all of Ada's purchases.
    """
    consents = {
        "email": {"granted": True, "at": "2026-01-01T09:00:00Z", "source": "signup-form"},
        "sms": {"granted": False, "at": "2026-01-02T09:00:00Z"},
    }
    ada = await new_customer(first_name="Ada", preferred_channel="email", consents=consents)
    max_ = await new_customer()
    await buy(api, max_["id"], [("steak", "meat")], at="2026-01-01T12:00:00Z")
    id_ = ada["id"]
    made = []
    lines = [{"sku": "tofu", "category": "vegetarian", "quantity": 1, "unit_price": 3001}]
    made.append(await record(api, id_, "purchase", "2026-01-10T12:00:00Z", amount=3001,
                             currency="EUR", items=lines))  # fmt: skip
    lines = [{"sku": "bread", "category": "bakery", "quantity": 2, "unit_price": 1000}]
    p2 = await record(api, id_, "purchase", "2026-02-10T12:00:00Z", amount=2000,
                      currency="EUR", items=lines)  # fmt: skip
    made.append(p2)
    made.append(await record(api, id_, "refund", "2026-02-15T12:00:00Z", amount=500,
                             currency="EUR", refund_of=p2["id"]))  # fmt: skip
    for day in (1, 2, 3):
        made.append(await record(api, id_, "chat", f"2026-03-0{day}T12:00:00Z",
                                 channel="chat", direction="inbound"))  # fmt: skip
    for day, direction in ((4, "inbound"), (5, "inbound"), (6, "outbound"), (7, "outbound")):
        made.append(await record(api, id_, "email", f"2026-03-0{day}T12:00:00Z",
                                 channel="email", direction=direction, subject="hi"))  # fmt: skip
    lines = [{"sku": "tofu", "category": "vegetarian", "quantity": 1, "unit_price": 1500}]
    made.append(await record(api, id_, "purchase", "2026-03-10T12:00:00Z", amount=1500,
                             currency="USD", items=lines))  # fmt: skip

    segment = ok(await api.post("/v1/segments", json={"name": "Friends", "kind": "static"}), 201)
    ok(await api.post(f"/v1/segments/{segment['id']}/members", json={"customer_ids": [id_]}))
    program = {"name": "Club", "currency": "EUR", "points_per_unit": "1", "lock_days": 3,
               "tiers": [{"name": "silver", "threshold": 30}]}  # fmt: skip
    program = ok(await api.post("/v1/loyalty/programs", json=program), 201)
    enrolment = {"customer_id": id_, "program_id": program["id"]}
    account = ok(await api.post("/v1/loyalty/accounts", json=enrolment), 201)
    ok(await api.post(f"/v1/loyalty/accounts/{account['id']}/earn", json={"points": 40}), 201)
    moved = ok(
        await api.post(f"/v1/customers/{id_}/lifecycle/transitions", json={"to": "active"}), 201
    )
    return {
        "id": id_,
        "interactions": made,
        "segment": segment,
        "program": program,
        "account": account,
        "moved": moved,
    }


async def profile_of(api, customer_id: str, **headers: str) -> dict:
    return ok(await api.get(f"/v1/customers/{customer_id}/profile", headers=headers))


async def test_every_section_of_a_hand_built_customer(api, ada, start_worker):
    run = await scored_by_rfm(api, start_worker)
    found = await profile_of(api, ada["id"])

    assert found["customer"] == ok(await api.get(f"/v1/customers/{ada['id']}"))
    assert found["consents"]["email"] == {
        "granted": True, "at": "2026-01-01T09:00:00Z", "source": "signup-form"
    }  # fmt: skip
    assert found["consents"]["sms"] == {"granted": False, "at": "2026-01-02T09:00:00Z",
                                        "source": None}  # fmt: skip
    never = {"granted": None, "at": None, "source": None}
    assert list(found["consents"]) == list(CHANNELS)
    assert {c for c, v in found["consents"].items() if v == never} == set(CHANNELS) - {
        "email", "sms"
    }  # fmt: skip

    assert found["lifecycle"] == {
        "customer_id": ada["id"],
        "stage": "active",
        "since": ada["moved"]["occurred_at"],
        "allowed": ok(await api.get(f"/v1/customers/{ada['id']}/lifecycle"))["allowed"],
    }
    # EUR: P1 3001 + P2 2000 = 5001 over 2 orders: 2500.5 -> 2501; minus R1 500 = 4501.
    assert found["lifetime"] == [
        {"currency": "EUR", "orders": 2, "sales": 5001, "refunds": 1, "refunded": 500,
         "revenue": 4501, "average_order_value": 2501,
         "first_purchase_at": "2026-01-10T12:00:00Z", "last_purchase_at": "2026-02-10T12:00:00Z"},
        {"currency": "USD", "orders": 1, "sales": 1500, "refunds": 0, "refunded": 0,
         "revenue": 1500, "average_order_value": 1500,
         "first_purchase_at": "2026-03-10T12:00:00Z", "last_purchase_at": "2026-03-10T12:00:00Z"},
    ]  # fmt: skip
    # Outbound emails do not count: chat 3 inbound, email 2.
    assert found["channels"] == {
        "declared": "email",
        "observed": "chat",
        "inbound": [
            {"channel": "chat", "interactions": 3, "last_at": "2026-03-03T12:00:00Z"},
            {"channel": "email", "interactions": 2, "last_at": "2026-03-05T12:00:00Z"},
        ],
    }
    # 4 baskets: meat in 1 (25% >= 5%), sold from 01-01, before Ada's 3 purchases: avoided.
    assert found["categories"] == {
        "bought_categories": [
            {"category": "vegetarian", "purchases": 2},
            {"category": "bakery", "purchases": 1},
        ],
        "avoided_categories": ["meat"],
    }
    [membership] = ok(await api.get(f"/v1/customers/{ada['id']}/segments"))["data"]
    assert found["segments"] == [
        {"id": ada["segment"]["id"], "name": "Friends", "since": membership["entered_at"]}
    ]

    [rfm] = found["scores"]["latest"]
    assert (rfm["scorer"], rfm["run_id"], rfm["customer_id"]) == ("rfm", run["id"], ada["id"])
    assert [rfm] == ok(await api.get(f"/v1/customers/{ada['id']}/scores"))
    assert rfm["label"] is not None
    # No churn or CLV scorer has run.
    assert (found["scores"]["churn"], found["scores"]["clv"]) == (None, None)
    assert found["scores"]["churn_at_risk"] is None

    [account] = found["loyalty"]
    assert account["program_id"] == ada["program"]["id"]
    # 40 points earned, all in the 3-day lock; 40 qualifying >= silver's 30.
    assert (account["balance"], account["available"], account["locked"]) == (40, 0, 40)
    assert account["tier"] == "silver"
    assert account == ok(await api.get(f"/v1/loyalty/accounts/{ada['account']['id']}"))

    # 11 interactions: the 10 newest, newest first (P1, the oldest, is left out).
    newest = sorted(ada["interactions"], key=lambda i: i["occurred_at"], reverse=True)[:10]
    assert [i["id"] for i in found["interactions"]] == [i["id"] for i in newest]
    assert found["interactions"][0]["items"] == newest[0]["items"]
    assert found["omitted"] == []


async def finished_run(database_url: str, kind: str, scores: dict[str, float], **run: Any) -> str:
    """A succeeded run of a ``kind`` scorer with these scores, as the worker leaves one."""
    run_id = uuid.uuid4()
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute(
            """INSERT INTO scoring_runs (id, scorer, scorer_version, kind, config,
                   observation_end, time_unit, currency, status, finished_at)
               VALUES ($1, $2, '1', $2, '{}', now(), 'weeks', $3, 'succeeded', now())""",
            run_id, kind, run.get("currency"),
        )  # fmt: skip
        await conn.executemany(
            """INSERT INTO customer_scores (customer_id, run_id, scorer, kind, score)
               VALUES ($1, $2, $3, $3, $4)""",
            [(uuid.UUID(c), run_id, kind, score) for c, score in scores.items()],
        )
    finally:
        await conn.close()
    return str(run_id)


async def test_churn_band_and_lifetime_value_come_from_the_latest_runs(
    api, new_customer, database_url
):
    risky, safe = (await new_customer())["id"], (await new_customer())["id"]
    await finished_run(database_url, "churn", {risky: 0.9, safe: 0.9})
    churn = await finished_run(database_url, "churn", {risky: 0.7, safe: 0.69})
    clv = await finished_run(database_url, "clv", {risky: 123.45}, currency="EUR")

    scores = (await profile_of(api, risky))["scores"]
    # The default threshold is 0.7: at or above it is at risk.
    assert (scores["churn"]["churn_probability"], scores["churn"]["run_id"]) == (0.7, churn)
    assert scores["churn_at_risk"] is True
    assert (scores["clv"]["clv"], scores["clv"]["currency"], scores["clv"]["run_id"]) == (
        123.45, "EUR", clv
    )  # fmt: skip
    scores = (await profile_of(api, safe))["scores"]
    assert (scores["churn"]["churn_probability"], scores["churn_at_risk"]) == (0.69, False)
    assert scores["clv"] is None


async def test_observed_channel_ties_go_to_the_most_recently_used(api, new_customer):
    customer = (await new_customer())["id"]
    for channel, day in (("sms", 1), ("web", 2), ("sms", 3), ("web", 4)):
        await record(api, customer, "web" if channel == "web" else "sms",
                     f"2026-03-0{day}T12:00:00Z", channel=channel, direction="inbound")  # fmt: skip
    channels = (await profile_of(api, customer))["channels"]
    assert channels["declared"] is None
    assert channels["observed"] == "web"
    assert [u["channel"] for u in channels["inbound"]] == ["web", "sms"]


async def test_a_new_customer_has_empty_sections_not_missing_ones(api, new_customer):
    found = await profile_of(api, (await new_customer())["id"])
    assert found["lifetime"] == [] and found["segments"] == [] and found["loyalty"] == []
    assert found["interactions"] == [] and found["scores"]["latest"] == []
    assert found["channels"] == {"declared": None, "observed": None, "inbound": []}
    assert found["categories"] == {"bought_categories": [], "avoided_categories": []}
    assert found["lifecycle"]["stage"] == "prospect"
    assert found["lifecycle"]["since"] == found["customer"]["created_at"]


async def test_sections_need_their_domains_read_scope(api, ada, key_for):
    reader = await key_for("customers:read")
    found = ok(await api.get(f"/v1/customers/{ada['id']}/profile", headers=reader))
    assert {s: found[s] for s in ALL_SECTIONS} == dict.fromkeys(ALL_SECTIONS)
    assert found["omitted"] == [{"section": s, "scope": sc} for s, sc in ALL_SECTIONS.items()]
    # Without pii:read, personal fields are redacted as GET /v1/customers/{id} does.
    assert found["customer"]["first_name"] is None
    assert "first_name" in found["customer"]["redacted_fields"]
    assert found["consents"]["email"]["granted"] is True

    more = await key_for("customers:read", "segments:read", "loyalty:write", "pii:read")
    found = ok(await api.get(f"/v1/customers/{ada['id']}/profile", headers=more))
    assert found["customer"]["first_name"] == "Ada"
    assert [s["name"] for s in found["segments"]] == ["Friends"]
    assert found["loyalty"][0]["balance"] == 40  # loyalty:write implies loyalty:read
    left_out = {s: sc for s, sc in ALL_SECTIONS.items() if s not in ("segments", "loyalty")}
    assert found["omitted"] == [{"section": s, "scope": sc} for s, sc in left_out.items()]
    assert {s: found[s] for s in left_out} == dict.fromkeys(left_out)


async def test_the_profile_itself_needs_customers_read(api, ada, key_for):
    response = await api.get(
        f"/v1/customers/{ada['id']}/profile", headers=await key_for("segments:read")
    )
    assert_problem(response, 403, "forbidden")


async def test_unknown_and_deleted_customers_are_not_found(api, new_customer):
    assert_problem(await api.get(f"/v1/customers/{uuid.uuid4()}/profile"), 404, "not-found")
    gone = await new_customer()
    assert (await api.delete(f"/v1/customers/{gone['id']}")).status_code == 204
    assert_problem(await api.get(f"/v1/customers/{gone['id']}/profile"), 404, "not-found")
    assert_problem(await api.get("/v1/customers/not-a-uuid/profile"), 422, "validation-error")


# -- GraphQL answers the same ----------------------------------------------------------


async def graphql_profile(api, customer_id: str) -> dict:
    query = f"""query($id: ID!) {{ customerProfile(id: $id) {{
        {selection("CustomerProfile")} }} }}"""
    body = ok(await api.post("/graphql", json={"query": query, "variables": {"id": customer_id}}))
    assert "errors" not in body, body["errors"]
    return body["data"]["customerProfile"]


def by_channel(consents: list[dict]) -> dict:
    return {c.pop("channel"): c for c in consents}


def rest_shape(found: dict) -> dict:
    """A GraphQL profile as REST writes it: consents keyed by channel, as REST has them."""
    shaped = as_rest(found, "CustomerProfile")
    shaped["consents"] = by_channel(shaped["consents"])
    shaped["customer"]["consents"] = by_channel(shaped["customer"]["consents"])
    return shaped


def without_customer_ids(rest: dict) -> dict:
    """GraphQL's score types leave out the customer id their parent already names."""
    scores = rest["scores"]
    for score in (*scores["latest"], scores["clv"]):
        if score is not None:
            score.pop("customer_id")
    return rest


async def test_graphql_reads_what_rest_reads(api, ada, start_worker):
    await scored_by_rfm(api, start_worker)
    found = rest_shape(await graphql_profile(api, ada["id"]))
    rest = without_customer_ids(instants(await profile_of(api, ada["id"])))
    assert found == rest
    assert found["loyalty"][0]["locked"] == 40 and len(found["interactions"]) == 10


async def test_rest_reads_what_graphql_wrote(api):
    create = """mutation($input: CustomerInput!) { createCustomer(input: $input) { id } }"""
    customer = {"email": "grace@example.com", "preferredChannel": "SMS",
                "consents": [{"channel": "SMS", "granted": True}]}  # fmt: skip
    body = ok(await api.post("/graphql", json={"query": create, "variables": {"input": customer}}))
    customer_id = body["data"]["createCustomer"]["id"]
    record_ = """mutation($input: InteractionInput!) { recordInteraction(input: $input) { id } }"""
    purchase = {"customerId": customer_id, "type": "PURCHASE", "amount": 990,
                "currency": "EUR", "occurredAt": "2026-02-01T10:00:00Z"}  # fmt: skip
    body = ok(await api.post("/graphql", json={"query": record_, "variables": {"input": purchase}}))
    assert "errors" not in body, body["errors"]

    rest = instants(await profile_of(api, customer_id))
    assert rest["lifetime"][0]["revenue"] == 990
    assert rest["channels"]["declared"] == "sms" and rest["consents"]["sms"]["granted"]
    assert rest_shape(await graphql_profile(api, customer_id)) == without_customer_ids(rest)


async def test_graphql_omits_sections_and_answers_null_for_the_unknown(api, ada, key_for):
    query = """query($id: ID!) { customerProfile(id: $id) {
        segments { name } loyalty { id } omitted { section scope } } }"""
    headers = await key_for("customers:read", "segments:read")
    variables = {"id": ada["id"]}
    body = ok(await api.post("/graphql", json={"query": query, "variables": variables},
                             headers=headers))  # fmt: skip
    found = body["data"]["customerProfile"]
    assert found["segments"] == [{"name": "Friends"}] and found["loyalty"] is None
    assert {o["section"]: o["scope"] for o in found["omitted"]}["LOYALTY"] == "loyalty:read"
    variables = {"id": str(uuid.uuid4())}
    body = ok(await api.post("/graphql", json={"query": query, "variables": variables}))
    assert body["data"]["customerProfile"] is None


# -- cost ------------------------------------------------------------------------------


@pytest.fixture
async def sent(app: Any) -> list[str]:
    """The SQL of every statement the app sends from now on, on its one pooled connection."""
    statements: list[str] = []
    async with AsyncExitStack() as held:
        conn = await held.enter_async_context(app.state.db.pool.acquire(timeout=5))
        conn.add_query_logger(lambda record: statements.append(record.query))
    return statements


async def statements_for(api, sent: list[str], customer_id: str) -> list[str]:
    await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not during, a statement
    before = len(sent)
    await profile_of(api, customer_id)
    for _ in range(3):
        await asyncio.sleep(0)
    return sent[before:]


async def test_the_statement_count_does_not_grow_with_the_history(api, ada, sent):
    await profile_of(api, ada["id"])  # the key verified and cached, types met
    small = await statements_for(api, sent, ada["id"])
    # Purchases stay among the newest interactions, so their line items are read again.
    for n in range(30):
        at = f"2026-03-20T12:{n:02d}:00Z"
        await buy(api, ada["id"], [(f"sku-{n}", f"category-{n % 4}")], at=at)
        await record(api, ada["id"], "chat", at, channel="chat", direction="inbound")
    large = await statements_for(api, sent, ada["id"])
    assert len(small) == len(large) <= 11, (len(small), len(large))


async def test_the_lifetime_and_channel_figures_read_the_timeline_index(database_url, ada):
    """With sequential scans priced out, the planner finds an index on the customer for the
    profile's own statement (it would scan the tiny test table otherwise)."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("SET enable_seqscan = off")
        args = _ACTIVITY.args({"customer_id": uuid.UUID(ada["id"])})
        plan = dumps(await conn.fetchval("EXPLAIN (FORMAT JSON) " + _ACTIVITY.sql, *args))
    finally:
        await conn.close()
    assert b"Seq Scan" not in plan and b"ix_interactions_timeline" in plan, plan
