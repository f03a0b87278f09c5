"""Deterministic, varied customers: NDJSON lines for the API and the same rows for ``COPY``."""

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from crm_api.core.ids import new_id
from crm_api.customers import service
from crm_api.customers.schemas import CustomerCreate

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Astrid", "Ben", "Carla", "Chen", "Chloe",
    "Dario", "Elif", "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan",
    "Jana", "Jonas", "Kai", "Kenji", "Lara", "Leon", "Lina", "Luca", "Maya", "Mateo",
    "Mia", "Nia", "Noah", "Olga", "Omar", "Paula", "Priya", "Rafael", "Sara", "Sven",
    "Tariq", "Tom", "Uma", "Vera", "Wei", "Yara", "Yusuf", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Bauer", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia",
    "Hansen", "Ivanova", "Jansen", "Kowalski", "Lopez", "Martin", "Meyer", "Moreau",
    "Nakamura", "Novak", "Okafor", "Olsen", "Patel", "Rossi", "Schmidt", "Silva",
    "Smith", "Tanaka", "Schneider", "Weber", "Wagner", "Yilmaz", "Zhang", "Nowak",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli",
    "Vandelay", "Soylent", "Cyberdyne", "Tyrell", "Aperture", "Oscorp", "Wonka", "Gringotts",
)  # fmt: skip
COMPANY_SUFFIXES = ("GmbH", "Ltd", "Inc", "AG", "SA", "BV", "Group", "Holding")
EMAIL_DOMAINS = (
    "gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.net", "proton.me",
    "icloud.com", "orange.fr", "libero.it", "example.org",
)  # fmt: skip
# country, phone prefix, cities, currency
COUNTRIES = (
    ("DE", "+49", ("Berlin", "Hamburg", "Munich", "Cologne", "Leipzig"), "EUR"),
    ("FR", "+33", ("Paris", "Lyon", "Marseille", "Lille"), "EUR"),
    ("ES", "+34", ("Madrid", "Barcelona", "Valencia", "Seville"), "EUR"),
    ("IT", "+39", ("Rome", "Milan", "Turin", "Naples"), "EUR"),
    ("NL", "+31", ("Amsterdam", "Rotterdam", "Utrecht"), "EUR"),
    ("PL", "+48", ("Warsaw", "Krakow", "Gdansk"), "PLN"),
    ("GB", "+44", ("London", "Manchester", "Leeds", "Bristol"), "GBP"),
    ("US", "+1", ("New York", "Chicago", "Austin", "Seattle", "Denver"), "USD"),
    ("JP", "+81", ("Tokyo", "Osaka", "Kyoto"), "JPY"),
    ("BR", "+55", ("Sao Paulo", "Rio de Janeiro", "Curitiba"), "BRL"),
)
STREETS = ("Main St", "Station Rd", "Park Ave", "Market Sq", "Hill Rd", "Lake View", "Elm St")
INTERESTS = (
    "running", "cooking", "travel", "gaming", "photography", "gardening", "cycling",
    "music", "books", "fashion", "tech", "fitness", "wine", "yoga", "movies", "hiking",
)  # fmt: skip
VALUES = ("sustainability", "price", "quality", "convenience", "innovation", "tradition")
LIFESTYLES = ("urban", "suburban", "rural", "nomadic", "family", "single")
TAGS = (
    "vip", "newsletter", "b2b", "churn-risk", "early-adopter", "wholesale", "student",
    "returning", "high-value", "discount-seeker", "beta", "partner",
)  # fmt: skip
INDUSTRIES = ("retail", "manufacturing", "logistics", "healthcare", "education", "energy")
OCCUPATIONS = ("engineer", "teacher", "nurse", "designer", "manager", "student", "retired")
EDUCATION = ("secondary", "vocational", "bachelor", "master", "doctorate")
INCOME_BANDS = ("low", "lower-middle", "middle", "upper-middle", "high")
GENDERS = ("female", "male", "non_binary", "other", "undisclosed")
CHANNELS = ("email", "phone", "sms", "chat", "social", "web", "app", "in_person")
SOURCES = ("google", "facebook", "instagram", "referral", "newsletter", "trade-fair", "direct")
ORGANISATION_KINDS = ("industrial", "institutional", "government")

# The columns a COPY writes: the id plus every column the API writes.
COPY_COLUMNS: tuple[str, ...] = ("id", *service.columns(CustomerCreate()))
_JSON_COLUMNS = frozenset({"consents", "attributes"})


def customer(i: int, rng: random.Random) -> dict[str, Any]:
    """Customer number ``i`` as a client sends it (all optional sections vary)."""
    country, prefix, cities, currency = rng.choice(COUNTRIES)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    kind = "consumer" if rng.random() < 0.85 else rng.choice(ORGANISATION_KINDS)
    signed_up = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(3_000_000))
    signed_up_at = signed_up.strftime("%Y-%m-%dT%H:%M:%SZ")  # as the API renders it
    data: dict[str, Any] = {
        "external_id": f"shop-{i:07d}",
        "kind": kind,
        "first_name": first,
        "last_name": last,
        "email": f"{first}.{last}.{i}@{rng.choice(EMAIL_DOMAINS)}".lower(),
        "phone": f"{prefix}{rng.randrange(10**8, 10**10)}",
        "gender": rng.choice(GENDERS),
        "birth_date": (date(1940, 1, 1) + timedelta(days=rng.randrange(23_000))).isoformat(),
        "address": {
            "line1": f"{rng.randrange(1, 300)} {rng.choice(STREETS)}",
            "city": rng.choice(cities),
            "postal_code": f"{rng.randrange(10000, 99999)}",
            "country": country,
        },
        "interests": rng.sample(INTERESTS, rng.randrange(0, 5)),
        "values": rng.sample(VALUES, rng.randrange(0, 3)),
        "lifestyle": rng.choice(LIFESTYLES),
        "preferred_channel": rng.choice(CHANNELS),
        "consents": {
            "email": {
                "granted": rng.random() < 0.7,
                "at": signed_up_at,
                "source": "signup-form",
            }
        },
        "tags": rng.sample(TAGS, rng.randrange(0, 4)),
        "attributes": {
            "loyalty_tier": rng.choice(("none", "silver", "gold", "platinum")),
            "orders": rng.randrange(0, 120),
            "newsletter": rng.random() < 0.5,
            "signup": signed_up_at,
            "score": round(rng.random() * 100, 2),
        },
    }
    if kind != "consumer" or rng.random() < 0.1:
        data["company_name"] = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"
        data["industry"] = rng.choice(INDUSTRIES)
    if rng.random() < 0.6:
        data["occupation"] = rng.choice(OCCUPATIONS)
        data["education"] = rng.choice(EDUCATION)
        data["income_band"] = rng.choice(INCOME_BANDS)
    if rng.random() < 0.2:
        data["address"]["line2"] = f"Apt {rng.randrange(1, 90)}"
    if rng.random() < 0.5:
        data["acquisition"] = {
            "source": rng.choice(SOURCES),
            "channel": rng.choice(("paid", "organic", "referral", "email")),
            "campaign": f"spring-{rng.randrange(2019, 2026)}",
            "cost": rng.randrange(50, 5000),
            "currency": currency,
        }
    return data


def customers(count: int, seed: int = 20261123) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [customer(i, rng) for i in range(count)]


def ndjson_lines(people: Sequence[dict[str, Any]]) -> list[bytes]:
    """One JSON document per customer (no trailing newline)."""
    return [orjson.dumps(p) for p in people]


def chunks(lines: Sequence[bytes], size: int) -> Iterator[bytes]:
    """NDJSON bodies of at most ``size`` lines each."""
    for start in range(0, len(lines), size):
        yield b"\n".join(lines[start : start + size]) + b"\n"


def _columns(person: dict[str, Any]) -> dict[str, Any]:
    """What ``crm_api.customers.service.columns`` stores for ``person``, without validating."""
    address = person.get("address") or {}
    acquisition = person.get("acquisition") or {}
    out = {c: None for c in COPY_COLUMNS}
    out.update({k: v for k, v in person.items() if k in out})
    out["birth_date"] = date.fromisoformat(person["birth_date"])
    out["psych_values"] = person.get("values", [])
    for key in ("line1", "line2", "city", "region", "postal_code", "country"):
        out["address_line1" if key == "line1" else "address_line2" if key == "line2" else key] = (
            address.get(key)
        )
    for key in ("source", "channel", "campaign", "cost", "currency"):
        out[f"acquisition_{key}"] = acquisition.get(key)
    for key, default in (("interests", []), ("tags", []), ("consents", {}), ("attributes", {})):
        out[key] = person.get(key, default)
    return out


def copy_records(people: Sequence[dict[str, Any]], lines: Sequence[bytes]) -> list[tuple[Any, ...]]:
    """The rows the import stores for these customers, ready for ``copy_records_to_table``.

    Mapped here for speed (validating 100k customers costs ~10 s); a sample is checked
    against the app's own mapping so both imports write the same rows. JSON columns go as
    text, which the driver's binary COPY accepts for jsonb.
    """
    for person, raw in list(zip(people, lines, strict=True))[:: max(1, len(people) // 500)]:
        expected = service.columns(CustomerCreate.model_validate_json(raw))
        mapped = _columns(person)
        if any(mapped[k] != v for k, v in expected.items()):
            diff = {k: (mapped[k], v) for k, v in expected.items() if mapped[k] != v}
            raise AssertionError(f"COPY rows differ from the app's mapping: {diff}")
    records = []
    for person in people:
        values = _columns(person)
        values["id"] = new_id()
        for column in _JSON_COLUMNS:
            values[column] = orjson.dumps(values[column]).decode()
        records.append(tuple(values[c] for c in COPY_COLUMNS))
    return records


def write_ids(path: Any, ids: Sequence[uuid.UUID]) -> None:
    """One id per line, for the load scripts."""
    with open(path, "w") as out:
        out.writelines(f"{i}\n" for i in ids)
