"""GET /v1/analytics/kpis and analyticsKpis: figures worked out by hand on a small history,
and checked against a plain-Python computation on a generated one."""

import random
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from statistics import median

import pytest

from analytics.history import History
from support import assert_problem


def _period(history: History) -> dict[str, str]:
    # The last 30 days, and an hour ahead so customers created just now are new.
    return {
        "from": history.ago(30).isoformat(),
        "to": (history.now + timedelta(hours=1)).isoformat(),
    }


async def _kpis(history: History, **params: object) -> dict:
    response = await history.api.get("/v1/analytics/kpis", params={**_period(history), **params})
    assert response.status_code == 200, response.text
    return response.json()


async def _hand_built(history: History) -> dict[str, str]:
    """Six customers; 'before' = before the period (30 days), 'in' = within it."""
    h = history
    a = await h.customer(100)  # old: bought before and in the period, twice
    await h.buy(a, 60, 5000)
    await h.buy(a, 10, 3000)
    await h.buy(a, 5, 2000)
    b = await h.customer(100)  # old: bought before, churned in the period, refund in it
    await h.buy(b, 60, 4000)
    await h.moved(b, "churned", 20)
    await h.refund(b, 15, 1000)
    await h.feedback(b, 14, nps=3, csat=2)
    c = await h.customer(100)  # old: already churned at period start, buys again in it
    await h.buy(c, 70, 1000)
    await h.moved(c, "churned", 50)
    await h.buy(c, 12, 2000)
    d = await h.customer(20, acquisition={"cost": 3000, "currency": "EUR"})  # new, converts
    await h.buy(d, 3, 1500)
    await h.feedback(d, 2, nps=10, csat=5)
    e = await h.customer(acquisition={"cost": 2000, "currency": "EUR"})  # new, only feedback
    await h.feedback(e, 1, nps=9, csat=4)
    await h.feedback(e, 1, nps=7, csat=3)
    f = await h.customer()  # new, silent
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f}


@pytest.mark.parametrize("rolled", [False, True], ids=["interactions", "daily-totals"])
async def test_kpis_of_a_hand_built_history(history: History, rolled: bool) -> None:
    await _hand_built(history)
    if rolled:  # the period starts and ends mid-day: its edges are read raw
        await history.roll()
    k = await _kpis(history)
    assert k["currency"] == "EUR"
    assert k["new_customers"] == 3  # d, e, f
    assert k["cac"] == 1667  # (3000 + 2000) / 3 = 1666.67
    assert k["active_customers"] == 5  # a, b (refund, feedback), c, d, e
    assert k["churned_customers"] == 1  # b; c churned before the period
    assert k["prospects"] == 3  # d, e, f: no purchase before the period
    assert k["conversion_rate"] == pytest.approx(1 / 3)  # d
    assert k["customers_at_start"] == 2  # a, b; c was churned at the start
    assert k["churn_rate"] == 0.5  # b of a, b
    assert k["retention_rate"] == 0.5  # a bought in the period
    assert k["purchasers"] == 3  # a (2 purchases), c, d
    assert k["repeat_purchase_rate"] == pytest.approx(1 / 3)  # a
    assert k["purchase_frequency"] == pytest.approx(4 / 3)
    assert k["orders"] == 4
    assert k["average_order_value"] == 2125  # (3000 + 2000 + 2000 + 1500) / 4
    assert k["revenue"] == 7500  # 8500 - 1000 refunded
    # Before the period's end: a 10000, b 4000 - 1000, c 3000, d 1500 = 17500 over 4 buyers
    assert k["historical_clv"] == 4375
    assert k["predicted_clv_mean"] is None and k["predicted_clv_run_id"] is None
    assert k["nps"] == 25  # answers 3, 10, 9, 7: 100 * (2 promoters - 1 detractor) / 4
    assert k["csat"] == 50  # answers 2, 5, 4, 3: 100 * 2 / 4


async def test_kpis_of_a_segment_with_predicted_clv(history: History) -> None:
    who = await _hand_built(history)
    # Major units, as scorers write them; e has no score (never bought).
    run_id = await history.clv_run({who["a"]: 10.5, who["b"]: 20.0, who["d"]: 31.0, who["e"]: None})
    everyone = await _kpis(history)
    assert everyone["predicted_clv_run_id"] == run_id
    assert everyone["predicted_clv_mean"] == 2050  # (10.50 + 20.00 + 31.00) / 3 = 20.50 EUR
    assert everyone["predicted_clv_median"] == 2000  # 20.00 EUR

    response = await history.api.post("/v1/segments", json={"name": "a and d", "kind": "static"})
    assert response.status_code == 201, response.text
    segment_id = response.json()["id"]
    added = await history.api.post(
        f"/v1/segments/{segment_id}/members", json={"customer_ids": [who["a"], who["d"]]}
    )
    assert added.status_code == 200, added.text
    k = await _kpis(history, segment_id=segment_id)
    assert k["segment_id"] == segment_id
    assert (k["new_customers"], k["cac"]) == (1, 3000)  # d
    assert (k["active_customers"], k["churned_customers"]) == (2, 0)
    assert (k["prospects"], k["conversion_rate"]) == (1, 1.0)  # d converted
    assert (k["customers_at_start"], k["churn_rate"], k["retention_rate"]) == (1, 0.0, 1.0)
    assert (k["purchasers"], k["repeat_purchase_rate"], k["purchase_frequency"]) == (2, 0.5, 1.5)
    assert (k["orders"], k["average_order_value"]) == (3, 2167)  # 6500 / 3 = 2166.67
    assert k["revenue"] == 6500
    assert k["historical_clv"] == 5750  # (10000 + 1500) / 2
    assert (k["predicted_clv_mean"], k["predicted_clv_median"]) == (2075, 2075)  # 20.75 EUR
    assert (k["nps"], k["csat"]) == (100, 100)  # d alone: 10 and 5


async def test_several_currencies_need_a_choice(history: History) -> None:
    a = await history.customer()
    await history.buy(a, 2, 1000, "EUR")
    await history.buy(a, 1, 999, "USD")
    response = await history.api.get("/v1/analytics/kpis", params=_period(history))
    body = assert_problem(response, 422, "validation-error")
    assert "EUR, USD" in body["errors"][0]["message"]
    k = await _kpis(history, currency="usd")
    assert (k["currency"], k["orders"], k["revenue"], k["average_order_value"]) == (
        "USD",
        1,
        999,
        999,
    )
    assert k["purchasers"] == 1 and k["purchase_frequency"] == 2.0  # counts take any currency


async def test_empty_period_gives_nulls_not_zeros(history: History) -> None:
    await _hand_built(history)
    k = await _kpis(history, **{"from": "2001-01-01T00:00:00Z", "to": "2001-02-01T00:00:00Z"})
    assert k["currency"] is None
    assert k["new_customers"] == k["active_customers"] == k["purchasers"] == 0
    for ratio in ("cac", "conversion_rate", "churn_rate", "retention_rate", "repeat_purchase_rate",
                  "purchase_frequency", "average_order_value", "revenue", "historical_clv",
                  "nps", "csat"):  # fmt: skip
        assert k[ratio] is None, ratio


async def test_bad_requests(history: History, key_for) -> None:  # type: ignore[no-untyped-def]
    period = _period(history)
    backwards = {"from": period["to"], "to": period["from"]}
    assert_problem(
        await history.api.get("/v1/analytics/kpis", params=backwards), 422, "validation-error"
    )
    unknown = {**period, "segment_id": "0190f0e8-0000-7000-8000-000000000000"}
    assert_problem(await history.api.get("/v1/analytics/kpis", params=unknown), 404, "not-found")
    headers = await key_for("customers:read")
    refused = await history.api.get("/v1/analytics/kpis", params=period, headers=headers)
    assert_problem(refused, 403, "forbidden")


def _rounded(numerator: int, denominator: int) -> int | None:
    if not denominator:
        return None
    return int((Decimal(numerator) / denominator).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# Rolled up after: never (the interactions alone), every customer, half of them (the rest
# read raw beside the daily totals).
@pytest.mark.parametrize("roll_after", [None, 30, 15])
async def test_kpis_match_an_independent_computation(
    history: History, roll_after: int | None
) -> None:
    rng = random.Random(7)
    start_days, rows = 30, []  # rows: (customer, kind, days_ago, amount or (nps, csat))
    customers = {}
    for n in range(30):
        if n == roll_after:
            await history.roll()
        # -2: created after the period's end (an hour ahead), as a later import with
        # backdated purchases makes: never new nor a prospect, yet a customer at its start.
        created = rng.choice([0, 10, 45, 90, -2])
        cost = rng.choice([None, 500, 1200])
        fields = {"acquisition": {"cost": cost, "currency": "EUR"}} if cost else {}
        cid = await history.customer(created, **fields)
        churned = rng.choice([None, None, 10, 40])
        customers[cid] = (created, cost, churned)
        if churned is not None:
            await history.moved(cid, "churned", churned)
        for _ in range(rng.randint(0, 4)):
            days, kind = rng.uniform(0.5, 80), rng.choice(["purchase", "purchase", "refund"])
            amount = rng.randint(100, 9000)
            await (history.buy if kind == "purchase" else history.refund)(cid, days, amount)
            rows.append((cid, kind, days, amount))
        if rng.random() < 0.5:
            answer = (rng.randint(0, 10), rng.randint(1, 5))
            days = rng.uniform(0.5, 60)
            await history.feedback(cid, days, *answer)
            rows.append((cid, "feedback", days, answer))
    if roll_after == 30:
        await history.roll()
    # A deleted customer leaves every figure, rolled up or not: the first with purchases.
    gone = next(r[0] for r in rows if r[1] == "purchase")
    await history.delete(gone)
    del customers[gone]
    rows = [r for r in rows if r[0] != gone]
    clv = {cid: rng.uniform(0, 300) for cid in customers if rng.random() < 0.6}
    await history.clv_run(clv)

    def within(days: float) -> bool:
        return -1 / 24 < days < start_days

    k = await _kpis(history)
    new = [c for c, (created, _, _) in customers.items() if within(created)]
    purchases_in = {c: sum(1 for r in rows if r[:2] == (c, "purchase") and within(r[2]))
                    for c in customers}  # fmt: skip
    bought_before = {r[0] for r in rows if r[1] == "purchase" and not within(r[2])}
    at_start = [c for c in bought_before if not (customers[c][2] or 0) > start_days]
    churned = {c for c, (_, _, days) in customers.items() if days is not None and within(days)}
    prospects = [c for c, (created, _, _) in customers.items()
                 if c not in bought_before and created > -1 / 24]  # fmt: skip
    buyers = [c for c, n in purchases_in.items() if n]
    sales = sum(r[3] for r in rows if r[1] == "purchase" and within(r[2]))
    refunds = sum(r[3] for r in rows if r[1] == "refund" and within(r[2]))
    net = sum(r[3] if r[1] == "purchase" else -r[3] for r in rows if r[1] != "feedback")
    answers = [r[3] for r in rows if r[1] == "feedback" and within(r[2])]
    scores = list(clv.values())

    assert k["new_customers"] == len(new)
    assert k["cac"] == _rounded(sum(customers[c][1] or 0 for c in new), len(new))
    assert k["active_customers"] == len({r[0] for r in rows if within(r[2])})
    assert k["churned_customers"] == len(churned)
    assert k["prospects"] == len(prospects)
    assert k["conversion_rate"] == pytest.approx(
        sum(1 for c in prospects if purchases_in[c]) / len(prospects)
    )
    assert k["customers_at_start"] == len(at_start)
    assert k["churn_rate"] == pytest.approx(len(churned & set(at_start)) / len(at_start))
    assert k["retention_rate"] == pytest.approx(
        sum(1 for c in at_start if purchases_in[c]) / len(at_start)
    )
    assert k["purchasers"] == len(buyers)
    assert k["repeat_purchase_rate"] == pytest.approx(
        sum(1 for c in buyers if purchases_in[c] > 1) / len(buyers)
    )
    assert k["purchase_frequency"] == pytest.approx(sum(purchases_in.values()) / len(buyers))
    assert k["orders"] == sum(purchases_in.values())
    assert k["average_order_value"] == _rounded(sales, k["orders"])
    assert k["revenue"] == sales - refunds
    assert k["historical_clv"] == _rounded(net, len({r[0] for r in rows if r[1] == "purchase"}))
    assert k["predicted_clv_mean"] == _rounded(round(sum(scores) / len(scores) * 100, 6), 1)
    assert k["predicted_clv_median"] == _rounded(round(median(scores) * 100, 6), 1)
    promoters = sum(1 for nps, _ in answers if nps >= 9)
    detractors = sum(1 for nps, _ in answers if nps <= 6)
    assert k["nps"] == pytest.approx(100 * (promoters - detractors) / len(answers))
    assert k["csat"] == pytest.approx(100 * sum(1 for _, c in answers if c >= 4) / len(answers))


async def test_graphql_answers_as_rest(history: History) -> None:
    await _hand_built(history)
    rest = await _kpis(history)
    fields = " ".join(_camel(name) for name in rest)
    query = (
        "query($from: DateTime!, $to: DateTime!) "
        f"{{ analyticsKpis(from: $from, to: $to) {{ {fields} }} }}"
    )
    response = await history.api.post(
        "/graphql", json={"query": query, "variables": _period(history)}
    )
    assert response.status_code == 200, response.text
    found = response.json()["data"]["analyticsKpis"]
    assert {name: found[_camel(name)] for name in rest if name not in ("start", "end")} == {
        name: value for name, value in rest.items() if name not in ("start", "end")
    }


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
