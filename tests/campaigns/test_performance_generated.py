"""Campaign performance on a generated timeline, against a direct Python reading of the
definitions (touches, last-touch attribution within each campaign's window, refunds)."""

import random
from datetime import UTC, datetime, timedelta

BASE = datetime(2025, 1, 1, tzinfo=UTC)
CAMPAIGNS = [
    # code, start day, end day (None: open-ended), attribution window in days, cost
    ("ALPHA", 0, 30, 7, 20_000),
    ("BETA", 10, None, 3, 0),
    ("GAMMA", 20, 50, 14, 5_000),
]


def _day(days: float) -> datetime:
    return BASE + timedelta(days=days)


def _expected(campaign: tuple, interactions: list[dict], now: datetime) -> dict:
    """The performance of ``campaign`` as its definitions read, one interaction at a time."""
    windows = {
        code: (_day(s), _day(e) if e is not None else now, w) for code, s, e, w, _ in CAMPAIGNS
    }

    def is_touch(i: dict) -> bool:
        if i["direction"] != "outbound" or i["campaign"] not in windows:
            return False
        start, until, _ = windows[i["campaign"]]
        return start <= i["at"] <= until

    code, start_day, _, _, cost = campaign
    start = _day(start_day)
    touches = [i for i in interactions if is_touch(i)]
    mine = [t for t in touches if t["campaign"] == code]
    purchases = []
    for p in (i for i in interactions if i["type"] == "purchase"):
        if p["campaign"] is not None:
            if p["campaign"] == code and p["at"] >= start:
                purchases.append(p)
            continue
        eligible = [
            t for t in touches
            if t["customer"] == p["customer"]
            and t["at"] < p["at"] <= t["at"] + timedelta(days=windows[t["campaign"]][2])
        ]  # fmt: skip
        if eligible and max(eligible, key=lambda t: t["at"])["campaign"] == code:
            purchases.append(p)
    in_eur = [p for p in purchases if p["currency"] == "EUR"]
    ids = {p["id"] for p in in_eur}
    refunds = sum(i["amount"] for i in interactions if i.get("refund_of") in ids)
    answered = {
        i["customer"] for i in interactions
        if i["direction"] == "inbound" and i["campaign"] == code and i["at"] >= start
    }  # fmt: skip
    reach = len({t["customer"] for t in mine})
    responses = len(answered | {p["customer"] for p in purchases})
    conversions = len({p["customer"] for p in purchases})
    revenue = sum(p["amount"] for p in in_eur) - refunds
    return {
        "reach": reach,
        "responses": responses,
        "conversions": conversions,
        "orders": len(in_eur),
        "revenue": revenue,
        "response_rate": responses / reach if reach else None,
        "conversion_rate": conversions / reach if reach else None,
        "roi": (revenue - cost) / cost if cost else None,
    }


async def test_performance_matches_the_definitions_on_generated_data(
    api, new_customer, create_campaign, record
):
    rng = random.Random(7)
    campaigns = {}
    for code, start, end, window, cost in CAMPAIGNS:
        campaigns[code] = await create_campaign(
            code=code,
            cost=cost,
            starts_at=_day(start).isoformat(),
            ends_at=None if end is None else _day(end).isoformat(),
            attribution_window_days=window,
        )
    interactions: list[dict] = []

    async def add(customer: dict, type_: str, at: datetime, **fields: object) -> dict:
        made = await record(customer, type_, at.isoformat(), **fields)
        fact = {"customer": customer["id"], "type": type_, "at": at, "id": made["id"],
                "direction": fields.get("direction"), "campaign": fields.get("campaign"),
                "currency": fields.get("currency"), "amount": fields.get("amount"),
                "refund_of": fields.get("refund_of")}  # fmt: skip
        interactions.append(fact)
        return fact

    codes = [c[0] for c in CAMPAIGNS]
    for _ in range(24):
        customer = await new_customer()
        # Distinct instants per customer (minutes over 70 days), so "latest" is never a tie.
        moments = iter(sorted(rng.sample(range(70 * 24 * 60), 12)))
        plan = (["touch"] * rng.randint(0, 4) + ["buy"] * rng.randint(0, 4)
                + ["answer"] * rng.randint(0, 1))  # fmt: skip
        rng.shuffle(plan)
        for step in plan:
            at = BASE + timedelta(minutes=next(moments))
            if step == "touch":
                await add(customer, "email", at, direction="outbound", campaign=rng.choice(codes))
            elif step == "answer":
                await add(customer, "email", at, direction="inbound", campaign=rng.choice(codes))
            else:
                label = rng.choice(codes) if rng.random() < 0.2 else None
                currency = "USD" if rng.random() < 0.15 else "EUR"
                amount = rng.randint(1, 200) * 100
                bought = await add(
                    customer, "purchase", at, amount=amount, currency=currency, campaign=label
                )
                if rng.random() < 0.3:
                    await add(
                        customer, "refund", at + timedelta(days=rng.randint(1, 20)),
                        amount=rng.randint(1, amount), currency=currency, refund_of=bought["id"],
                    )  # fmt: skip

    now = datetime.now(UTC)
    attributed = 0
    for campaign in CAMPAIGNS:
        response = await api.get(f"/v1/campaigns/{campaigns[campaign[0]]['id']}/performance")
        assert response.status_code == 200, response.text
        found = response.json()
        expected = _expected(campaign, interactions, now)
        assert {k: found[k] for k in expected} == expected, campaign[0]
        attributed += found["orders"]
    assert attributed > 5  # the data exercises attribution, not only empty campaigns
