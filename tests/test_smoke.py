async def test_create_and_get(api):
    r = await api.post("/v1/customers", json={"email": "Ada@Example.com", "first_name": "Ada"})
    assert r.status_code == 201, r.text
    c = r.json()
    r = await api.get(f"/v1/customers/{c['id']}")
    assert r.status_code == 200, r.text
    print(r.json())
    r = await api.post(
        "/v1/interactions",
        json={
            "customer_id": c["id"],
            "type": "purchase",
            "amount": 1299,
            "currency": "EUR",
            "items": [{"sku": "A", "quantity": 1, "unit_price": 1299}],
        },
    )
    assert r.status_code == 201, r.text
    r = await api.get(f"/v1/customers/{c['id']}/interactions")
    assert r.status_code == 200, r.text
    print(r.json())
    r = await api.get("/v1/events")
    print(r.json())
