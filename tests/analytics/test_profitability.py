"""Profitability: item costs and service costs recorded, and the figures they give per
customer (GET /v1/customers/{id}/profitability) and in the KPIs, worked out by hand on a
small history and checked against a plain-Python computation on a generated one."""

import asyncio
import json
import random
import uuid
from datetime import timedelta
from fractions import Fraction

import pytest

from analytics.history import History
from crm_api import migrate
from crm_api.interactions import service
from support import assert_problem

NDJSON = {"Content-Type": "application/x-ndjson"}


async def _record(history: History, customer_id: str, type: str, days_ago: float, **fields):
    response = await history.api.post(
        "/v1/interactions",
        json={
            "customer_id": customer_id,
            "type": type,
            "occurred_at": history.ago(days_ago).isoformat(),
            **fields,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def _item(sku: str, quantity: int, unit_price: int, unit_cost: int | None = None) -> dict:
    item = {"sku": sku, "quantity": quantity, "unit_price": unit_price}
    return item if unit_cost is None else {**item, "unit_cost": unit_cost}


async def _hand_built(history: History) -> dict[str, str]:
    """`a` buys, returns part of it and calls support; `b` only had a costly visit."""
    a = await history.customer()
    p1 = await _record(  # 60 days ago; the mug's cost is not known
        history, a, "purchase", 60, amount=10000, currency="EUR",
        items=[_item("TEA", 2, 3000, 1000), _item("MUG", 1, 4000)],
    )  # fmt: skip
    await _record(  # one tea back: its own line carries the cost taken back
        history, a, "refund", 20, amount=3000, currency="EUR", refund_of=p1["id"],
        items=[_item("TEA", 1, 3000, 1000)],
    )  # fmt: skip
    await _record(
        history, a, "purchase", 10, amount=6000, currency="EUR",
        items=[_item("POT", 4, 1500, 500)],
    )  # fmt: skip
    await _record(history, a, "support", 5, channel="phone", service_cost=1500, currency="EUR")
    await _record(
        history, a, "purchase", 3, amount=2000, currency="USD",
        items=[_item("TEA", 1, 2000, 500)],
    )  # fmt: skip
    b = await history.customer()
    await _record(history, b, "visit", 2, service_cost=800, currency="EUR")
    return {"a": a, "b": b, "silent": await history.customer()}


async def _profitability(history: History, customer_id: str, **params: object) -> dict:
    response = await history.api.get(f"/v1/customers/{customer_id}/profitability", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_customers_profitability_worked_out_by_hand(history: History) -> None:
    c = await _hand_built(history)

    eur = await _profitability(history, c["a"], currency="EUR")
    # revenue: 10000 + 6000 - 3000 refunded
    # cost of goods: 2 * 1000 (teas) + 4 * 500 (pots) - 1 * 1000 (tea back); mug unknown
    # covered revenue: 10000 * 6000/10000 + 6000 * 6000/6000 - 3000 * 3000/3000 = 9000
    assert eur == {
        "customer_id": c["a"],
        "currency": "EUR",
        "revenue": 13000,
        "cost_of_goods": 3000,
        "gross_margin": 10000,
        "margin_rate": pytest.approx(10000 / 13000),
        "service_cost": 1500,
        "profit": 8500,
        "cost_coverage": pytest.approx(9000 / 13000),
    }
    usd = await _profitability(history, c["a"], currency="usd")
    assert (usd["currency"], usd["revenue"], usd["cost_of_goods"], usd["profit"]) == (
        "USD", 2000, 500, 1500,
    )  # fmt: skip
    assert (usd["margin_rate"], usd["cost_coverage"], usd["service_cost"]) == (0.75, 1.0, 0)

    visit_only = await _profitability(history, c["b"])  # EUR, its only currency
    assert visit_only["currency"] == "EUR"
    assert (visit_only["revenue"], visit_only["gross_margin"]) == (0, 0)
    assert (visit_only["service_cost"], visit_only["profit"]) == (800, -800)
    assert visit_only["margin_rate"] is None and visit_only["cost_coverage"] is None

    nothing = await _profitability(history, c["silent"])
    assert nothing["currency"] is None
    assert all(nothing[name] is None for name in nothing if name != "customer_id")


async def test_several_currencies_need_a_choice_and_unknown_customers_are_404(
    history: History,
) -> None:
    c = await _hand_built(history)
    several = await history.api.get(f"/v1/customers/{c['a']}/profitability")
    body = assert_problem(several, 422, "validation-error")
    assert "EUR, USD" in body["errors"][0]["message"]
    unknown = await history.api.get(f"/v1/customers/{uuid.uuid4()}/profitability")
    assert_problem(unknown, 404, "not-found")


async def test_kpis_add_profitability_for_the_period(history: History) -> None:
    await _hand_built(history)
    period = {
        "from": history.ago(30).isoformat(),
        "to": (history.now + timedelta(hours=1)).isoformat(),
        "currency": "EUR",
    }
    response = await history.api.get("/v1/analytics/kpis", params=period)
    assert response.status_code == 200, response.text
    k = response.json()
    # In the last 30 days: the pots (6000, cost 2000), the tea back (-3000, cost -1000),
    # the support call (1500) and the visit (800); the first purchase is older.
    assert k["revenue"] == 3000
    assert (k["cost_of_goods"], k["gross_margin"]) == (1000, 2000)
    assert (k["service_cost"], k["profit"]) == (2300, -300)
    assert k["margin_rate"] == pytest.approx(2000 / 3000)
    assert k["cost_coverage"] == 1.0  # every item in the period carries a cost

    # The USD purchase is money data too: without `currency` the KPIs must be told which.
    del period["currency"]
    several = await history.api.get("/v1/analytics/kpis", params=period)
    assert_problem(several, 422, "validation-error")


async def test_graphql_reads_and_records_costs_as_rest(history: History) -> None:
    c = await _hand_built(history)
    fields = "customerId currency revenue costOfGoods grossMargin marginRate serviceCost "
    fields += "profit costCoverage"
    query = (
        'query($id: ID!) { customerProfitability(customerId: $id, currency: "EUR") '
        f'{{ {fields} }} unknown: customerProfitability(customerId: "{uuid.uuid4()}") '
        "{ profit } }"
    )
    response = await history.api.post(
        "/graphql", json={"query": query, "variables": {"id": c["a"]}}
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    rest = await _profitability(history, c["a"], currency="EUR")
    assert data["customerProfitability"]["profit"] == rest["profit"] == 8500
    assert data["customerProfitability"]["costCoverage"] == pytest.approx(rest["cost_coverage"])
    assert data["unknown"] is None

    mutation = """mutation($input: InteractionInput!) { recordInteraction(input: $input) {
        serviceCost currency items { unitCost } } }"""
    call = {"customerId": c["b"], "type": "CALL", "serviceCost": 700, "currency": "EUR"}
    buy = {
        "customerId": c["b"], "type": "PURCHASE", "amount": 900, "currency": "EUR",
        "items": [{"sku": "CUP", "quantity": 1, "unitPrice": 900, "unitCost": 300}],
    }  # fmt: skip
    for given, expected in ((call, (700, [])), (buy, (None, [{"unitCost": 300}]))):
        answer = await history.api.post(
            "/graphql", json={"query": mutation, "variables": {"input": given}}
        )
        recorded = answer.json()["data"]["recordInteraction"]
        assert (recorded["serviceCost"], recorded["items"]) == expected
    b = await _profitability(history, c["b"])
    assert (b["revenue"], b["cost_of_goods"], b["service_cost"], b["profit"]) == (
        900, 300, 1500, -900,
    )  # fmt: skip


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "support", "service_cost": 500},  # a service cost needs its currency
        {"type": "support", "service_cost": -1, "currency": "EUR"},
        {"type": "support", "currency": "EUR"},  # a currency pricing nothing
        {"type": "support", "amount": 500, "currency": "EUR", "service_cost": 500},
        {
            "type": "purchase",
            "amount": 500,
            "currency": "EUR",
            "items": [_item("TEA", 1, 500, -1)],
        },
    ],
)
async def test_invalid_costs_are_refused_and_change_nothing(history: History, fields) -> None:
    customer_id = await history.customer()
    response = await history.api.post(
        "/v1/interactions", json={"customer_id": customer_id, **fields}
    )
    assert_problem(response, 422, "validation-error")
    timeline = await history.api.get(f"/v1/customers/{customer_id}/interactions")
    assert timeline.json()["data"] == []


async def test_import_carries_unit_and_service_costs(history: History) -> None:
    customer_id = await history.customer()
    lines = [
        {
            "customer_id": customer_id, "type": "purchase", "external_id": "order-1",
            "amount": 5000, "currency": "EUR",
            "items": [_item("TEA", 2, 1500, 600), _item("MUG", 1, 2000)],
        },
        {
            "customer_id": customer_id, "type": "support", "external_id": "ticket-1",
            "service_cost": 1200, "currency": "EUR",
        },
        {"customer_id": customer_id, "type": "support", "service_cost": -5, "currency": "EUR"},
    ]  # fmt: skip
    body = "\n".join(json.dumps(line) for line in lines)
    response = await history.api.post("/v1/interactions/import", content=body, headers=NDJSON)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["failed"]) == (2, 1)
    timeline = (await history.api.get(f"/v1/customers/{customer_id}/interactions")).json()
    by_type = {i["type"]: i for i in timeline["data"]}
    assert [i["unit_cost"] for i in by_type["purchase"]["items"]] == [600, None]
    assert (by_type["support"]["service_cost"], by_type["support"]["currency"]) == (1200, "EUR")
    p = await _profitability(history, customer_id)
    # cost 2 * 600; covered 5000 * 3000/5000; profit 5000 - 1200 - 1200
    assert (p["cost_of_goods"], p["service_cost"], p["profit"]) == (1200, 1200, 2600)
    assert p["cost_coverage"] == pytest.approx(0.6)


async def test_kpis_match_a_plain_python_computation_on_generated_data(
    history: History,
) -> None:
    rng = random.Random(8)
    revenue = cogs = service = 0
    covered = Fraction(0)
    for _ in range(12):
        customer_id = await history.customer()
        for _ in range(rng.randint(0, 4)):
            type_ = rng.choice(["purchase", "purchase", "refund", "support", "visit"])
            days, currency = rng.uniform(0, 20), rng.choice(["EUR", "EUR", "EUR", "USD"])
            if type_ in ("support", "visit"):
                cost = rng.randint(0, 3000)
                await _record(history, customer_id, type_, days, service_cost=cost,
                              currency=currency)  # fmt: skip
                service += cost if currency == "EUR" else 0
                continue
            items = [
                _item(f"SKU-{n}", rng.randint(1, 3), rng.randint(100, 5000),
                      rng.choice([None, rng.randint(0, 2000)]))
                for n in range(rng.randint(0, 3))
            ]  # fmt: skip
            value = sum(i["quantity"] * i["unit_price"] for i in items)
            amount = value + rng.randint(-50, 500) if value > 50 else rng.randint(100, 9000)
            await _record(history, customer_id, type_, days, amount=amount,
                          currency=currency, items=items)  # fmt: skip
            if currency != "EUR":
                continue
            sign = 1 if type_ == "purchase" else -1
            revenue += sign * amount
            cogs += sign * sum(i["quantity"] * i.get("unit_cost", 0) for i in items)
            costed = sum(i["quantity"] * i["unit_price"] for i in items if "unit_cost" in i)
            covered += sign * Fraction(amount * costed, value) if value else 0
    period = {
        "from": history.ago(30).isoformat(),
        "to": (history.now + timedelta(hours=1)).isoformat(),
        "currency": "EUR",
    }
    k = (await history.api.get("/v1/analytics/kpis", params=period)).json()
    assert (k["revenue"], k["cost_of_goods"], k["service_cost"]) == (revenue, cogs, service)
    assert (k["gross_margin"], k["profit"]) == (revenue - cogs, revenue - cogs - service)
    expected_rate = (revenue - cogs) / revenue if revenue else None
    assert k["margin_rate"] == pytest.approx(expected_rate)
    assert k["cost_coverage"] == pytest.approx(float(covered / revenue) if revenue else None)


def _costed_history(customer_id: str) -> list[dict]:
    """Purchases and a refund whose items carry a cost on some lines only."""
    return [
        {  # the mug's cost is not known; an amount that is not the items' value
            "customer_id": customer_id, "type": "purchase", "external_id": "order-1",
            "amount": 4000, "currency": "EUR",
            "items": [_item("TEA", 3, 1234, 700), _item("MUG", 1, 999), _item("BAG", 2, 0, 0)],
        },
        {
            "customer_id": customer_id, "type": "purchase", "external_id": "order-2",
            "amount": 2500, "currency": "EUR",
            "items": [_item("POT", 2, 1250, 400), _item("LID", 1, 0, 50)],
        },
        {  # a refund of part of order-1, the mug without a cost among it
            "customer_id": customer_id, "type": "refund", "external_id": "refund-1",
            "amount": 1500, "currency": "EUR",
            "items": [_item("TEA", 1, 1234, 700), _item("MUG", 1, 999)],
        },
        {  # free goods: a cost, but no value to share the amount by
            "customer_id": customer_id, "type": "purchase", "external_id": "gift-1",
            "amount": 0, "currency": "EUR", "items": [_item("CARD", 1, 0, 30)],
        },
        {
            "customer_id": customer_id, "type": "purchase", "external_id": "order-3",
            "amount": 700, "currency": "EUR", "items": [_item("MUG", 1, 700)],
        },
    ]  # fmt: skip


async def _posted_and_imported(history: History) -> tuple[str, str]:
    """Two customers with the same history: one POSTed, one imported as NDJSON."""
    posted, imported = await history.customer(), await history.customer()
    for line in _costed_history(posted):
        response = await history.api.post("/v1/interactions", json=line)
        assert response.status_code == 201, response.text
        assert "items_cost" not in response.json()
    body = "\n".join(json.dumps(line) for line in _costed_history(imported))
    response = await history.api.post("/v1/interactions/import", content=body, headers=NDJSON)
    assert (response.status_code, response.json()["created"]) == (200, 5), response.text
    return posted, imported


def _expected(lines: list[dict]) -> dict:
    """The figures as the items say, worked out in plain Python."""
    revenue = cogs = 0
    covered = Fraction(0)
    for line in lines:
        sign = 1 if line["type"] == "purchase" else -1
        items = line["items"]
        value = sum(i["quantity"] * i["unit_price"] for i in items)
        costed = sum(i["quantity"] * i["unit_price"] for i in items if "unit_cost" in i)
        revenue += sign * line["amount"]
        cogs += sign * sum(i["quantity"] * i.get("unit_cost", 0) for i in items)
        covered += sign * Fraction(line["amount"] * costed, value) if value else 0
    return {
        "revenue": revenue,
        "cost_of_goods": cogs,
        "gross_margin": revenue - cogs,
        "profit": revenue - cogs,
        "cost_coverage": pytest.approx(float(covered / revenue)),
    }


async def test_imported_and_posted_interactions_give_the_figures_their_items_say(
    history: History,
) -> None:
    posted, imported = await _posted_and_imported(history)
    expected = _expected(_costed_history(posted))
    # By hand: revenue 4000 + 2500 - 1500 + 0 + 700; cost 2100 + 850 - 700 + 30
    assert (expected["revenue"], expected["cost_of_goods"]) == (5700, 2280)
    figures = [await _profitability(history, c) for c in (posted, imported)]
    for found in figures:
        assert {name: found[name] for name in expected} == expected
        assert found["service_cost"] == 0
    assert figures[0]["cost_coverage"] == figures[1]["cost_coverage"]
    # The stored figures are no part of the resource, nor of the events sent out.
    timeline = await history.api.get(f"/v1/customers/{imported}/interactions")
    assert all("items_cost" not in i for i in timeline.json()["data"])
    leaked = "SELECT count(*) FROM events WHERE data ? 'items_cost' OR data ? 'costed_amount'"
    assert await history.sql.fetchval(leaked) == 0
    assert await history.sql.fetchval("SELECT count(*) FROM events WHERE data ? 'amount'") >= 10


async def test_stored_item_figures_match_the_backfill_of_existing_rows(
    history: History, database_url: str
) -> None:
    """What the write paths store is what the migration computes for rows written before
    it, and what the scale benchmark's statement computes for generated data."""
    await _posted_and_imported(history)
    stored = "SELECT id, items_cost, costed_amount, costed_amount::text AS text FROM interactions"

    written = {r["id"]: r for r in await history.sql.fetch(stored)}
    assert len(written) == 10
    assert sum(r["items_cost"] is not None for r in written.values()) == 8  # order-3: no cost
    await asyncio.to_thread(migrate.downgrade, database_url, "0013_idempotency_owner")
    await asyncio.to_thread(migrate.upgrade, database_url)
    assert {r["id"]: r for r in await history.sql.fetch(stored)} == written
    await history.sql.execute("UPDATE interactions SET items_cost = NULL, costed_amount = NULL")
    await history.sql.execute(service.ITEM_FIGURES_FROM_ITEMS)
    assert {r["id"]: r for r in await history.sql.fetch(stored)} == written
