"""Campaign fixtures: campaigns and interactions created over REST."""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest


@pytest.fixture
def create_campaign(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Create a campaign over REST (an email campaign in EUR from 2025 unless told)."""

    async def create(**fields: object) -> dict:
        body = {
            "code": f"C-{uuid.uuid4().hex[:8]}",
            "name": "Spring sale",
            "channel": "email",
            "currency": "EUR",
            "starts_at": "2025-03-01T00:00:00Z",
            **fields,
        }
        response = await api.post("/v1/campaigns", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create


@pytest.fixture
def record(api: httpx.AsyncClient) -> Callable[..., Any]:
    """Record an interaction over REST; returns its JSON."""

    async def create(customer: dict, type_: str, at: str, **fields: object) -> dict:
        body = {"customer_id": customer["id"], "type": type_, "occurred_at": at, **fields}
        response = await api.post("/v1/interactions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return create
