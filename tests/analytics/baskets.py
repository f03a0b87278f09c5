"""Purchases recorded over REST, each a basket of (sku, category) lines."""

from collections.abc import Sequence

import httpx

Line = tuple[str, str | None]


async def buy(
    api: httpx.AsyncClient,
    customer_id: str,
    lines: Sequence[Line],
    *,
    at: str = "2026-01-15T12:00:00Z",
    type: str = "purchase",
) -> dict:
    items = [
        {"sku": sku, "category": category, "quantity": 1, "unit_price": 100}
        for sku, category in lines
    ]
    body = {
        "customer_id": customer_id,
        "type": type,
        "occurred_at": at,
        "amount": 100 * len(items),
        "currency": "EUR",
        "items": items,
    }
    response = await api.post("/v1/interactions", json=body)
    assert response.status_code == 201, response.text
    return response.json()
