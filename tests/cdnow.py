"""The CDNOW sample (tests/fixtures/cdnow) imported the way a user would: over HTTP."""

from pathlib import Path

import orjson

CDNOW = Path(__file__).parent / "fixtures" / "cdnow" / "CDNOW_sample.txt"
NDJSON = {"Content-Type": "application/x-ndjson"}


async def import_cdnow(api) -> dict[str, str]:
    """Every CDNOW customer and purchase through the bulk endpoints; index -> customer id."""
    rows = [line.split() for line in CDNOW.read_text().splitlines()]
    people = sorted({index for _, index, *_ in rows})
    lines = b"".join(orjson.dumps({"external_id": f"cdnow-{i}"}) + b"\n" for i in people)
    imported = await api.post("/v1/customers/import", content=lines, headers=NDJSON)
    assert imported.json()["created"] == 2357, imported.text
    exported = await api.get("/v1/customers/export")
    ids = {
        c["external_id"].removeprefix("cdnow-"): c["id"]
        for c in map(orjson.loads, exported.content.splitlines())
    }
    purchases = b"".join(
        orjson.dumps(
            {
                "customer_id": ids[index],
                "type": "purchase",
                "external_id": f"cdnow-{n}",
                "occurred_at": f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00Z",
                "amount": round(float(dollars) * 100),
                "currency": "USD",
            }
        )
        + b"\n"
        for n, (_, index, day, _cds, dollars) in enumerate(rows)
    )
    recorded = await api.post("/v1/interactions/import", content=purchases, headers=NDJSON)
    assert recorded.json()["created"] == 6919, recorded.text
    return ids
