"""Webhook fixtures: endpoints subscribing the receiver (see the root conftest)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from webhook_receiver import Receiver


@pytest.fixture
def subscribe(api: httpx.AsyncClient, receiver: Receiver) -> Callable[..., Any]:
    """Create an endpoint for the receiver; returns its JSON (secret included)."""

    async def create(*event_types: str, headers: dict[str, str] | None = None) -> dict:
        response = await api.post(
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "event_types": list(event_types or ["*"])},
            headers=headers or {},
        )
        assert response.status_code == 201, response.text
        return response.json()

    return create
