"""Failures that are ours, not the client's: no Python detail reaches the client."""

import uuid

import pytest

from crm_api.customers import service

QUERY = "query($id: ID!) { customer(id: $id) { id } }"


@pytest.mark.parametrize(
    ("failure", "code", "status"),
    [
        (RuntimeError("secret: connection string postgres://admin@db"), "internal-error", 500),
        (TimeoutError(), "service-unavailable", 503),
    ],
)
async def test_a_failure_of_ours_is_an_opaque_error_with_its_problem_code(
    monkeypatch, caplog, gql_error, failure, code, status
):
    async def fail(*args: object, **kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(service, "get_customer", fail)

    error, data = await gql_error(QUERY, {"id": str(uuid.uuid4())}, code=code)

    assert data == {"customer": None}
    assert error["extensions"]["status"] == status
    assert "secret" not in error["message"] and "Traceback" not in error["message"]
    assert [r.exc_info[1] for r in caplog.records if r.name == "crm_api.graphql"] == [failure]


async def test_a_clients_mistake_is_not_logged_as_our_error(caplog, gql_error):
    await gql_error(QUERY, {"id": "not-a-uuid"}, code="validation-error")

    assert not [r for r in caplog.records if r.levelname == "ERROR"]
