"""Constrained field types shared by every domain's request and response models."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints


def storable(value: str) -> str:
    """``STORABLE``, for text that is not a declared field (keys and values of free-form
    JSON, condition paths)."""
    if "\x00" in value:
        raise ValueError(PATTERN_MESSAGES[STORABLE])
    if not value.isascii():  # ASCII holds no surrogates; the check costs a copy
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(NOT_UNICODE) from None
    return value


def fits_bigint(value: int) -> bool:
    """Whether PostgreSQL's bigint (and orjson) can hold ``value``."""
    return -(2**63) <= value < 2**63


# Text PostgreSQL can store, checked by pydantic-core itself rather than by a Python
# validator (a customer has dozens of text fields; each call cost more than the rest of
# the field's validation). The pattern refuses NUL, and matching it makes pydantic-core
# read the string as UTF-8, which refuses lone surrogates (`string_unicode`).
STORABLE = r"^[^\x00]*$"
IDENTIFIER = r"^[^/\x00]+$"
# What a refused pattern means, in the words of the API's field errors.
PATTERN_MESSAGES = {
    STORABLE: "must not contain NUL characters",
    IDENTIFIER: "must not contain '/' or NUL characters",
}
NOT_UNICODE = "must be valid Unicode (no lone surrogates)"


def bounded_text(max_length: int, min_length: int = 0) -> Any:
    """Text PostgreSQL can store: stripped, length-bounded, no NUL, no lone surrogates."""
    return Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=min_length, max_length=max_length, pattern=STORABLE
        ),
    ]


ShortText = bounded_text(200, min_length=1)
Label = bounded_text(64, min_length=1)  # tags, codes, short names
LongText = bounded_text(20_000)


# pycountry's lookups cost more than the rest of a code's validation.
_COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
_CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)


def _check_country(code: str) -> str:
    if code not in _COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


def _check_currency(code: str) -> str:
    if code not in _CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


CountryCode = Annotated[
    str,
    StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{2}$"),
    AfterValidator(_check_country),
    Field(description="ISO 3166-1 alpha-2 country code.", examples=["DE"]),
]
CurrencyCode = Annotated[
    str,
    StringConstraints(to_upper=True, pattern=r"^[A-Za-z]{3}$"),
    AfterValidator(_check_currency),
    Field(description="ISO 4217 currency code.", examples=["EUR"]),
]
MinorUnits = Annotated[
    int,
    Field(
        ge=0,
        le=10**15,
        description="An amount of money in the currency's minor units (cents for EUR).",
    ),
]


def _in_utc_range(value: datetime) -> datetime:
    # asyncpg sends timestamps in UTC: 0001-01-01T00:00+01:00 has no UTC datetime.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range (years 1 to 9999 in UTC)") from None
    return value


Timestamp = Annotated[AwareDatetime, AfterValidator(_in_utc_range)]
"""An RFC 3339 timestamp with an offset, storable and comparable in PostgreSQL."""

# The longest a clock may run ahead of ours before a "past" timestamp is refused.
CLOCK_SKEW = timedelta(minutes=5)


def _not_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("must not be in the future")
    return value


PastDatetime = Annotated[Timestamp, AfterValidator(_not_future)]


def _future(value: datetime) -> datetime:
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


FutureDatetime = Annotated[Timestamp, AfterValidator(_future)]


def _check_json(value: Any) -> Any:
    """Refuse what PostgreSQL's jsonb or our encoder cannot hold, walking the document
    with a stack: a call per nested value cost more than the checks."""
    todo = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > 16:
            raise ValueError("is nested too deeply (16 levels at most)")
        if isinstance(item, str):
            storable(item)
        elif isinstance(item, bool):
            pass
        elif isinstance(item, int):
            if not fits_bigint(item):
                raise ValueError("must not contain integers beyond 64 bits")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise ValueError("must not contain NaN or infinite numbers")
        elif isinstance(item, dict):
            for key, nested in item.items():
                storable(key)
                todo.append((nested, depth + 1))
        elif isinstance(item, list):
            for nested in item:
                todo.append((nested, depth + 1))
    return value


JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(_check_json),
    Field(description="A free-form JSON object (16 levels deep at most)."),
]


Identifier = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=IDENTIFIER),
]
