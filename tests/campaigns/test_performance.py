"""Campaign performance and the KPIs' campaign figures, on a timeline worked out by hand.

SPRING (EUR, cost 100.00, March 2025, attribution window 7 days) and FLASH (EUR, free,
from 10 March, open-ended, window 3 days) share customers:

- ada: SPRING email 2 Mar; buys 50.00 on 5 Mar (3 days later: SPRING's); 10.00 of it is
  refunded on 20 Mar.
- bob: SPRING email 2 Mar; buys 70.00 on 12 Mar (10 days later: outside the window).
- cleo: SPRING email 5 Mar, FLASH email 11 Mar; buys 30.00 on 12 Mar: FLASH's touch is the
  latest, FLASH takes the purchase.
- dan: SPRING email 6 Mar; buys $40.00 on 7 Mar (SPRING's, but not in EUR) and 20.00 on
  20 Apr with the code SPRING on the order (after the end: labelled, still SPRING's).
- eve: a SPRING email on 20 Feb (before the start: no touch); writes back, labelled SPRING,
  on 3 Mar (a response).

SPRING: reach 4 (ada bob cleo dan), responses 3 (eve ada dan), conversions 2 (ada dan),
orders 2 in EUR, revenue 50 + 20 - 10 = 60.00, roi (60 - 100) / 100 = -0.4.
FLASH: reach 1, responses 1, conversions 1, orders 1, revenue 30.00, roi null (no cost).
"""

from datetime import UTC, datetime

import pytest


def march(day: int, month: int = 3) -> str:
    return datetime(2025, month, day, 12, tzinfo=UTC).isoformat()


@pytest.fixture
async def timeline(api, new_customer, create_campaign, record) -> dict:
    segment = (await api.post("/v1/segments", json={"name": "Spring", "kind": "static"})).json()
    spring = await create_campaign(
        code="SPRING", cost=10_000, ends_at="2025-03-31T00:00:00Z", segment_id=segment["id"]
    )
    flash = await create_campaign(
        code="FLASH", channel="sms", starts_at="2025-03-10T00:00:00Z", attribution_window_days=3
    )
    ada, bob, cleo, dan, eve = [await new_customer() for _ in range(5)]

    async def touch(customer: dict, day: int, code: str) -> None:
        await record(customer, "email", march(day), direction="outbound", campaign=code)

    async def buy(customer: dict, at: str, amount: int, **fields: object) -> dict:
        return await record(
            customer, "purchase", at, amount=amount, **{"currency": "EUR", **fields}
        )

    await touch(ada, 2, "SPRING")
    bought = await buy(ada, march(5), 5000)
    await record(ada, "refund", march(20), amount=1000, currency="EUR", refund_of=bought["id"])
    await touch(bob, 2, "SPRING")
    await buy(bob, march(12), 7000)
    await touch(cleo, 5, "SPRING")
    await touch(cleo, 11, "FLASH")
    await buy(cleo, march(12), 3000)
    await touch(dan, 6, "SPRING")
    await buy(dan, march(7), 4000, currency="USD")
    await buy(dan, march(20, month=4), 2000, campaign="SPRING")
    await record(eve, "email", march(20, month=2), direction="outbound", campaign="SPRING")
    await record(eve, "email", march(3), direction="inbound", campaign="SPRING")
    return {"spring": spring, "flash": flash, "segment": segment, "bob": bob}


async def performance(api, campaign: dict) -> dict:
    response = await api.get(f"/v1/campaigns/{campaign['id']}/performance")
    assert response.status_code == 200, response.text
    return response.json()


async def test_performance_counts_touches_attribution_and_refunds(api, timeline):
    spring = await performance(api, timeline["spring"])
    assert spring["touches_from"] == "2025-03-01T00:00:00Z"
    assert spring["touches_until"] == "2025-03-31T00:00:00Z"
    assert {k: spring[k] for k in FIGURES} == {
        "reach": 4, "responses": 3, "response_rate": 0.75, "conversions": 2,
        "conversion_rate": 0.5, "orders": 2, "revenue": 6000, "cost": 10_000, "roi": -0.4,
        "currency": "EUR",
    }  # fmt: skip

    flash = await performance(api, timeline["flash"])
    assert {k: flash[k] for k in FIGURES} == {
        "reach": 1, "responses": 1, "response_rate": 1.0, "conversions": 1,
        "conversion_rate": 1.0, "orders": 1, "revenue": 3000, "cost": 0, "roi": None,
        "currency": "EUR",
    }  # fmt: skip
    until = datetime.fromisoformat(flash["touches_until"])
    assert abs((datetime.now(UTC) - until).total_seconds()) < 60  # open-ended: up to now


FIGURES = ("reach", "responses", "response_rate", "conversions", "conversion_rate", "orders",
           "revenue", "cost", "roi", "currency")  # fmt: skip


async def test_a_longer_window_takes_the_later_purchase(api, timeline):
    url = f"/v1/campaigns/{timeline['spring']['id']}"
    assert (await api.patch(url, json={"attribution_window_days": 10})).status_code == 200
    spring = await performance(api, timeline["spring"])
    # bob's purchase, 10 days after his email, is SPRING's now; cleo's stays FLASH's.
    assert (spring["conversions"], spring["orders"], spring["revenue"]) == (3, 3, 13_000)
    assert (await performance(api, timeline["flash"]))["revenue"] == 3000


async def test_a_deleted_campaign_no_longer_takes_purchases(api, timeline):
    assert (await api.delete(f"/v1/campaigns/{timeline['flash']['id']}")).status_code == 204
    spring = await performance(api, timeline["spring"])
    # cleo's purchase: 7 days after her SPRING email, SPRING's latest touch within its window.
    assert (spring["conversions"], spring["revenue"]) == (3, 9000)


async def test_kpis_weigh_campaign_revenue_against_cost(api, timeline, create_campaign):
    await create_campaign(code="US", currency="USD", cost=500, starts_at=march(15))
    await create_campaign(code="LATER", cost=99_999, starts_at="2025-04-01T00:00:00Z")

    async def kpis(**params: str) -> dict:
        query = {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z", **params}
        response = await api.get("/v1/analytics/kpis", params=query)
        assert response.status_code == 200, response.text
        return response.json()

    def campaign_figures(report: dict) -> tuple:
        return report["campaign_cost"], report["campaign_revenue"], report["campaign_roi"]

    # SPRING and FLASH started in March: (60.00 + 30.00 - 100.00) / 100.00.
    assert campaign_figures(await kpis(currency="EUR")) == (10_000, 9000, -0.1)
    # The dollar campaign reached no one.
    assert campaign_figures(await kpis(currency="USD")) == (500, 0, -1.0)
    # Of the segment SPRING targets, SPRING alone.
    segment = await kpis(currency="EUR", segment_id=timeline["segment"]["id"])
    assert campaign_figures(segment) == (10_000, 6000, -0.4)
    # FLASH alone started from 5 March: revenue without cost has no ROI.
    late = await kpis(currency="EUR", **{"from": "2025-03-05T00:00:00Z"})
    assert campaign_figures(late) == (0, 3000, None)
    assert campaign_figures(await kpis(currency="GBP")) == (0, 0, None)


async def test_campaign_costs_count_as_money_of_the_period(api, create_campaign):
    await create_campaign(code="LAUNCH", currency="USD", cost=800, starts_at=march(3))
    period = {"from": "2025-03-01T00:00:00Z", "to": "2025-04-01T00:00:00Z"}
    report = (await api.get("/v1/analytics/kpis", params=period)).json()
    assert report["currency"] == "USD"  # the only money the period holds
    assert (report["campaign_cost"], report["campaign_revenue"]) == (800, 0)
    await create_campaign(code="EURO", currency="EUR", cost=100, starts_at=march(4))
    refused = await api.get("/v1/analytics/kpis", params=period)
    assert refused.status_code == 422
    assert "EUR, USD" in refused.json()["errors"][0]["message"]
