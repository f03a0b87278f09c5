"""Association rules over baskets: support, confidence and lift, by hand and generated."""

import itertools
import random

import pytest

from analytics.baskets import buy

BREAD, BUTTER, MILK, JAM = (
    ("bread", "bakery"),
    ("butter", "dairy"),
    ("milk", "dairy"),
    (
        "jam",
        "spreads",
    ),
)


@pytest.fixture
async def five_baskets(api, new_customer):  # type: ignore[no-untyped-def]
    """B1 bread butter milk | B2 bread butter (bread twice) | B3 bread jam   (January)
    B4 milk | B5 butter milk                                                (March)
    plus a refund of bread and jam, which is no basket."""
    ann, bob = (await new_customer())["id"], (await new_customer())["id"]
    await buy(api, ann, [BREAD, BUTTER, MILK], at="2026-01-10T10:00:00Z")
    await buy(api, ann, [BREAD, BUTTER, BREAD], at="2026-01-11T10:00:00Z")
    await buy(api, bob, [BREAD, JAM], at="2026-01-12T10:00:00Z")
    await buy(api, bob, [MILK], at="2026-03-05T10:00:00Z")
    await buy(api, ann, [BUTTER, MILK], at="2026-03-06T10:00:00Z")
    await buy(api, bob, [BREAD, JAM], at="2026-03-07T10:00:00Z", type="refund")


def _rule(x, y, both, nx, ny, n):  # type: ignore[no-untyped-def]
    return {
        "antecedent": x,
        "consequent": y,
        "baskets_with_both": both,
        "antecedent_baskets": nx,
        "consequent_baskets": ny,
        "support": pytest.approx(both / n),
        "confidence": pytest.approx(both / nx),
        "lift": pytest.approx((both / nx) / (ny / n)),
    }


async def _rules(api, **params):  # type: ignore[no-untyped-def]
    response = await api.get("/v1/analytics/affinities", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_rules_by_hand(api, five_baskets) -> None:  # type: ignore[no-untyped-def]
    found = await _rules(api, min_support=0.2, min_confidence=0, min_lift=0)
    # N = 5 baskets; bread 3, butter 3, milk 3, jam 1.
    # jam -> bread:   both 1, support 1/5 = 0.2, confidence 1/1 = 1,   lift 1 / (3/5) = 5/3
    # bread -> jam:   both 1, support 0.2,       confidence 1/3,       lift (1/3) / (1/5) = 5/3
    # bread <-> butter, butter <-> milk: both 2 (B1 B2, B1 B5), support 0.4,
    #                 confidence 2/3,            lift (2/3) / (3/5) = 10/9
    # bread <-> milk: both 1 (B1), support 0.2,  confidence 1/3,       lift (1/3) / (3/5) = 5/9
    assert found["level"] == "sku"
    assert found["baskets"] == 5
    rules = found["rules"]
    assert [(r["antecedent"], r["consequent"]) for r in rules] == [
        ("jam", "bread"),
        ("bread", "jam"),
        ("bread", "butter"),
        ("butter", "bread"),
        ("butter", "milk"),
        ("milk", "butter"),
        ("bread", "milk"),
        ("milk", "bread"),
    ]
    assert rules[0] == {
        "antecedent": "jam",
        "consequent": "bread",
        "baskets_with_both": 1,
        "antecedent_baskets": 1,
        "consequent_baskets": 3,
        "support": pytest.approx(0.2),
        "confidence": pytest.approx(1.0),
        "lift": pytest.approx(5 / 3),
    }
    assert rules[2]["support"] == pytest.approx(0.4)
    assert rules[2]["confidence"] == pytest.approx(2 / 3)
    assert rules[2]["lift"] == pytest.approx(10 / 9)
    assert rules[6]["lift"] == pytest.approx(5 / 9)


async def test_thresholds_cut_rules(api, five_baskets) -> None:  # type: ignore[no-untyped-def]
    # Defaults keep lift >= 1: the two bread <-> milk rules (lift 5/9) go.
    assert len((await _rules(api))["rules"]) == 6
    # Support >= 0.3: only the pairs in 2 of 5 baskets (0.4) remain; jam (0.2) is not frequent.
    strong = await _rules(api, min_support=0.3, min_lift=0)
    assert {(r["antecedent"], r["consequent"]) for r in strong["rules"]} == {
        ("bread", "butter"),
        ("butter", "bread"),
        ("butter", "milk"),
        ("milk", "butter"),
    }
    # Confidence >= 0.5 drops the 1/3 rules.
    confident = await _rules(api, min_support=0.2, min_confidence=0.5, min_lift=0)
    assert (confident["rules"][0]["antecedent"], confident["rules"][0]["confidence"]) == ("jam", 1)
    assert len(confident["rules"]) == 5
    assert len((await _rules(api, min_support=0.2, min_lift=0, limit=3))["rules"]) == 3


async def test_category_level(api, five_baskets) -> None:  # type: ignore[no-untyped-def]
    found = await _rules(api, level="category", min_support=0.2, min_lift=0)
    # Baskets: B1 bakery dairy | B2 bakery dairy | B3 bakery spreads | B4 dairy | B5 dairy
    # N = 5; bakery 3, dairy 4, spreads 1.
    # spreads -> bakery: both 1, confidence 1,   lift 1 / (3/5) = 5/3
    # bakery -> spreads: both 1, confidence 1/3, lift (1/3) / (1/5) = 5/3
    # bakery -> dairy:   both 2, confidence 2/3, lift (2/3) / (4/5) = 5/6
    # dairy -> bakery:   both 2, confidence 2/4, lift (1/2) / (3/5) = 5/6
    assert found["baskets"] == 5
    assert found["rules"] == [
        _rule("spreads", "bakery", 1, 1, 3, 5),
        _rule("bakery", "spreads", 1, 3, 1, 5),
        _rule("bakery", "dairy", 2, 3, 4, 5),
        _rule("dairy", "bakery", 2, 4, 3, 5),
    ]
    assert found["rules"][2]["lift"] == pytest.approx(5 / 6)


async def test_purchase_time_window(api, five_baskets) -> None:  # type: ignore[no-untyped-def]
    # From March: B4 milk, B5 butter milk. N = 2; butter 1, milk 2, both 1.
    # butter -> milk: support 1/2, confidence 1,   lift 1 / (2/2) = 1
    # milk -> butter: support 1/2, confidence 1/2, lift (1/2) / (1/2) = 1
    found = await _rules(api, **{"from": "2026-03-01T00:00:00Z"})
    assert found["baskets"] == 2
    assert found["rules"] == [
        _rule("butter", "milk", 1, 1, 2, 2),
        _rule("milk", "butter", 1, 2, 1, 2),
    ]
    # Before March: B1 B2 B3; at support >= 0.5 only bread (3/3) and butter (2/3) are frequent.
    january = await _rules(api, to="2026-03-01T00:00:00Z", min_lift=0, min_support=0.5)
    assert january["baskets"] == 3
    assert {r["antecedent"] for r in january["rules"]} == {"bread", "butter"}


@pytest.mark.parametrize(
    "params",
    [
        {"min_support": 0},
        {"min_support": 1.5},
        {"min_confidence": -0.1},
        {"min_confidence": 2},
        {"min_lift": -1},
        {"limit": 0},
        {"limit": 501},
        {"level": "brand"},
        {"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
    ],
)
async def test_out_of_range_parameters_are_422(api, params) -> None:  # type: ignore[no-untyped-def]
    response = await api.get("/v1/analytics/affinities", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_generated_baskets_match_an_independent_count(api, new_customer) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    skus = [f"sku-{n}" for n in range(8)]
    customers = [(await new_customer())["id"] for _ in range(4)]
    baskets = []
    for n in range(40):
        # Popular early SKUs, and sku-0 tends to come with sku-1.
        basket = set(rng.choices(skus, weights=[8, 5, 4, 3, 2, 2, 1, 1], k=rng.randint(1, 4)))
        if "sku-0" in basket and rng.random() < 0.7:
            basket.add("sku-1")
        baskets.append(basket)
        lines = [(sku, None) for sku in sorted(basket)]
        await buy(api, customers[n % 4], lines, at=f"2026-02-{1 + n % 28:02d}T09:00:00Z")

    n = len(baskets)
    count = {sku: sum(sku in b for b in baskets) for sku in skus}
    expected = {}
    for x, y in itertools.permutations(skus, 2):
        both = sum(x in b and y in b for b in baskets)
        if both and both / n >= 0.05:
            expected[(x, y)] = (both, both / n, both / count[x], (both / count[x]) / (count[y] / n))

    found = await _rules(api, min_support=0.05, min_confidence=0, min_lift=0, limit=500)
    assert found["baskets"] == n
    got = {
        (r["antecedent"], r["consequent"]): (
            r["baskets_with_both"],
            r["support"],
            r["confidence"],
            r["lift"],
        )
        for r in found["rules"]
    }
    assert got.keys() == expected.keys()
    for pair, (both, support, confidence, lift) in expected.items():
        assert got[pair] == (
            both,
            pytest.approx(support),
            pytest.approx(confidence),
            pytest.approx(lift),
        )
    order = [(-r["lift"], -r["confidence"]) for r in found["rules"]]
    assert order == sorted(order)


async def test_graphql_answers_as_rest(api, five_baskets) -> None:  # type: ignore[no-untyped-def]
    query = """{ productAffinities(level: CATEGORY, minSupport: 0.2, minLift: 0) {
        level baskets rules { antecedent consequent basketsWithBoth antecedentBaskets
        consequentBaskets support confidence lift } } }"""
    response = await api.post("/graphql", json={"query": query})
    found = response.json()["data"]["productAffinities"]
    rest = await _rules(api, level="category", min_support=0.2, min_lift=0)
    assert (found["level"], found["baskets"]) == ("CATEGORY", rest["baskets"])
    assert [
        (r["antecedent"], r["consequent"], r["basketsWithBoth"], r["lift"]) for r in found["rules"]
    ] == [
        (r["antecedent"], r["consequent"], r["baskets_with_both"], r["lift"]) for r in rest["rules"]
    ]
    invalid = await api.post(
        "/graphql", json={"query": "{ productAffinities(minSupport: 2) { baskets } }"}
    )
    assert invalid.json()["errors"][0]["extensions"]["code"] == "validation-error"
