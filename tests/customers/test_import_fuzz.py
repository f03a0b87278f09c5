"""The NDJSON importers (customers, interactions) against arbitrary lines: never a server
error, every non-blank line accounted for, and exactly the accepted lines stored."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_api.core.db import asyncpg_dsn

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
CUSTOMER_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["consumer", "industrial", "institutional", "government", "x"]),
        "email": st.emails() | st.text(max_size=20),
        "external_id": st.text(max_size=30),
        "first_name": st.text(max_size=40),
        "address": st.fixed_dictionaries({}, optional={"country": st.text(max_size=3)}),
        "tags": st.lists(st.text(max_size=10), max_size=3),
        "attributes": st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3),
        "birth_date": st.dates().map(str) | st.text(max_size=10),
        "consents": JSON_VALUES,
    },
)
CUSTOMER = "{customer}"  # replaced by a stored customer's id
INTERACTION_FIELDS = st.fixed_dictionaries(
    {"customer_id": st.sampled_from([CUSTOMER, CUSTOMER, "01a20000-0000-7000-8000-000000000000"])},
    optional={
        "type": st.sampled_from(["purchase", "refund", "email", "feedback", "x"]),
        "amount": st.integers(-5, 10**6),
        "currency": st.sampled_from(["EUR", "USD", "eur", "XXX"]),
        "items": st.lists(
            st.fixed_dictionaries(
                {
                    "sku": st.text(max_size=8),
                    "quantity": st.integers(-1, 5),
                    "unit_price": st.integers(-1, 10**4),
                },
                optional={"unit_cost": st.integers(-1, 10**4)},
            ),
            max_size=3,
        ),
        "nps": st.integers(-1, 11),
        "occurred_at": st.datetimes().map(lambda d: d.isoformat() + "Z") | st.text(max_size=12),
        "service_cost": st.integers(-1, 10**4),
    },
)
LINES = st.lists(
    st.one_of(
        CUSTOMER_FIELDS.map(json.dumps),
        INTERACTION_FIELDS.map(json.dumps),
        st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4).map(json.dumps),
        JSON_VALUES.map(json.dumps),
        st.text(max_size=60),  # not JSON at all, maybe with line breaks of its own
    ),
    max_size=8,
)


@pytest.fixture
async def sql_count(database_url: str) -> AsyncIterator[Callable[[str], Awaitable[int]]]:
    """How many rows a table holds."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))

    async def count(table: str) -> int:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")

    yield count
    await conn.close()


@pytest.fixture
async def stored_customer(new_customer) -> str:
    return (await new_customer())["id"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.parametrize("table", ["customers", "interactions"])
@given(lines=LINES)
async def test_any_lines_are_answered_line_by_line_and_only_good_ones_stored(
    lines, table, api, sql_count, stored_customer
) -> None:
    text = "\n".join(lines).replace(CUSTOMER, stored_customer)
    body = text.encode("utf-8", "surrogatepass")
    before = await sql_count(table)
    response = await api.post(
        f"/v1/{table}/import", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code < 500, response.text
    if response.status_code != 200:  # the body as a whole refused (not UTF-8, too many lines)
        assert response.headers["content-type"] == "application/problem+json"
        assert await sql_count(table) == before
        return
    report = response.json()
    non_blank = [n for n, raw in enumerate(body.split(b"\n"), start=1) if raw.strip()]
    assert report["created"] + report["updated"] + report["unchanged"] + report["failed"] == len(
        non_blank
    )
    assert {e["line"] for e in report["errors"]} <= set(non_blank)
    assert len({e["line"] for e in report["errors"]}) == report["failed"]
    assert await sql_count(table) == before + report["created"]
