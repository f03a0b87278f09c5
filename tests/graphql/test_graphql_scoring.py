"""Scoring over GraphQL: the same runs, scores and scopes as REST."""

import asyncio

from cdnow import import_cdnow

START = """mutation($input: ScoringRunInput!) {
    startScoringRun(input: $input) { id status scorer kind }
}"""
RUN = "query($id: ID!) { scoringRun(id: $id) { status error parameters customersScored } }"
CUSTOMER = """query($id: ID!) { customer(id: $id) {
    churn { churnProbability pAlive expectedPurchases scorer }
    clv { clv }
    scores { scorer kind score details }
} }"""
AT_RISK = """query($after: String) { churnAtRisk(threshold: 0.9, first: 100, after: $after) {
    edges { node { customerId churnProbability } }
    pageInfo { hasNextPage endCursor }
} }"""


async def run_to_end(gql, scorer: str) -> dict:
    input_ = {"scorer": scorer, "observationEnd": "1997-09-30", "timeUnit": "WEEKS"}
    started = (await gql(START, {"input": input_}))["startScoringRun"]
    assert started["status"] == "queued" and started["kind"] == "CHURN"
    for _ in range(300):
        run = (await gql(RUN, {"id": started["id"]}))["scoringRun"]
        if run["status"] in ("succeeded", "failed"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(run)


async def test_a_run_started_over_graphql_scores_customers_read_over_graphql(
    api, gql, gql_error, key_for, start_worker
):
    ids = await import_cdnow(api)
    await start_worker()
    run = await run_to_end(gql, "bgnbd")
    assert run["status"] == "succeeded", run["error"]
    assert round(run["parameters"]["r"], 3) == 0.243
    assert run["customersScored"] == 2357

    customer = (await gql(CUSTOMER, {"id": ids["0001"]}))["customer"]
    assert customer["churn"]["scorer"] == "bgnbd"
    assert customer["churn"]["churnProbability"] == 1 - customer["churn"]["pAlive"]
    assert customer["clv"] is None  # no CLV run yet
    [score] = customer["scores"]
    assert score["kind"] == "CHURN" and score["details"]["p_alive"] == customer["churn"]["pAlive"]

    risky, after = [], None
    while True:
        page = (await gql(AT_RISK, {"after": after}))["churnAtRisk"]
        risky += [e["node"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    rest = (await api.get("/v1/churn/at-risk", params={"threshold": 0.9, "limit": 200})).json()
    assert [r["customerId"] for r in risky][:200] == [r["customer_id"] for r in rest["data"]]

    reader = await key_for("customers:read")
    churn_only = "query($id: ID!) { customer(id: $id) { id churn { churnProbability } } }"
    error, data = await gql_error(churn_only, {"id": ids["0001"]}, code="forbidden", headers=reader)
    assert "scoring:read" in error["message"]
    assert data == {"customer": {"id": ids["0001"], "churn": None}}


async def test_an_unknown_scorer_is_a_validation_error_naming_it(gql_error):
    error, _ = await gql_error(
        START, {"input": {"scorer": "crystal_ball"}}, code="validation-error"
    )
    assert error["extensions"]["errors"][0]["field"] == "scorer"


async def test_a_scorer_filter_postgresql_cannot_hold_is_refused_on_both_transports(
    api, gql_error
) -> None:
    rest = await api.get("/v1/scoring/runs", params={"scorer": "rfm\x00"})
    assert rest.status_code == 422, rest.text
    assert rest.headers["content-type"] == "application/problem+json"
    [field] = rest.json()["errors"]
    assert (field["field"], field["location"]) == ("scorer", "query")
    assert "NUL" in field["message"]

    error, _ = await gql_error(
        'query { scoringRuns(scorer: "rfm\\u0000") { edges { node { id } } } }',
        code="validation-error",
    )
    assert [e["field"] for e in error["extensions"]["errors"]] == ["scorer"]
