"""The stage graph: readable by every lifecycle reader, replaceable as a whole by an admin,
never into a graph that strands a customer or cannot be walked from `prospect`."""

from support import assert_problem

DEFAULT = {
    "prospect": ["onboarding", "active"],
    "onboarding": ["active", "at_risk"],
    "active": ["loyal", "at_risk"],
    "loyal": ["advocate", "at_risk"],
    "advocate": ["at_risk"],
    "at_risk": ["active", "churned"],
    "churned": ["won_back"],
    "won_back": ["active", "at_risk"],
}
SMALL = {
    "stages": [
        {"name": "prospect", "description": "New.", "targets": ["active"]},
        {"name": "active", "targets": ["dormant"]},
        {"name": "dormant", "targets": ["active"]},
    ]
}


async def test_the_default_graph_is_the_customer_life_cycle(api, key_for):
    response = await api.get("/v1/lifecycle/stages", headers=await key_for("lifecycle:read"))
    assert response.status_code == 200, response.text
    graph = response.json()
    assert {s["name"]: s["targets"] for s in graph["stages"]} == DEFAULT
    assert graph["stages"][0]["name"] == "prospect"
    assert all(s["description"] for s in graph["stages"])
    assert response.headers["etag"] == f'"{graph["version"]}"'


async def test_an_admin_replaces_the_graph(api):
    before = (await api.get("/v1/lifecycle/stages")).headers["etag"]
    response = await api.put("/v1/lifecycle/stages", json=SMALL, headers={"If-Match": before})
    assert response.status_code == 200, response.text
    graph = response.json()
    assert [(s["name"], s["targets"]) for s in graph["stages"]] == [
        ("prospect", ["active"]),
        ("active", ["dormant"]),
        ("dormant", ["active"]),
    ]
    assert response.headers["etag"] != before
    assert (await api.get("/v1/lifecycle/stages")).json() == graph

    stale = await api.put("/v1/lifecycle/stages", json=SMALL, headers={"If-Match": before})
    assert_problem(stale, 412, "precondition-failed")


async def test_unreachable_stages_are_named(api):
    body = {
        "stages": [
            {"name": "prospect", "targets": ["active"]},
            {"name": "active"},
            {"name": "island", "targets": ["active"]},
            {"name": "lagoon", "targets": ["island"]},
        ]
    }
    problem = assert_problem(
        await api.put("/v1/lifecycle/stages", json=body), 422, "validation-error"
    )
    assert {(e["field"], e["message"]) for e in problem["errors"]} == {
        ("stages.2.name", "is not reachable from prospect"),
        ("stages.3.name", "is not reachable from prospect"),
    }
    assert {s["name"] for s in (await api.get("/v1/lifecycle/stages")).json()["stages"]} == set(
        DEFAULT
    )


async def test_malformed_graphs_are_refused_naming_the_field(api):
    cases = [
        ({"stages": [{"name": "active"}]}, "stages", "must contain prospect"),
        (
            {"stages": [{"name": "prospect", "targets": ["prospect"]}]},
            "stages.0.targets.0",
            "itself",
        ),
        ({"stages": [{"name": "prospect", "targets": ["nowhere"]}]}, "stages.0.targets.0", "no"),
        ({"stages": [{"name": "prospect"}, {"name": "prospect"}]}, "stages.1.name", "twice"),
        ({"stages": [{"name": "Not A Slug"}]}, "stages.0.name", ""),
    ]
    for body, field, message in cases:
        problem = assert_problem(
            await api.put("/v1/lifecycle/stages", json=body), 422, "validation-error"
        )
        assert any(e["field"] == field and message in e["message"] for e in problem["errors"]), (
            problem
        )


async def test_stages_customers_hold_cannot_be_removed(api, new_customer, moved_to):
    held = [await new_customer() for _ in range(3)]
    await moved_to(held[0]["id"], "onboarding")
    await moved_to(held[1]["id"], "onboarding")
    await moved_to(held[2]["id"], "active", "loyal")
    gone = await new_customer()
    await moved_to(gone["id"], "active", "loyal")
    assert (await api.delete(f"/v1/customers/{gone['id']}")).status_code == 204

    problem = assert_problem(await api.put("/v1/lifecycle/stages", json=SMALL), 409, "conflict")
    assert "loyal (2 customers)" in problem["detail"]
    assert "onboarding (2 customers)" in problem["detail"]
    assert {e["message"] for e in problem["errors"]} == {
        "lacks loyal, held by 2 customers",
        "lacks onboarding, held by 2 customers",
    }


async def test_enabled_rules_keep_their_stages(api, enable):
    await enable("inactivity")
    body = {"stages": [{"name": "prospect", "targets": ["active"]}, {"name": "active"}]}
    problem = assert_problem(await api.put("/v1/lifecycle/stages", json=body), 409, "conflict")
    assert "inactivity" in problem["detail"]
    await api.patch("/v1/lifecycle/rules/inactivity", json={"enabled": False})
    assert (await api.put("/v1/lifecycle/stages", json=body)).status_code == 200
    refused = await api.patch("/v1/lifecycle/rules/inactivity", json={"enabled": True})
    assert "at_risk" in assert_problem(refused, 409, "conflict")["detail"]


async def test_only_an_admin_replaces_the_graph(api, key_for):
    writer = await key_for("lifecycle:write")
    assert (await api.get("/v1/lifecycle/stages", headers=writer)).status_code == 200
    assert_problem(
        await api.put("/v1/lifecycle/stages", json=SMALL, headers=writer), 403, "forbidden"
    )
    assert_problem(
        await api.get("/v1/lifecycle/stages", headers=await key_for("customers:read")),
        403,
        "forbidden",
    )
