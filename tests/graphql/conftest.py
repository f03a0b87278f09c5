"""GraphQL over real HTTP: POST /graphql with an API key, as a frontend would."""

import asyncio
import re
from typing import Any

import httpx
import pytest

from graphql_shapes import instants
from support import events_of


async def _post(
    api: httpx.AsyncClient, query: str, variables: dict | None, headers: dict | None
) -> dict:
    response = await api.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def gql(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Run an operation that must succeed; returns its data."""

    async def run(query: str, variables: dict | None = None, *, headers: dict | None = None):
        body = await _post(api, query, variables, headers)
        assert "errors" not in body, body["errors"]
        return body["data"]

    return run


@pytest.fixture
def gql_error(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """Run an operation that must fail with one error of ``code``; returns (error, data)."""

    async def run(
        query: str, variables: dict | None = None, *, code: str, headers: dict | None = None
    ) -> tuple[dict, dict | None]:
        body = await _post(api, query, variables, headers)
        [error] = body["errors"]
        assert error["extensions"]["code"] == code, error
        return error, body.get("data")

    return run


_ENUMS = {"kind", "gender", "preferred_channel", "channel", "type", "direction"}
_JSON = {"attributes", "metadata"}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _rest_shape(value: Any, key: str = "") -> Any:
    """A GraphQL object in REST's JSON shape: snake_case, lower-case enums, consents by channel."""
    if key in _JSON:
        return value
    if isinstance(value, dict):
        return {_snake(k): _rest_shape(v, _snake(k)) for k, v in value.items()}
    if key == "consents":
        return {
            c["channel"].lower(): _rest_shape({k: v for k, v in c.items() if k != "channel"})
            for c in value
        }
    if key == "redacted_fields":
        return [_snake(f) for f in value]
    if isinstance(value, list):
        return [_rest_shape(v) for v in value]
    if key in _ENUMS and isinstance(value, str):
        return value.lower()
    return value


@pytest.fixture
def assert_same_as_rest():  # type: ignore[no-untyped-def]
    """Assert a GraphQL object carries exactly the values of its REST representation."""

    def check(graphql_object: dict, rest_object: dict) -> None:
        assert instants(_rest_shape(graphql_object)) == instants(rest_object)

    return check


@pytest.fixture
def announced(api: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """The feed's events of a type, waiting (up to 10 s) for the first to settle.

    The feed holds an event back while any older transaction on the server is open, and
    a shared test server runs other suites' transactions too.
    """

    async def wait(event_type: str) -> list[dict]:
        for _ in range(100):
            if found := await events_of(api, type=event_type):
                return found
            await asyncio.sleep(0.1)
        return []

    return wait
