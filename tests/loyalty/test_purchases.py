"""Auto-earn: purchases earn (enrolling the customer), refunds naming them take points back."""

from support import assert_problem


async def _record(api, **body: object):  # type: ignore[no-untyped-def]
    response = await api.post("/v1/interactions", json=body)
    return response


async def test_a_purchase_enrols_and_earns_in_auto_earn_programmes_of_its_currency(
    api, create_program, new_customer, books
) -> None:
    auto = await create_program(auto_earn=True, points_per_unit=2)
    await create_program(auto_earn=True, currency="USD")
    manual = await create_program()
    customer = await new_customer()
    purchase = await _record(
        api, customer_id=customer["id"], type="purchase", amount=2550, currency="EUR",
        external_id="order-9",
    )  # fmt: skip
    assert purchase.status_code == 201, purchase.text
    accounts = (
        await api.get("/v1/loyalty/accounts", params={"customer_id": customer["id"]})
    ).json()
    [account] = accounts["data"]
    assert account["program_id"] == auto["id"] and account["balance"] == 51
    [entry] = (await api.get(f"/v1/loyalty/accounts/{account['id']}/entries")).json()["data"]
    assert entry["interaction_id"] == purchase.json()["id"] and entry["reference"] == "order-9"
    assert entry["actor_key_id"] is None and entry["amount"] == 2550
    assert manual["id"] not in {a["program_id"] for a in accounts["data"]}
    assert await books(account) == 51


async def test_a_refund_takes_back_its_share_of_what_the_purchase_earned(
    api, create_program, new_customer, write, books
) -> None:
    await create_program(auto_earn=True)
    customer = await new_customer()
    purchase = (
        await _record(api, customer_id=customer["id"], type="purchase", amount=10000,
                      currency="EUR")
    ).json()  # fmt: skip
    [account] = (
        await api.get("/v1/loyalty/accounts", params={"customer_id": customer["id"]})
    ).json()["data"]
    refund = await _record(
        api, customer_id=customer["id"], type="refund", amount=2500, currency="EUR",
        refund_of=purchase["id"],
    )  # fmt: skip
    assert refund.status_code == 201, refund.text
    assert refund.json()["refund_of"] == purchase["id"]
    assert await books(account) == 75
    # Spend most of the rest: the next refund can only take back what is left.
    assert (await write(account, "redeem", points=70)).status_code == 201
    rest = await _record(
        api, customer_id=customer["id"], type="refund", amount=7500, currency="EUR",
        refund_of=purchase["id"],
    )  # fmt: skip
    assert rest.status_code == 201
    [last, *_] = (await api.get(f"/v1/loyalty/accounts/{account['id']}/entries")).json()["data"]
    assert last["kind"] == "reverse" and last["points"] == -5 and last["uncovered_points"] == 70
    assert await books(account) == 0


async def test_refund_of_must_name_a_purchase_of_the_same_customer(api, new_customer) -> None:
    customer, other = await new_customer(), await new_customer()
    visit = (await _record(api, customer_id=customer["id"], type="visit")).json()
    theirs = (
        await _record(api, customer_id=other["id"], type="purchase", amount=100, currency="EUR")
    ).json()
    dollars = (
        await _record(api, customer_id=customer["id"], type="purchase", amount=100,
                      currency="USD")
    ).json()  # fmt: skip
    for refund_of in (visit["id"], theirs["id"], dollars["id"]):
        response = await _record(
            api, customer_id=customer["id"], type="refund", amount=100, currency="EUR",
            refund_of=refund_of,
        )  # fmt: skip
        assert assert_problem(response, 422, "validation-error")["errors"][0]["field"] == (
            "refund_of"
        )
    not_a_refund = await _record(
        api, customer_id=customer["id"], type="purchase", amount=1, currency="USD",
        refund_of=dollars["id"],
    )  # fmt: skip
    assert_problem(not_a_refund, 422, "validation-error")


async def test_imported_refunds_are_checked_too(api, new_customer) -> None:
    customer = await new_customer()
    visit = (await _record(api, customer_id=customer["id"], type="visit")).json()
    line = (
        f'{{"customer_id": "{customer["id"]}", "type": "refund", "amount": 1,'
        f' "currency": "EUR", "refund_of": "{visit["id"]}"}}\n'
    )
    response = await api.post(
        "/v1/interactions/import", content=line, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["failed"] == 1 and report["errors"][0]["field"] == "refund_of"


async def test_purchases_earn_from_the_moment_a_programme_exists_and_stop_when_it_stops(
    api, create_program, new_customer, sql
) -> None:
    """The recording path adapts to what the previous purchases set off; what each
    purchase writes must follow the programmes as they are at that moment."""
    customer = await new_customer()

    async def purchase(external_id: str) -> None:
        response = await _record(
            api, customer_id=customer["id"], type="purchase", amount=1000, currency="PLN",
            external_id=external_id,
        )  # fmt: skip
        assert response.status_code == 201, response.text

    async def earned() -> list[str]:
        rows = await sql.fetch(
            "SELECT i.external_id FROM loyalty_entries e JOIN interactions i"
            " ON i.id = e.interaction_id WHERE e.customer_id = $1 ORDER BY e.seq",
            customer["id"],
        )
        return [r["external_id"] for r in rows]

    await purchase("before")
    program = await create_program(auto_earn=True, currency="PLN")
    await purchase("during-1")
    await purchase("during-2")
    switched = await api.patch(f"/v1/loyalty/programs/{program['id']}", json={"auto_earn": False})
    assert switched.status_code == 200, switched.text
    await purchase("after")
    assert await earned() == ["during-1", "during-2"]
    recorded = await sql.fetchval(
        "SELECT count(*) FROM interactions WHERE customer_id = $1", customer["id"]
    )
    assert recorded == 4
