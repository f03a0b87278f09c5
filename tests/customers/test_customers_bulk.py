"""NDJSON import (upsert by external id or email) and export of customers."""

import json

from support import assert_problem, events_of

NDJSON = {"Content-Type": "application/x-ndjson"}


def ndjson(*lines: object) -> str:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"


async def _import(api, body: str):
    response = await api.post("/v1/customers/import", content=body, headers=NDJSON)
    assert response.status_code == 200, response.text
    return response.json()


async def test_good_lines_land_and_bad_lines_are_reported_by_number(api):
    report = await _import(
        api,
        ndjson(
            {"external_id": "a", "first_name": "Ann"},
            "{not json",
            {"email": "bea@example.com"},
            "",
            {"external_id": "c", "address": {"country": "ZZ"}, "phone": "x"},
            {"first_name": "nobody to match on"},
            [1, 2],
        ),
    )

    assert (report["created"], report["updated"], report["unchanged"], report["failed"]) == (
        2,
        0,
        0,
        4,
    )
    by_line: dict[int, list] = {}
    for error in report["errors"]:
        by_line.setdefault(error["line"], []).append(error["field"])
    assert sorted(by_line) == [2, 5, 6, 7]
    assert set(by_line[5]) == {"address.country", "phone"}
    assert by_line[6] == [None]
    listed = (await api.get("/v1/customers")).json()["data"]
    assert {c["external_id"] for c in listed} == {"a", None}
    assert len(await events_of(api, type="customer.created")) == 2


async def test_lines_upsert_by_external_id_then_email_and_unchanged_lines_write_nothing(
    api, new_customer
):
    by_email = await new_customer(email="old@example.com", first_name="Old")
    lines = ndjson(
        {"external_id": "x1", "first_name": "Xi"},
        {"email": "OLD@example.com", "first_name": "Renamed"},
    )
    first = await _import(api, lines)
    second = await _import(api, lines)
    third = await _import(api, ndjson({"external_id": "x1", "first_name": "Xia"}))

    assert (first["created"], first["updated"], first["unchanged"]) == (1, 1, 0)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 2)
    assert (third["created"], third["updated"]) == (0, 1)
    renamed = (await api.get(f"/v1/customers/{by_email['id']}")).json()
    assert renamed["first_name"] == "Renamed" and renamed["version"] == 2
    assert len(await events_of(api, type="customer.updated")) == 2


async def test_a_long_import_applies_its_lines_in_order_across_batches(api):
    # Long enough for several batches, written while later ones are parsed, and the last
    # lines cut into smaller ones; one customer recurs early, mid-way and at the very end.
    lines = [{"external_id": f"c{n}"} for n in range(2_600)]
    for position, name in ((10, "first"), (2_100, "second"), (2_598, "third")):
        lines[position] = {"external_id": "recurring", "first_name": name}
    lines.insert(2_400, "{broken")

    report = await _import(api, ndjson(*lines))

    assert (report["created"], report["updated"], report["failed"]) == (2_598, 2, 1)
    assert [e["line"] for e in report["errors"]] == [2_401]
    [recurring] = (await api.get("/v1/customers", params={"external_id": "recurring"})).json()[
        "data"
    ]
    assert (recurring["first_name"], recurring["version"]) == ("third", 3)
    updates = await events_of(api, type="customer.updated")
    assert [e["data"]["first_name"] for e in updates] == ["second", "third"]


async def test_import_events_carry_each_customer_as_the_api_shows_it(api, new_customer):
    existing = await new_customer(external_id="known", first_name="Old")
    rich = {
        "external_id": "rich", "kind": "industrial", "company_name": "Acme", "first_name": "Ada",
        "email": "Ada@Example.COM", "phone": "+4930123456", "birth_date": "1980-02-29",
        "address": {"line1": "1 Main St", "country": "de"}, "interests": ["tech", "tech"],
        "consents": {"email": {"granted": True, "at": "2024-05-01T10:00:00+02:00"}},
        "tags": ["vip"], "attributes": {"score": 1.5, "nested": {"n": [1, None]}},
        "acquisition": {"source": "fair", "cost": 1250, "currency": "EUR"},
    }  # fmt: skip
    # Nothing set in a nested object: the customer shows it as null, and so does the event.
    emptied = {"external_id": "known", "first_name": "New", "address": {}, "acquisition": {}}

    before = {e["id"] for e in await events_of(api)}

    report = await _import(api, ndjson(rich, emptied))

    assert (report["created"], report["updated"]) == (1, 1)
    imported = [e for e in await events_of(api) if e["id"] not in before]
    assert sorted((e["type"], e["data"]["external_id"]) for e in imported) == [
        ("customer.created", "rich"), ("customer.updated", "known"),
    ]  # fmt: skip
    for event in imported:
        shown = (await api.get(f"/v1/customers/{event['data']['id']}")).json()
        del shown["redacted_fields"]
        assert event["data"] == shown
    assert existing["id"] in {e["data"]["id"] for e in imported}


async def test_a_line_that_collides_fails_alone(api, new_customer):
    await new_customer(email="taken@example.com", external_id="owner")
    report = await _import(
        api,
        ndjson(
            {"external_id": "n1"},
            {"external_id": "n2", "email": "taken@example.com"},
            {"external_id": "n3"},
        ),
    )
    assert (report["created"], report["failed"]) == (2, 1)
    assert report["errors"] == [
        {"line": 2, "field": "email", "message": "belongs to a customer with another external_id"}
    ]


async def test_a_unique_conflict_in_a_large_batch_fails_only_its_line(api, new_customer):
    first = await new_customer(email="first@example.com", external_id="first")
    await new_customer(email="second@example.com", external_id="second")
    lines: list[object] = [{"external_id": f"bulk-{n}"} for n in range(40)]
    # Matched by external_id, it would take the email of another customer.
    lines.insert(25, {"external_id": "first", "email": "second@example.com"})

    report = await _import(api, ndjson(*lines))

    assert (report["created"], report["updated"], report["failed"]) == (40, 0, 1)
    assert report["errors"] == [
        {"line": 26, "field": "email", "message": "is already used by another customer"}
    ]
    kept = (await api.get(f"/v1/customers/{first['id']}")).json()
    assert kept["email"] == "first@example.com" and kept["version"] == 1
    created = await events_of(api, type="customer.created")
    assert len({e["data"]["external_id"] for e in created} - {"first", "second"}) == 40
    # The event carries the customer as stored, server-set fields included.
    event = next(e["data"] for e in created if e["data"]["external_id"] == "bulk-0")
    stored = (await api.get(f"/v1/customers/{event['id']}")).json()
    assert {**event, "redacted_fields": []} == stored
    assert await events_of(api, type="customer.updated") == []


async def test_repeated_keys_in_one_file_apply_in_order(api):
    report = await _import(
        api,
        ndjson(
            {"external_id": "r", "first_name": "One"}, {"external_id": "r", "first_name": "Two"}
        ),
    )
    assert (report["created"], report["updated"]) == (1, 1)
    listed = (await api.get("/v1/customers", params={"external_id": "r"})).json()["data"]
    assert [c["first_name"] for c in listed] == ["Two"]


async def test_import_needs_ndjson(api):
    response = await api.post("/v1/customers/import", json={"external_id": "a"})
    assert_problem(response, 415, "unsupported-media-type")


async def test_export_streams_every_live_customer_redacted_for_the_key(api, key_for, new_customer):
    ids = {(await new_customer(first_name=f"N{i}", tags=["t"]))["id"] for i in range(5)}
    gone = await new_customer()
    await api.delete(f"/v1/customers/{gone['id']}")
    headers = await key_for("customers:read")

    response = await api.get("/v1/customers/export", params={"tag": "t"}, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert {r["id"] for r in rows} == ids
    assert all(r["first_name"] is None and r["redacted_fields"] for r in rows)


async def test_an_export_that_cannot_run_is_a_problem_not_a_cut_stream(api, key_for):
    headers = await key_for("customers:read")
    response = await api.get("/v1/customers/export", params={"email": "a@b.co"}, headers=headers)
    assert_problem(response, 403, "forbidden")
    empty = await api.get("/v1/customers/export", params={"tag": "nobody"})
    assert empty.status_code == 200 and empty.text == ""
