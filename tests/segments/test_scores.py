"""Score conditions and model segments: a scorer's latest succeeded run decides."""

from support import assert_problem

AT_RISK = {"score": {"scorer": "rfm", "field": "label", "op": "eq", "value": "At Risk"}}
CHURNING = {"score": {"scorer": "bgnbd", "field": "score", "op": "gte", "value": 0.7}}


async def test_the_latest_succeeded_run_of_the_scorer_counts(new_customer, scoring_run, search):
    ada, bob, cleo = [await new_customer() for _ in range(3)]
    await scoring_run("rfm", {ada["id"]: (None, "At Risk")}, finished_minutes_ago=60)
    await scoring_run("rfm", {bob["id"]: (None, "At Risk"), ada["id"]: (None, "Champions")})
    # Neither a failed run, nor another scorer's, nor one still running counts.
    await scoring_run("rfm", {cleo["id"]: (None, "At Risk")}, status="failed")
    await scoring_run("rfm", {cleo["id"]: (None, "At Risk")}, status="running")
    await scoring_run("kmeans", {cleo["id"]: (None, "At Risk")})

    assert await search(AT_RISK) == {bob["id"]}
    assert await search({"not": AT_RISK}) == {ada["id"], cleo["id"]}
    label_in = {"score": {"scorer": "rfm", "field": "label", "op": "in", "value": ["Champions"]}}
    assert await search(label_in) == {ada["id"]}


async def test_score_bands(new_customer, scoring_run, search):
    low, high, edge, unscored = [await new_customer() for _ in range(4)]
    await scoring_run(
        "bgnbd",
        {low["id"]: (0.1, None), high["id"]: (0.93, None), edge["id"]: (0.7, None)},
    )
    assert await search(CHURNING) == {high["id"], edge["id"]}
    band = {"score": {"scorer": "bgnbd", "field": "score", "op": "between", "value": [0, 0.5]}}
    assert await search(band) == {low["id"]}
    scored = {"score": {"scorer": "bgnbd", "field": "score", "op": "exists"}}
    assert await search({"not": scored}) == {unscored["id"]}
    assert await search({"score": {**CHURNING["score"], "scorer": "nobody"}}) == set()


async def test_a_model_segment_follows_new_runs(
    new_customer, scoring_run, create_segment, refresh, member_ids
):
    ada, bob = await new_customer(), await new_customer()
    segment = await create_segment(AT_RISK, kind="model", name="At risk")
    assert segment["kind"] == "model" and segment["refresh_interval"] == 86_400

    await scoring_run("rfm", {ada["id"]: (None, "At Risk"), bob["id"]: (None, "Loyal")})
    assert (await refresh(segment["id"]))["entered"] == 1
    assert await member_ids(segment["id"]) == {ada["id"]}

    await scoring_run("rfm", {ada["id"]: (None, "Loyal"), bob["id"]: (None, "At Risk")})
    report = await refresh(segment["id"])
    assert (report["entered"], report["exited"]) == (1, 1)
    assert await member_ids(segment["id"]) == {bob["id"]}


async def test_a_model_segment_takes_one_score_condition(api, create_segment):
    for condition in ({"all": [AT_RISK]}, {"field": "country", "op": "eq", "value": "DE"}):
        response = await api.post(
            "/v1/segments", json={"name": "x", "kind": "model", "condition": condition}
        )
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["field"] == "condition"
    model = await create_segment(AT_RISK, kind="model")
    changed = await api.patch(f"/v1/segments/{model['id']}", json={"condition": CHURNING})
    assert changed.status_code == 200 and changed.json()["condition"] == CHURNING
    refused = await api.patch(f"/v1/segments/{model['id']}", json={"condition": {"not": CHURNING}})
    assert_problem(refused, 422, "validation-error")
