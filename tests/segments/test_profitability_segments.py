"""Profitability conditions (profit, gross margin, service cost), and the README's example
segments for the segmentation approaches, posted exactly as written there."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support import assert_problem

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_segments() -> dict[str, dict]:
    """The JSON bodies of README's "Segmentation approaches" section, by segment name."""
    text = README.read_text()
    section = text.split("## Segmentation approaches", 1)[1].split("\n## ", 1)[0]
    bodies = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]
    return {body["name"]: body for body in bodies}


async def _record(api, customer_id: str, type: str, days_ago: float, **fields) -> None:
    occurred_at = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat()
    response = await api.post(
        "/v1/interactions",
        json={"customer_id": customer_id, "type": type, "occurred_at": occurred_at, **fields},
    )
    assert response.status_code == 201, response.text


async def _buy(api, customer_id: str, days_ago: float, price: int, cost: int | None) -> None:
    """One unit sold at ``price`` that cost ``cost`` (None: not known), in EUR."""
    item = {"sku": "BOX", "quantity": 1, "unit_price": price}
    if cost is not None:
        item["unit_cost"] = cost
    await _record(api, customer_id, "purchase", days_ago, amount=price, currency="EUR",
                  items=[item])  # fmt: skip


async def _serve(api, customer_id: str, type: str, days_ago: float, cost: int) -> None:
    await _record(api, customer_id, type, days_ago, service_cost=cost, currency="EUR")


async def test_the_readme_segments_find_the_customers_they_describe(
    api, new_customer, refresh, member_ids
) -> None:
    rich = await new_customer(tags=["key-account"])  # profit 100000 - 30000 in the year
    await _buy(api, rich["id"], 30, 100000, 30000)
    needy = await new_customer()  # profit 20000 - 5000 - 5 * 500; 5 support contacts
    await _buy(api, needy["id"], 60, 20000, 5000)
    for days in (1, 10, 20, 40, 80):
        await _serve(api, needy["id"], "support", days, 500)
    costly = await new_customer()  # profit 5000 - 2000 - 12000 = -9000
    await _buy(api, costly["id"], 100, 5000, 2000)
    await _serve(api, costly["id"], "visit", 10, 12000)
    agency = await new_customer(kind="government", company_name="City of Springfield")
    small_key = await new_customer(tags=["key-account"])  # a key account buying little
    await _buy(api, small_key["id"], 5, 3000, None)
    thin_margin = await new_customer()  # big revenue, profit 120000 - 100000
    await _buy(api, thin_margin["id"], 5, 120000, 100000)
    lapsed = await new_customer(tags=["key-account"])  # profitable, but 400 days ago
    await _buy(api, lapsed["id"], 400, 150000, 10000)
    await new_customer()  # never did anything

    expected = {
        "Most profitable": {rich["id"]},
        "Loss-making buyers": {costly["id"]},
        "Special needs": {needy["id"], costly["id"]},
        "Strategic accounts": {rich["id"], agency["id"]},
    }
    bodies = _readme_segments()
    assert set(bodies) == set(expected)
    for name, body in bodies.items():
        response = await api.post("/v1/segments", json=body)
        assert response.status_code == 201, response.text
        segment_id = response.json()["id"]
        await refresh(segment_id)
        assert await member_ids(segment_id) == expected[name], name


async def test_profit_margin_and_service_cost_bounds(api, new_customer, search) -> None:
    good = await new_customer()  # margin 6000 - 1000; profit 5000 - 1000
    await _buy(api, good["id"], 3, 6000, 1000)
    await _serve(api, good["id"], "call", 1.5, 1000)
    uncosted = await new_customer()  # no unit cost known: margin is the whole 4000
    await _buy(api, uncosted["id"], 3, 4000, None)
    loss = await new_customer()  # margin 1000 - 900; profit 100 - 600
    await _buy(api, loss["id"], 3, 1000, 900)
    await _serve(api, loss["id"], "support", 1, 600)
    other_currency = await new_customer()  # USD only: nothing in EUR
    await _record(api, other_currency["id"], "support", 1, service_cost=9000, currency="USD")
    silent = await new_customer()

    def profitability(**bounds: object) -> dict:
        return {"profitability": {"currency": "EUR", **bounds}}

    assert await search(profitability(profit={"gte": 4000})) == {good["id"], uncosted["id"]}
    assert await search(profitability(gross_margin={"gte": 4500})) == {good["id"]}
    assert await search(profitability(profit={"lt": 0})) == {loss["id"]}
    assert await search(profitability(profit={"gte": -1000, "lte": -100})) == {loss["id"]}
    # Everyone without EUR interactions has made 0, so counts as not having cost more.
    assert await search(profitability(service_cost={"lte": 700})) == {
        uncosted["id"], loss["id"], other_currency["id"], silent["id"],
    }  # fmt: skip
    # Without a currency, service costs of every currency add up (as `amount` does).
    unconverted = {"profitability": {"service_cost": {"gte": 5000}}}
    assert await search(unconverted) == {other_currency["id"]}
    recent = profitability(days=2, service_cost={"gte": 500})  # the purchases are older
    assert await search(recent) == {good["id"], loss["id"]}
    assert await search(profitability(days=2, profit={"lt": 0})) == {good["id"], loss["id"]}


INVALID = [
    ({"currency": "EUR"}, ""),  # no bound at all
    ({"service_cost": {"gte": -1}}, ".service_cost.gte"),
    ({"profit": {"gte": 10**16}}, ".profit.gte"),
    ({"profit": {"lt": 0}, "days": 3, "since": "2026-01-01T00:00:00Z"}, ".since"),
]


async def test_profitability_conditions_are_validated(api) -> None:
    for condition, field in INVALID:
        body = {"condition": {"profitability": condition}}
        response = await api.post("/v1/customers/search", json=body)
        problem = assert_problem(response, 422, "validation-error")
        assert [e["field"] for e in problem["errors"]] == [f"condition.profitability{field}"]
