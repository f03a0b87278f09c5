"""The condition language, leaf by leaf: every operator on every kind of field, each with a
customer it must find and one it must not. Searched through POST /v1/customers/search,
which compiles conditions exactly as segments do."""

import pytest

ADA = {
    "kind": "consumer",
    "first_name": "Ada",
    "email": "ada@Lovelace.example",
    "birth_date": "1990-05-01",
    "gender": "female",
    "income_band": "high",
    "lifestyle": "urban",
    "preferred_channel": "email",
    "address": {"city": "Berlin", "country": "DE", "postal_code": "10115"},
    "tags": ["vip", "newsletter"],
    "interests": ["cooking"],
    "attributes": {
        "loyalty": {"tier": "gold", "points": 1200},
        "vegan": True,
        "nickname": "Countess_of%Lovelace",
        "sizes": ["M", "L"],
        "joined": "2020-03-01",
    },
}
BOB = {
    "kind": "industrial",
    "company_name": "Acme Tools",
    "address": {"country": "FR"},
    "attributes": {"loyalty": {"tier": "silver", "points": 300}, "vegan": False},
}


def leaf(field: str, op: str, value: object = None) -> dict:
    return {"field": field, "op": op} | ({} if value is None else {"value": value})


CASES = [
    # eq / neq, with a missing value: neq is the exact complement of eq
    (leaf("country", "eq", "DE"), {"ada"}),
    (leaf("kind", "eq", "industrial"), {"bob"}),
    (leaf("city", "neq", "Berlin"), {"bob"}),
    (leaf("city", "eq", "berlin"), set()),  # exact, case-sensitive
    (leaf("email_domain", "eq", "lovelace.example"), {"ada"}),
    # in / not_in
    (leaf("country", "in", ["AT", "DE"]), {"ada"}),
    (leaf("country", "not_in", ["DE"]), {"bob"}),
    (leaf("gender", "in", ["male", "other"]), set()),
    (leaf("gender", "not_in", ["male"]), {"ada", "bob"}),
    # ordering on dates, text and numbers in attributes
    (leaf("birth_date", "gt", "1980-01-01"), {"ada"}),
    (leaf("birth_date", "lt", "1980-01-01"), set()),
    (leaf("postal_code", "gte", "10115"), {"ada"}),
    (leaf("postal_code", "gt", "10115"), set()),
    (leaf("attributes.loyalty.points", "gt", 1200), set()),
    (leaf("attributes.loyalty.points", "gte", 1200), {"ada"}),
    (leaf("attributes.loyalty.points", "lt", 300), set()),
    (leaf("attributes.loyalty.points", "lte", 300), {"bob"}),
    (leaf("attributes.joined", "lt", "2021-01-01"), {"ada"}),  # text compares with text
    (leaf("attributes.joined", "gt", 5), set()),  # ... never with numbers
    # between, both ends included
    (leaf("attributes.loyalty.points", "between", [300, 1199]), {"bob"}),
    (leaf("attributes.loyalty.points", "between", [301, 1199]), set()),
    (leaf("birth_date", "between", ["1990-05-01", "1991-01-01"]), {"ada"}),
    (leaf("created_at", "between", ["2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"]), set()),
    # contains / starts_with: case-insensitive; % and _ are no wildcards
    (leaf("city", "contains", "ERL"), {"ada"}),
    (leaf("company_name", "starts_with", "acme"), {"bob"}),
    (leaf("company_name", "starts_with", "tools"), set()),
    (leaf("attributes.nickname", "contains", "of%love"), {"ada"}),
    (leaf("attributes.nickname", "contains", "s_o"), {"ada"}),
    (leaf("attributes.nickname", "contains", "ountes_"), set()),
    (leaf("attributes.nickname", "contains", "s%o"), set()),
    (leaf("attributes.nickname", "starts_with", "count"), {"ada"}),
    (leaf("attributes.nickname", "starts_with", "ess"), set()),
    (leaf("attributes.sizes", "contains", "L"), {"ada"}),
    (leaf("attributes.sizes", "contains", "XL"), set()),
    # exists
    (leaf("birth_date", "exists"), {"ada"}),
    (leaf("birth_date", "exists", False), {"bob"}),
    (leaf("attributes.nickname", "exists"), {"ada"}),
    (leaf("attributes.loyalty.missing", "exists"), set()),
    (leaf("tags", "exists"), {"ada"}),
    (leaf("tags", "exists", False), {"bob"}),
    # attributes compare as JSON: numbers, text and booleans each with their own kind
    (leaf("attributes.loyalty.tier", "eq", "gold"), {"ada"}),
    (leaf("attributes.loyalty.tier", "neq", "gold"), {"bob"}),
    (leaf("attributes.vegan", "eq", True), {"ada"}),
    (leaf("attributes.vegan", "eq", False), {"bob"}),
    (leaf("attributes.loyalty.points", "eq", 300), {"bob"}),
    (leaf("attributes.loyalty.points", "eq", 300.0), {"bob"}),
    (leaf("attributes.loyalty.points", "eq", "300"), set()),
    (leaf("attributes.loyalty.tier", "in", ["gold", "platinum"]), {"ada"}),
    (leaf("attributes.loyalty.tier", "not_in", ["gold", "platinum"]), {"bob"}),
    (leaf("attributes.loyalty", "in", ["gold"]), set()),  # an object is no scalar
    # label lists
    (leaf("tags", "contains", "vip"), {"ada"}),
    (leaf("tags", "contains", "VIP"), set()),
    (leaf("tags", "in", ["gone", "newsletter"]), {"ada"}),
    (leaf("tags", "not_in", ["vip"]), {"bob"}),
    (leaf("interests", "contains", "cooking"), {"ada"}),
    (leaf("values", "exists"), set()),
    # combinations
    ({"not": leaf("country", "eq", "DE")}, {"bob"}),
    ({"not": leaf("city", "eq", "Berlin")}, {"bob"}),  # a missing city is not Berlin
    ({"all": [leaf("country", "eq", "DE"), leaf("tags", "contains", "vip")]}, {"ada"}),
    ({"all": [leaf("country", "eq", "DE"), leaf("kind", "eq", "industrial")]}, set()),
    ({"any": [leaf("country", "eq", "FR"), leaf("tags", "contains", "vip")]}, {"ada", "bob"}),
    ({"any": [leaf("country", "eq", "IT"), leaf("tags", "contains", "x")]}, set()),
    (
        {
            "all": [
                {"any": [leaf("country", "eq", "FR"), leaf("country", "eq", "DE")]},
                {
                    "not": {
                        "all": [leaf("kind", "eq", "consumer"), leaf("income_band", "eq", "low")]
                    }
                },
                {"not": {"not": leaf("attributes.loyalty.points", "gte", 1000)}},
            ]
        },
        {"ada"},
    ),
]


@pytest.fixture
async def people(new_customer) -> dict[str, str]:
    """Ada and Bob, and nobody else, keyed by their ids."""
    ada, bob = await new_customer(**ADA), await new_customer(**BOB)
    return {ada["id"]: "ada", bob["id"]: "bob"}


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=[str(c) for c, _ in CASES])
async def test_each_condition_finds_whom_it_describes(search, people, condition, expected):
    found = await search(condition)
    assert {people[i] for i in found} == expected


async def test_a_timestamp_comparison_respects_offsets(search, people):
    # Both customers were created moments ago.
    assert len(await search(leaf("created_at", "gte", "2020-01-01T00:00:00+14:00"))) == 2
    assert await search(leaf("created_at", "lt", "2020-01-01T00:00:00-12:00")) == set()


async def test_deleted_customers_are_never_found(api, search, people):
    [ada] = [i for i, name in people.items() if name == "ada"]
    assert (await api.delete(f"/v1/customers/{ada}")).status_code == 204
    assert await search(leaf("country", "eq", "DE")) == set()
    assert {people[i] for i in await search(leaf("country", "neq", "XX"))} == {"bob"}
