"""GET /v1/analytics/cohorts and analyticsCohorts: matrices worked out by hand, and checked
against a plain-Python computation on generated customers."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from analytics.history import History
from support import assert_problem

FROM, TO = "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _cohorts(history: History, **params: object) -> dict:
    response = await history.api.get("/v1/analytics/cohorts", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def _hand_built(h: History) -> None:
    x, y, z, w, early = [await h.customer() for _ in range(5)]
    for who, created in ((x, "2026-01-10"), (y, "2026-01-20"), (z, "2026-02-05"),
                         (w, "2026-03-15"), (early, "2025-12-20")):  # fmt: skip
        await h.created_at(who, at(created))
    for who, when, amount in (
        (x, "2026-01-12", 1000),
        (x, "2026-03-02", 500),
        (x, "2026-04-02", 9999),  # after `to`: not counted
        (y, "2026-02-28", 2000),
        (z, "2026-02-06", 700),
        (z, "2026-02-20", 800),
        (z, "2026-03-31T23:00:00", 100),
        (early, "2026-01-05", 5000),  # cohort before `from`: not shown
    ):
        await h.record(who, "purchase", at(when), amount=amount, currency="EUR")
    await h.record(y, "refund", at("2026-03-05"), amount=300, currency="EUR")


async def test_monthly_cohorts_by_hand(history: History) -> None:
    await _hand_built(history)
    retention = await _cohorts(history, **{"from": FROM, "to": TO})
    assert retention["metric"] == "retention" and retention["period"] == "month"
    assert [(c["start"][:10], c["size"], c["retention"]) for c in retention["cohorts"]] == [
        # January: x, y. k0 x bought; k1 (Feb) y; k2 (Mar) x (y only got a refund)
        ("2026-01-01", 2, [0.5, 0.5, 0.5]),
        # February: z bought in February and on 31 March
        ("2026-02-01", 1, [1.0, 1.0]),
        ("2026-03-01", 1, [0.0]),  # w never bought
    ]
    revenue = await _cohorts(history, metric="revenue", **{"from": FROM, "to": TO})
    assert revenue["currency"] == "EUR"
    assert [(c["start"][:10], c["revenue"], c["retention"]) for c in revenue["cohorts"]] == [
        ("2026-01-01", [1000, 2000, 500 - 300], None),
        ("2026-02-01", [700 + 800, 100], None),
        ("2026-03-01", [0], None),
    ]


async def test_revenue_in_several_currencies_needs_a_choice(history: History) -> None:
    await _hand_built(history)
    x = await history.customer()
    await history.created_at(x, at("2026-02-10"))
    await history.record(x, "purchase", at("2026-02-11"), amount=42, currency="USD")
    params = {"metric": "revenue", "from": FROM, "to": TO}
    body = assert_problem(
        await history.api.get("/v1/analytics/cohorts", params=params), 422, "validation-error"
    )
    assert "EUR, USD" in body["errors"][0]["message"]
    usd = await _cohorts(history, currency="USD", **params)
    assert [c["revenue"] for c in usd["cohorts"]] == [[0, 0, 0], [42, 0], [0]]
    # Retention counts purchases in any currency, without asking for one.
    retention = await _cohorts(history, **{"from": FROM, "to": TO})
    assert retention["cohorts"][1]["retention"] == [1.0, 0.5]


def _offset(period: str, start: datetime, when: datetime) -> int:
    if period == "month":
        return (when.year - start.year) * 12 + when.month - start.month
    return (when.date() - timedelta(days=when.weekday()) - start.date()).days // 7


def _cohort_start(period: str, created: datetime) -> datetime:
    if period == "month":
        return created.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day = created.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=created.weekday())


@pytest.mark.parametrize("period", ["month", "week"])
async def test_cohorts_match_an_independent_computation(history: History, period: str) -> None:
    rng = random.Random(period)
    end = at("2026-03-20T12:00:00")
    created, rows = {}, []  # rows: (customer, signed amount or None for a refund-only, when)
    for _ in range(25):
        cid = await history.customer()
        created[cid] = end - timedelta(days=rng.uniform(1, 100))
        await history.created_at(cid, created[cid])
        for _ in range(rng.randint(0, 4)):
            when = created[cid] + timedelta(days=rng.uniform(0, 110))
            kind, amount = rng.choice(["purchase", "purchase", "refund"]), rng.randint(1, 999)
            await history.record(cid, kind, when, amount=amount, currency="EUR")
            if when < end:
                rows.append((cid, kind, amount, when))

    retention = await _cohorts(history, period=period, to=end.isoformat())
    revenue = await _cohorts(history, period=period, metric="revenue", to=end.isoformat())

    members = defaultdict(set)
    for cid, when in created.items():
        members[_cohort_start(period, when)].add(cid)
    expected_retention, expected_revenue = [], []
    for start in sorted(members):
        width = _offset(period, start, end - timedelta(microseconds=1)) + 1
        buyers, money = [set() for _ in range(width)], [0] * width
        for cid, kind, amount, when in rows:
            if cid in members[start]:
                k = _offset(period, start, when)
                money[k] += amount if kind == "purchase" else -amount
                if kind == "purchase":
                    buyers[k].add(cid)
        size = len(members[start])
        expected_retention.append((start, size, [len(b) / size for b in buyers]))
        expected_revenue.append((start, size, money))

    def table(report: dict, key: str) -> list:
        return [(datetime.fromisoformat(c["start"]), c["size"], c[key]) for c in report["cohorts"]]

    assert table(retention, "retention") == expected_retention
    assert table(revenue, "revenue") == expected_revenue


async def test_graphql_answers_as_rest(history: History) -> None:
    await _hand_built(history)
    rest = await _cohorts(history, period="week", metric="revenue", **{"from": FROM, "to": TO})
    query = """query($from: DateTime, $to: DateTime) {
        analyticsCohorts(period: WEEK, metric: REVENUE, from: $from, to: $to) {
            period metric currency cohorts { start size retention revenue } } }"""
    response = await history.api.post(
        "/graphql", json={"query": query, "variables": {"from": FROM, "to": TO}}
    )
    assert response.status_code == 200, response.text
    found = response.json()["data"]["analyticsCohorts"]
    assert (found["period"], found["metric"], found["currency"]) == ("WEEK", "REVENUE", "EUR")
    assert [
        (datetime.fromisoformat(c["start"]), c["size"], c["revenue"]) for c in found["cohorts"]
    ] == [(datetime.fromisoformat(c["start"]), c["size"], c["revenue"]) for c in rest["cohorts"]]


@pytest.mark.parametrize("currency", ["E\x00R", "EU", "ZZZ"])
async def test_graphql_refuses_what_is_no_currency_as_rest_does(
    history: History, currency: str
) -> None:
    await _hand_built(history)
    query = """query($currency: String) {
        analyticsCohorts(period: WEEK, metric: REVENUE, currency: $currency) { currency } }"""
    response = await history.api.post(
        "/graphql", json={"query": query, "variables": {"currency": currency}}
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "validation-error", error
    assert "ISO 4217" in error["message"] or "ISO 4217" in str(error["extensions"])
    rest = await history.api.get(
        "/v1/analytics/cohorts", params={"metric": "revenue", "currency": currency}
    )
    assert_problem(rest, 422, "validation-error")
