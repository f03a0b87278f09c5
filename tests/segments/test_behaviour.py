"""Behaviour conditions: counts and totals of a customer's interactions in a window."""

from support import ago

VEGETARIAN_TWICE_IN_90_DAYS = {
    "interactions": {
        "type": "purchase",
        "category": "vegetarian",
        "days": 90,
        "count": {"gte": 2},
    }
}
VEG = ("TOFU-1", "vegetarian", 1, 450)
MEAT = ("STEAK-1", "meat", 1, 1900)


async def test_bought_vegetarian_items_at_least_twice_in_90_days(
    new_customer, purchase, create_segment, refresh, member_ids
):
    regular = await new_customer()
    await purchase(regular["id"], VEG, MEAT, days_ago=80)
    await purchase(regular["id"], VEG, days_ago=3)
    once = await new_customer()
    await purchase(once["id"], VEG, days_ago=3)
    await purchase(once["id"], MEAT, days_ago=2)
    lapsed = await new_customer()
    await purchase(lapsed["id"], VEG, days_ago=120)
    await purchase(lapsed["id"], VEG, days_ago=5)
    one_big_basket = await new_customer()  # two lines, one purchase: once
    await purchase(one_big_basket["id"], VEG, ("SEITAN-1", "vegetarian", 3, 300), days_ago=1)
    await new_customer()  # never bought anything

    segment = await create_segment(VEGETARIAN_TWICE_IN_90_DAYS, name="Veggie regulars")
    assert (await refresh(segment["id"]))["members"] == 1
    assert await member_ids(segment["id"]) == {regular["id"]}


async def test_an_upper_bound_includes_customers_who_never_did_it(new_customer, purchase, search):
    loyal = await new_customer()
    for days in (10, 20, 30):
        await purchase(loyal["id"], VEG, days_ago=days)
    occasional = await new_customer()
    await purchase(occasional["id"], VEG, days_ago=10)
    stranger = await new_customer()

    fewer_than_two = {"interactions": {"type": "purchase", "count": {"lt": 2}}}
    assert await search(fewer_than_two) == {occasional["id"], stranger["id"]}
    none_at_all = {"interactions": {"type": "purchase", "count": {"lte": 0}}}
    assert await search(none_at_all) == {stranger["id"]}
    two_to_three = {"interactions": {"type": "purchase", "count": {"gte": 2, "lte": 3}}}
    assert await search(two_to_three) == {loyal["id"]}
    assert await search({"not": {"interactions": {"type": "purchase"}}}) == {stranger["id"]}


async def test_totals_in_minor_units_of_interactions_or_of_matching_items(
    new_customer, purchase, search
):
    big = await new_customer()
    await purchase(big["id"], VEG, MEAT, ("TOFU-2", "vegetarian", 10, 450), days_ago=5)
    small = await new_customer()
    await purchase(small["id"], MEAT, ("STEAK-2", "meat", 3, 1900), days_ago=5)

    # Interactions' amounts: big spent 450 + 1900 + 4500 = 6850, small 1900 + 5700 = 7600.
    spent_7000 = {"interactions": {"type": "purchase", "amount": {"gte": 7000}}}
    assert await search(spent_7000) == {small["id"]}
    # Matching lines only: big spent 4950 on vegetarian food, small nothing.
    veg_spend = {"interactions": {"category": "vegetarian", "amount": {"gt": 4900, "lt": 5000}}}
    assert await search(veg_spend) == {big["id"]}
    by_sku = {"interactions": {"sku": "STEAK-2", "amount": {"gte": 5700}}}
    assert await search(by_sku) == {small["id"]}
    little_veg = {"interactions": {"category": "vegetarian", "amount": {"lt": 100}}}
    assert await search(little_veg) == {small["id"]}


async def test_type_channel_currency_and_time_windows_narrow_what_counts(
    api, new_customer, purchase, search
):
    shopper = await new_customer()
    await purchase(shopper["id"], VEG, channel="app", currency="GBP", days_ago=40)
    caller = await new_customer()
    call = await api.post(
        "/v1/interactions",
        json={
            "customer_id": caller["id"],
            "type": "call",
            "channel": "phone",
            "occurred_at": ago(days=2),
        },
    )
    assert call.status_code == 201, call.text

    def finds(**filters: object) -> object:
        return search({"interactions": filters})

    assert await finds() == {shopper["id"], caller["id"]}
    assert await finds(type="call") == {caller["id"]}
    assert await finds(channel="app") == {shopper["id"]}
    assert await finds(channel="web") == set()
    assert await finds(currency="GBP") == {shopper["id"]}
    assert await finds(currency="EUR") == set()
    assert await finds(days=30) == {caller["id"]}
    assert await finds(days=41) == {shopper["id"], caller["id"]}
    assert await finds(since=ago(days=45), until=ago(days=35)) == {shopper["id"]}
    assert await finds(since=ago(days=39)) == {caller["id"]}
    assert await finds(until=ago(days=39)) == {shopper["id"]}
