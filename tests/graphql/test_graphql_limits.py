"""Safety limits: over-deep, over-aliased, oversized and too costly operations are refused
before they run, each with its own problem code and the figure against the limit."""

import time

import httpx
import pytest
from graphql import get_introspection_query

from crm_api.config import Environment, Settings
from live import settings_for

# Small limits, so that the operations exceeding them stay readable.
LIMITS = {
    "graphql_max_depth": 5,
    "graphql_max_aliases": 3,
    "graphql_max_tokens": 300,
    "graphql_max_cost": 2_000,
}


@pytest.fixture
def settings(request: pytest.FixtureRequest, database_url: str) -> Settings:
    """The app's settings: ``LIMITS``, or the parameter of an indirect parametrization."""
    return settings_for(database_url, **getattr(request, "param", LIMITS))


DEPTH_5 = "query($id: ID!) { customer(id: $id) { interactions { edges { node { id } } } } }"
DEPTH_6 = DEPTH_5.replace("{ id }", "{ items { sku } }")


async def test_an_operation_nested_past_the_depth_limit_is_refused(gql, gql_error, new_customer):
    customer = await new_customer()

    assert await gql(DEPTH_5, {"id": customer["id"]}) == {
        "customer": {"interactions": {"edges": []}}
    }
    error, data = await gql_error(DEPTH_6, {"id": customer["id"]}, code="query-too-deep")

    assert data is None
    assert error["message"] == "The operation nests fields 6 deep; the limit is 5."
    assert error["extensions"]["status"] == 400


async def test_depth_counts_through_fragments(gql_error, new_customer):
    customer = await new_customer()
    query = """query($id: ID!) { customer(id: $id) { ...Timeline } }
        fragment Timeline on Customer { interactions { ... on InteractionConnection {
            edges { node { items { sku } } } } } }"""

    await gql_error(query, {"id": customer["id"]}, code="query-too-deep")


async def test_aliases_past_the_limit_are_refused_fragments_included(gql, gql_error):
    three = """{ a: customers { pageInfo { b: hasNextPage } } ...More }
        fragment More on Query { c: scorers { name } }"""
    four = three.replace("name", "d: name")

    assert set(await gql(three)) == {"a", "c"}
    error, _ = await gql_error(four, code="too-many-aliases")
    assert error["message"] == "The operation uses 4 aliases; the limit is 3."


@pytest.mark.parametrize(
    "padding",
    [
        " __typename" * 300,
        "\n# a comment" * 300,  # comments cost parsing too
    ],
    ids=["fields", "comments"],
)
async def test_a_document_past_the_token_limit_is_refused_unparsed(gql_error, padding):
    error, data = await gql_error("{" + padding + " }", code="query-too-large")

    assert data is None
    assert error["message"] == "The document has more tokens than the limit of 300."


async def test_a_syntax_error_keeps_its_own_message(api: httpx.AsyncClient):
    body = (await api.post("/graphql", json={"query": "{ customers {"})).json()

    [error] = body["errors"]
    assert error["message"].startswith("Syntax Error: Expected Name")
    assert "extensions" not in error


COSTLY = """query($first: Int!) {
    customers(first: $first) { edges { node { id scores { scorer kind label score runId } } } } }"""


@pytest.mark.parametrize("first", [50, 200])
async def test_an_operation_over_budget_is_refused_with_its_cost(gql_error, first):
    """customers 1 + edges (1 + first x node (1 + id 1 + scores (1 + 10 x 5 fields))), as a
    list without a page argument counts 10."""
    error, data = await gql_error(COSTLY, {"first": first}, code="query-too-complex")

    assert data is None
    assert error["message"] == (
        f"The operation costs {2 + 53 * first}; the limit is 2000. "
        "Ask for smaller pages (`first`) or fewer nested lists."
    )


async def test_smaller_pages_bring_the_same_operation_within_budget(gql, new_customer):
    await new_customer()

    page = await gql(COSTLY, {"first": 3})

    assert len(page["customers"]["edges"]) == 1


async def test_pages_and_lists_left_to_their_default_size_count_it(gql_error):
    """``customers`` pages 50 by default: 1 + (1 + 50 x (1 + 1 + (1 + 10 x 4)))."""
    query = "{ customers { edges { node { id scores { scorer kind label score } } } } }"

    error, _ = await gql_error(query, code="query-too-complex")

    assert error["message"].startswith("The operation costs 2152;")


async def test_an_operation_over_budget_changes_nothing(api: httpx.AsyncClient, gql_error):
    mutation = """mutation { createCustomer(input: {email: "ada@example.com"}) {
        interactions(first: 200) { edges { node {
            id type channel direction amount currency subject body campaign occurredAt
            recordedAt } } } } }"""

    await gql_error(mutation, code="query-too-complex")

    assert (await api.get("/v1/customers")).json()["data"] == []


@pytest.mark.parametrize("settings", [LIMITS | {"graphql_max_tokens": 1_000}], indirect=True)
async def test_fragments_spread_into_fragments_are_measured_quickly(gql_error):
    """Thirty fragments, each spreading the next twice, select 2^30 fields."""
    fragments = " ".join(f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(30))
    query = f"{{ ...F0 }} {fragments} fragment F30 on Query {{ __typename }}"

    started = time.monotonic()
    error, _ = await gql_error(query, code="query-too-complex")

    assert time.monotonic() - started < 2
    assert error["message"].startswith(f"The operation costs {2**30};")


async def test_introspection_is_refused_where_switched_off(gql, gql_error):
    """Off unless configured outside development (these tests run as ``test``)."""
    error, _ = await gql_error("{ __schema { queryType { name } } }", code="introspection-disabled")

    assert error["message"] == "Introspection is disabled on this server."
    assert error["extensions"]["status"] == 403
    await gql_error('{ __type(name: "Customer") { name } }', code="introspection-disabled")
    assert await gql("{ __typename }") == {"__typename": "Query"}


@pytest.mark.parametrize(
    ("environment", "introspection", "ide"),
    [
        (Environment.DEVELOPMENT, True, True),
        (Environment.TEST, False, False),
        (Environment.PRODUCTION, False, False),
    ],
)
def test_introspection_and_the_ide_are_on_by_default_in_development_only(
    environment, introspection, ide
):
    settings = Settings(
        environment=environment,
        database_url="postgresql://db/crm",
        bootstrap_admin_key=False,
        _env_file=None,  # type: ignore[call-arg]
    )

    assert settings.graphql_introspection_enabled is introspection
    assert settings.graphql_ide_enabled is ide
    switched = settings.model_copy(update={"graphql_introspection": not introspection})
    assert switched.graphql_introspection_enabled is not introspection


CUSTOMER_PAGE = """query($id: ID!) { customer(id: $id) {
    id email firstName lastName lifecycleStage tags consents { channel granted }
    interactions { edges { node { id type occurredAt amount currency items { sku quantity } } } }
    segments { edges { node { enteredAt segment { id name } } } }
    scores { scorer label score }
    churn { churnProbability } clv { clv currency }
    lifecycle { stage since transitions { edges { node { fromStage toStage occurredAt } } } }
    loyaltyAccounts { balance tier entries { edges { node { kind points occurredAt } } } }
} }"""


@pytest.mark.parametrize("settings", [{"graphql_introspection": True}], indirect=True)
async def test_the_defaults_admit_graphiqls_introspection_and_a_customer_page(gql, new_customer):
    customer = await new_customer(first_name="Ada")
    introspection = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )

    assert (await gql(introspection))["__schema"]["queryType"]["name"] == "Query"
    page = (await gql(CUSTOMER_PAGE, {"id": customer["id"]}))["customer"]
    assert page["firstName"] == "Ada"
