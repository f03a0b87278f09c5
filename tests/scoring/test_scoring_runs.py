"""Scoring through the API: the CDNOW sample imported over HTTP as customers and
purchases, fitted by the worker, must reproduce the published BG/NBD and Gamma-Gamma
parameters; churn and lifetime value are then served per customer and ranked."""

import asyncio

import pytest

from cdnow import import_cdnow
from support import assert_problem, eventually_events


async def finished(api, location: str) -> dict:
    for _ in range(600):
        run = (await api.get(location)).json()
        if run["status"] in ("succeeded", "failed"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"the run is still {run['status']}: {run}")


async def start_run(api, scorer: str, **fields) -> dict:
    body = {"scorer": scorer, "observation_end": "1997-09-30", "time_unit": "weeks", **fields}
    response = await api.post("/v1/scoring/runs", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    return await finished(api, response.headers["location"])


@pytest.fixture
async def cdnow(api, start_worker) -> dict[str, str]:
    ids = await import_cdnow(api)
    await start_worker()
    return ids


async def test_bgnbd_on_cdnow_reproduces_the_published_fit(api, cdnow):
    run = await start_run(api, "bgnbd")

    assert run["status"] == "succeeded", run["error"]
    fitted = run["parameters"]
    assert round(fitted["r"], 3) == 0.243
    assert round(fitted["alpha"], 3) == 4.414
    assert round(fitted["a"], 3) == 0.793
    assert round(fitted["b"], 3) == 2.426
    assert round(run["diagnostics"]["log_likelihood"], 1) == -9582.4
    assert run["customers_scored"] == 2357
    assert run["currency"] == "USD" and run["progress"] == 1.0


async def test_gamma_gamma_on_cdnow_reproduces_the_published_fit(api, cdnow):
    run = await start_run(api, "gamma_gamma")

    assert run["status"] == "succeeded", run["error"]
    fitted = run["parameters"]
    assert round(fitted["p"], 2) == 6.25
    assert round(fitted["q"], 2) == 3.74
    assert round(fitted["gamma"], 2) == 15.44
    assert run["diagnostics"]["customers"] == 946  # the repeat buyers it was fitted on
    clv = (await api.get(f"/v1/customers/{cdnow['0001']}/clv")).json()
    assert clv["clv"] > 0 and clv["currency"] == "USD" and clv["run_id"] == run["id"]


async def test_churn_is_served_ranked_and_announced_when_it_crosses_the_threshold(api, cdnow):
    run = await start_run(api, "bgnbd")
    one_timer, regular = cdnow["0002"], cdnow["0001"]

    churn = (await api.get(f"/v1/customers/{one_timer}/churn")).json()
    assert churn["run_id"] == run["id"]
    assert churn["churn_probability"] == pytest.approx(1 - churn["p_alive"])
    scores = (await api.get(f"/v1/customers/{regular}/scores")).json()
    assert [s["scorer"] for s in scores] == ["bgnbd"]

    ranked, cursor = [], None
    while True:
        params = {"threshold": 0.7, "limit": 200} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/churn/at-risk", params=params)).json()
        ranked += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    probabilities = [r["churn_probability"] for r in ranked]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities and min(probabilities) >= 0.7
    announced = await eventually_events(api, len(ranked), type="customer.churn_risk_changed")
    assert {e["customer_id"] for e in announced} == {r["customer_id"] for r in ranked}
    assert all(e["data"]["at_risk"] for e in announced)
    [completed] = await eventually_events(api, 1, type="scoring.run_completed")
    assert completed["data"]["id"] == run["id"]

    again = await start_run(api, "bgnbd")  # the same data: nobody crosses again
    assert again["status"] == "succeeded"
    assert len(await eventually_events(api, 2, type="scoring.run_completed")) == 2
    assert len(await eventually_events(api, 0, type="customer.churn_risk_changed")) == len(ranked)


async def test_scorers_are_listed_with_their_config_schema(api):
    scorers = {s["name"]: s for s in (await api.get("/v1/scorers")).json()}
    assert {"rfm", "bgnbd", "gamma_gamma", "kmeans"} <= set(scorers)
    assert scorers["bgnbd"]["kind"] == "churn"
    assert scorers["gamma_gamma"]["kind"] == "clv"
    assert scorers["rfm"]["kind"] == "segmentation"
    assert scorers["bgnbd"]["config_schema"]["type"] == "object"


async def test_bad_runs_are_refused_naming_the_field(api):
    unknown = await api.post("/v1/scoring/runs", json={"scorer": "crystal_ball"})
    problem = assert_problem(unknown, 422, "validation-error")
    assert problem["errors"][0]["field"] == "scorer"
    assert "bgnbd" in problem["errors"][0]["message"]
    bad_config = await api.post(
        "/v1/scoring/runs", json={"scorer": "kmeans", "config": {"k": "many"}}
    )
    problem = assert_problem(bad_config, 422, "validation-error")
    assert problem["errors"][0]["field"] == "config.k"
    assert (await api.get("/v1/scoring/runs")).json()["data"] == []


async def test_a_run_without_purchases_fails_and_says_why(api, start_worker, new_customer):
    customer = await new_customer()
    await start_worker()
    response = await api.post("/v1/scoring/runs", json={"scorer": "bgnbd"})
    run = await finished(api, response.headers["location"])

    assert run["status"] == "failed"
    assert "no purchases" in run["error"]
    assert_problem(await api.get(f"/v1/customers/{customer['id']}/churn"), 404, "not-found")
