"""Lifecycle fixtures: moving customers, switching rules on, recording interactions."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest


@pytest.fixture
def move(api: httpx.AsyncClient) -> Callable[..., Any]:
    """POST a transition; returns the response."""

    async def post(customer_id: str, to: str, reason: str | None = None, **headers: str):
        body = {"to": to, **({"reason": reason} if reason else {})}
        return await api.post(
            f"/v1/customers/{customer_id}/lifecycle/transitions", json=body, headers=headers
        )

    return post


@pytest.fixture
def moved_to(move: Callable[..., Any]) -> Callable[..., Any]:
    """Walk a customer through ``stages`` (each move must succeed)."""

    async def walk(customer_id: str, *stages: str) -> None:
        for stage in stages:
            response = await move(customer_id, stage)
            assert response.status_code == 201, response.text

    return walk


@pytest.fixture
def enable(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Switch a rule on, with settings."""

    async def switch_on(name: str, **settings: object) -> dict:
        body: dict[str, object] = {"enabled": True}
        if settings:
            body["settings"] = settings
        response = await api.patch(f"/v1/lifecycle/rules/{name}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    return switch_on


@pytest.fixture
def interact(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Record an interaction ``days_ago`` days ago (a purchase unless told)."""

    async def record(customer_id: str, type: str = "purchase", days_ago: float = 0) -> dict:
        body: dict[str, object] = {
            "customer_id": customer_id,
            "type": type,
            "occurred_at": (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
        }
        if type == "purchase":
            body |= {"amount": 1999, "currency": "EUR"}
        response = await api.post("/v1/interactions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return record


@pytest.fixture
def stage_of(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def read(customer_id: str) -> str:
        response = await api.get(f"/v1/customers/{customer_id}")
        assert response.status_code == 200, response.text
        return response.json()["lifecycle_stage"]

    return read


@pytest.fixture
def history(api: httpx.AsyncClient) -> Callable[..., Any]:
    async def read(customer_id: str) -> list[dict]:
        response = await api.get(
            f"/v1/customers/{customer_id}/lifecycle/transitions", params={"limit": 200}
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    return read
