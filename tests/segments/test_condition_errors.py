"""Bad conditions are 422s naming the JSON path of the mistake, never 500s; client text
never reaches SQL as anything but a bound value."""

import json

import pytest

from support import assert_problem

COUNTRY_DE = {"field": "country", "op": "eq", "value": "DE"}

# (condition, path of the error, words its message must contain)
MISTAKES = [
    ({"all": [COUNTRY_DE, {"field": "shoe_size", "op": "eq", "value": 4}]},
     "condition.all.1.field", "`shoe_size` is not a condition field"),
    ({"not": {"any": [{"field": "country", "op": "like", "value": "D%"}]}},
     "condition.not.any.0.op", "`like` is not an operator; use one of eq, neq, in"),
    ({"field": "tags", "op": "eq", "value": "vip"}, "condition.op", "`eq` does not apply"),
    ({"field": "birth_date", "op": "starts_with", "value": "19"}, "condition.op", "starts_with"),
    ({"field": "birth_date", "op": "gt", "value": "yesterday"}, "condition.value", "YYYY-MM-DD"),
    ({"field": "created_at", "op": "gt", "value": "2024-01-01T00:00:00"}, "condition.value",
     "offset"),
    ({"field": "kind", "op": "in", "value": ["consumer", "alien"]}, "condition.value",
     "one of consumer"),
    ({"field": "country", "op": "in", "value": []}, "condition.value", "list of 1 to"),
    ({"field": "country", "op": "between", "value": ["A"]}, "condition.value", "two values"),
    ({"field": "attributes.n", "op": "between", "value": [5, 1]}, "condition.value",
     "low must not be above high"),
    ({"field": "attributes.n", "op": "gt", "value": True}, "condition.value", "number or text"),
    ({"field": "attributes.n", "op": "eq", "value": {"a": 1}}, "condition.value", "number"),
    ({"field": "attributes.n", "op": "eq", "value": 2**70}, "condition.value", "64-bit"),
    ({"field": "attributes.", "op": "exists"}, "condition.field", "is not a condition field"),
    ({"field": "attributes.a..b", "op": "exists"}, "condition.field", "is not a condition field"),
    ({"field": "country", "op": "exists", "value": "yes"}, "condition.value", "true, false"),
    ({"field": "attributes.a\u0000b", "op": "exists"}, "condition.field", "NUL"),
    ({"field": "country", "op": "eq", "value": "D\u0000E"}, "condition.value", "NUL"),
    ({"field": "attributes.n", "op": "eq", "value": None}, "condition.value", "text, a number"),
    ({"field": "country", "op": "eq"}, "condition.value", "text of 1 to"),
    ({"field": "country", "op": "eq", "value": "DE", "also": 1}, "condition.also", "Extra"),
    ({"any": [COUNTRY_DE, {"country": "DE"}]}, "condition.any.1", "must be a condition"),
    ({"all": []}, "condition.all", "at least 1"),
    ([COUNTRY_DE], "condition", "must be a condition"),
    ({"interactions": {"days": 0}}, "condition.interactions.days", "greater than or equal to 1"),
    ({"interactions": {"days": 9, "since": "2024-01-01T00:00:00Z"}},
     "condition.interactions.since", "cannot be combined with days"),
    ({"interactions": {"count": {}}}, "condition.interactions.count", "at least one of"),
    ({"interactions": {"count": {"gte": -1}}}, "condition.interactions.count.gte", "0"),
    ({"interactions": {"type": "purchase", "colour": "red"}}, "condition.interactions.colour",
     "Extra"),
    ({"score": {"scorer": "rfm", "field": "rank", "op": "eq", "value": 1}},
     "condition.score.field", "use score or label"),
    ({"score": {"field": "score", "op": "gte", "value": 0.5}}, "condition.score.scorer",
     "Field required"),
    ({"segment": "not-an-id"}, "condition.segment", "UUID"),
    ({"segment": "01a20000-0000-7000-8000-000000000000"}, "condition.segment",
     "no segment has id"),
]  # fmt: skip
ROUTES = [
    ("/v1/customers/search", {}),
    ("/v1/segments/preview", {}),
    ("/v1/segments", {"name": "x"}),
]


@pytest.mark.parametrize(("condition", "path", "words"), MISTAKES, ids=[p for _, p, _ in MISTAKES])
async def test_a_mistake_is_a_422_naming_its_path(api, condition, path, words):
    for route, body in ROUTES:
        response = await api.post(route, json={**body, "condition": condition})
        problem = assert_problem(response, 422, "validation-error")
        errors = {e["field"]: e["message"] for e in problem["errors"]}
        assert path in errors, (route, problem)
        assert words in errors[path], (route, problem)
    assert (await api.get("/v1/segments")).json()["data"] == []


async def test_every_mistake_in_a_tree_is_reported_at_once(api):
    condition = {
        "all": [
            {"field": "nope", "op": "eq", "value": 1},
            {"not": {"field": "country", "op": "nah", "value": "DE"}},
            {"interactions": {"days": -3}},
        ]
    }
    response = await api.post("/v1/customers/search", json={"condition": condition})
    fields = [e["field"] for e in assert_problem(response, 422, "validation-error")["errors"]]
    assert fields == [
        "condition.all.0.field",
        "condition.all.1.not.op",
        "condition.all.2.interactions.days",
    ]


async def test_trees_are_bounded_in_depth_and_size(api):
    deep: dict = COUNTRY_DE
    for _ in range(12):
        deep = {"not": deep}
    wide = {"any": [{"all": [COUNTRY_DE] * 50}] * 4}
    for condition, words in ((deep, "12 levels"), (wide, "200 conditions")):
        response = await api.post("/v1/customers/search", json={"condition": condition})
        problem = assert_problem(response, 422, "validation-error")
        assert problem["errors"][0]["field"] == "condition"
        assert words in problem["errors"][0]["message"]


async def test_absurdly_deep_json_is_a_422_too(api):
    body = '{"condition": ' + '{"not": ' * 5000 + json.dumps(COUNTRY_DE) + "}" * 5001
    response = await api.post(
        "/v1/customers/search", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 422, "validation-error")


INJECTIONS = [
    "'; DROP TABLE customers; --",
    "x' OR '1'='1",
    '"); DELETE FROM events; --',
    "$1",
    "\\' OR 1=1 --",
]


@pytest.mark.parametrize("text", INJECTIONS)
async def test_sql_in_values_and_attribute_keys_is_only_ever_data(api, new_customer, search, text):
    tricky = await new_customer(
        company_name=text, attributes={text: {"nested": text}}, tags=[text[:60]]
    )
    plain = await new_customer(company_name="Plain")
    conditions = [
        {"field": "company_name", "op": "eq", "value": text},
        {"field": "company_name", "op": "contains", "value": text},
        {"field": "company_name", "op": "in", "value": [text, "Plain' OR 'x'='x"]},
        {"field": f"attributes.{text}.nested", "op": "eq", "value": text},
        {"field": f"attributes.{text}.nested", "op": "starts_with", "value": text},
        {"field": "tags", "op": "contains", "value": text[:60]},
    ]
    for condition in conditions:
        assert await search(condition) == {tricky["id"]}, condition
    assert await search({"field": "company_name", "op": "neq", "value": text}) == {plain["id"]}
    # Field names are looked up, never written into SQL.
    for field in (text, f"country; {text}", f"country' {text}"):
        response = await api.post(
            "/v1/customers/search", json={"condition": {"field": field, "op": "exists"}}
        )
        assert_problem(response, 422, "validation-error")
    assert len((await api.get("/v1/customers")).json()["data"]) == 2
