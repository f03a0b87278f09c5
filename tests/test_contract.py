"""The whole REST contract, fuzzed: schemathesis generates valid and invalid requests for
every operation in the OpenAPI document and sends them, with an admin key, to the app
served by uvicorn on its own real database. No request may cause a 5xx; every answer
must use a documented status code and content type and match its schema; every error
must be an RFC 9457 problem.
"""

import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import hypothesis.strategies as st
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm_api.app import create_app
from crm_api.core import idempotency
from crm_api.core.db import asyncpg_dsn
from crm_api.core.scopes import Scope
from live import create_database, drop_database, issue_key, openapi_document, serve, settings_for

# Per operation and generation mode: the whole module stays well under a minute. Hunt
# deeper locally with e.g. CRM_CONTRACT_EXAMPLES=1000.
MAX_EXAMPLES = int(os.environ.get("CRM_CONTRACT_EXAMPLES", "50"))
PROBLEM_MEMBERS = {"type", "title", "status", "detail"}
NDJSON = "application/x-ndjson"

# What the app serves at /openapi.json (asserted below). Building it needs no database, so
# pytest knows every operation when it collects this module.
SPEC = openapi_document()
schema = schemathesis.openapi.from_dict(
    SPEC,
    config=schemathesis.Config.from_dict(
        {
            # Slow generation on a busy CI machine is not a finding.
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "database": "none",  # no example database in the work tree; every run is fresh
                # Credentials come from the test (an admin key), not from the generator.
                "with-security-parameters": False,
            },
            "operations": [
                {
                    # Enumerating every coverage case of a recursive condition tree takes
                    # minutes per operation; fuzzing still sends trees to these, and
                    # tests/segments covers the condition language case by case.
                    "include-operation-id": [
                        "segments_create",
                        "segments_update",
                        "segments_preview",
                        "customers_search",
                    ],
                    "phases": {"coverage": {"enabled": False}},
                }
            ],
        }
    ),
)
# Bulk imports declare their NDJSON body as a string: send the generated text as is.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Ids of seeded rows, so that by-id operations also reach rows that exist (filled by `live`).
KNOWN: dict[str, list[str]] = {
    "customer_id": [],
    "interaction_id": [],
    "key_id": [],
    "endpoint_id": [],
    "delivery_id": [],
    "run_id": [],
    "segment_id": [],
    "transition_id": [],
    "program_id": [],
    "reward_id": [],
    "account_id": [],
    "entry_id": [],
}


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _with_known_ids(values: Any) -> Any:
    """A strategy: ``values`` as generated, or with its well-formed ids swapped for real ones.

    Only ids that are already valid UUIDs are swapped, so negative cases stay negative.
    """
    if not isinstance(values, dict):
        return st.just(values)
    names = [n for n, v in values.items() if n in KNOWN and _is_uuid(v)]
    if not names:
        return st.just(values)

    def swapped() -> Any:
        return st.fixed_dictionaries(
            {
                n: st.sampled_from(KNOWN[n]) if n in names and KNOWN[n] else st.just(v)
                for n, v in values.items()
            }
        )

    return st.one_of(st.just(values), st.deferred(swapped))


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: Any) -> Any:
    return _with_known_ids(path_parameters)


@schema.hook
def flatmap_query(context: Any, query: Any) -> Any:
    return _with_known_ids(query)


@schema.hook
def flatmap_body(context: Any, body: Any) -> Any:
    return _with_known_ids(body)


@pytest.fixture(scope="module")
async def live_database(server_url: str, template_db: str) -> AsyncIterator[str]:
    url = await create_database(server_url, template=template_db)
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
async def live_admin_key(live_database: str) -> str:
    return await issue_key(live_database, Scope.ADMIN, name="contract admin")


@pytest.fixture(scope="module")
def live(live_database: str, live_admin_key: str) -> Iterator[str]:
    """The app under uvicorn (own thread, own event loop) with a few seeded rows."""
    with serve(create_app(settings_for(live_database))) as base_url:
        _seed(base_url, live_admin_key)
        yield base_url


def _seed(base_url: str, key: str) -> None:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for n in range(10):  # enough that fuzzed deletes and erasures leave some standing
            customer = http.post(
                "/v1/customers",
                json={"email": f"seed{n}@example.com", "first_name": "Seed", "tags": ["vip"]},
            )
            assert customer.status_code == 201, customer.text
            KNOWN["customer_id"].append(customer.json()["id"])
            interaction = http.post(
                "/v1/interactions",
                json={
                    "customer_id": customer.json()["id"],
                    "type": "purchase",
                    "channel": "web",
                    "amount": 1299,
                    "currency": "EUR",
                },
            )
            assert interaction.status_code == 201, interaction.text
            KNOWN["interaction_id"].append(interaction.json()["id"])
            moved = http.post(
                f"/v1/customers/{customer.json()['id']}/lifecycle/transitions",
                json={"to": "onboarding", "reason": "seed"},
            )
            assert moved.status_code == 201, moved.text
            KNOWN["transition_id"].append(moved.json()["id"])
        for n in range(3):
            api_key = http.post("/v1/api-keys", json={"name": f"seed {n}", "scopes": ["pii:read"]})
            assert api_key.status_code == 201, api_key.text
            KNOWN["key_id"].append(api_key.json()["id"])
            # No worker runs here: deliveries stay queued, nothing is sent anywhere.
            endpoint = http.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:9/{n}"})
            assert endpoint.status_code == 201, endpoint.text
            KNOWN["endpoint_id"].append(endpoint.json()["id"])
            delivery = http.post(f"/v1/webhook-endpoints/{endpoint.json()['id']}/test")
            assert delivery.status_code == 202, delivery.text
            KNOWN["delivery_id"].append(delivery.json()["id"])
        run = http.post("/v1/scoring/runs", json={"scorer": "rfm"})  # stays queued: no worker
        assert run.status_code == 202, run.text
        KNOWN["run_id"].append(run.json()["id"])
        for n, condition in enumerate(SEED_CONDITIONS):
            segment = http.post("/v1/segments", json={"name": f"seed {n}", "condition": condition})
            assert segment.status_code == 201, segment.text
            KNOWN["segment_id"].append(segment.json()["id"])
            assert http.post(f"/v1/segments/{segment.json()['id']}/refresh").status_code == 200
        static = http.post("/v1/segments", json={"name": "seed static", "kind": "static"})
        assert static.status_code == 201, static.text
        KNOWN["segment_id"].append(static.json()["id"])
        members = {"customer_ids": KNOWN["customer_id"][:5]}
        added = http.post(f"/v1/segments/{static.json()['id']}/members", json=members)
        assert added.status_code == 200, added.text
        _seed_loyalty(http)


def _seed_loyalty(http: httpx.Client) -> None:
    """A programme with a reward, accounts with entries of each kind, and one without."""
    rich = {"auto_earn": True, "expiry_days": 365, "tiers": [{"name": "Gold", "threshold": 100}]}
    for n, fields in enumerate((rich, {})):
        program = http.post(
            "/v1/loyalty/programs",
            json={"name": f"seed {n}", "currency": "EUR", "points_per_unit": 1, **fields},
        )
        assert program.status_code == 201, program.text
        KNOWN["program_id"].append(program.json()["id"])
    base = f"/v1/loyalty/programs/{KNOWN['program_id'][0]}"
    reward = http.post(f"{base}/rewards", json={"name": "Mug", "cost": 5, "stock": 1000})
    assert reward.status_code == 201, reward.text
    KNOWN["reward_id"].append(reward.json()["id"])
    for customer_id in KNOWN["customer_id"][:3]:
        enrolled = http.post(
            "/v1/loyalty/accounts",
            json={"customer_id": customer_id, "program_id": KNOWN["program_id"][0]},
        )
        assert enrolled.status_code == 201, enrolled.text
        account = f"/v1/loyalty/accounts/{enrolled.json()['id']}"
        KNOWN["account_id"].append(enrolled.json()["id"])
        writes = [
            ("earn", {"points": 500}),
            ("redeem", {"reward_id": reward.json()["id"]}),
            ("adjust", {"points": 5, "reason": "seed"}),
        ]
        for action, body in writes:
            entry = http.post(f"{account}/{action}", json=body)
            assert entry.status_code == 201, entry.text
            KNOWN["entry_id"].append(entry.json()["id"])


# Rule segments over several kinds of condition (their refreshes run every kind of SQL).
SEED_CONDITIONS: list[dict[str, Any]] = [
    {"field": "tags", "op": "contains", "value": "vip"},
    {
        "all": [
            {"interactions": {"type": "purchase", "days": 30}},
            {"not": {"field": "email", "op": "exists"}},
        ]
    },
    {"score": {"scorer": "rfm", "field": "label", "op": "eq", "value": "At Risk"}},
]


def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error is an RFC 9457 problem: its media type and its four core members."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"a {response.status_code} came as {content_type!r}, not application/problem+json"
    )
    body = response.json()
    missing = PROBLEM_MEMBERS - set(body)
    assert not missing, f"the problem lacks {sorted(missing)}: {body}"
    assert body["status"] == response.status_code, body
    assert body["type"].startswith("/problems/"), body
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    problem_details,
]


@schema.parametrize()
def test_every_operation_keeps_its_contract(
    case: schemathesis.Case, live: str, live_admin_key: str
) -> None:
    case.call_and_validate(
        base_url=live, headers={"Authorization": f"Bearer {live_admin_key}"}, checks=CHECKS
    )


def test_the_served_document_is_the_one_fuzzed(live: str) -> None:
    assert httpx.get(f"{live}/openapi.json").json() == SPEC


# Answers random generation rarely provokes, sent on purpose and validated the same way.


def test_a_conditional_get_answers_a_documented_304(live: str, live_admin_key: str) -> None:
    auth = {"Authorization": f"Bearer {live_admin_key}"}
    customer = httpx.post(f"{live}/v1/customers", json={"first_name": "Etag"}, headers=auth)
    operation = schema["/v1/customers/{customer_id}"]["GET"]
    for if_none_match in (customer.headers["etag"], "*"):
        case = operation.Case(
            path_parameters={"customer_id": customer.json()["id"]},
            headers={"If-None-Match": if_none_match},
        )
        response = case.call_and_validate(base_url=live, headers=auth, checks=CHECKS)
        assert response.status_code == 304
        assert response.headers["etag"] == [customer.headers["etag"]]


# A valid body per POST, so that the request gets as far as claiming its Idempotency-Key.
POST_BODIES: dict[str, tuple[str, bytes]] = {
    "customers_create": ("application/json", b'{"first_name": "Ada"}'),
    "customers_import": (NDJSON, b'{"email": "ada@example.com"}\n'),
    "interactions_create": ("application/json", b""),  # filled in with a seeded customer
    "interactions_import": (NDJSON, b""),
    "api_keys_create": ("application/json", b'{"name": "x", "scopes": ["pii:read"]}'),
    "api_keys_rotate": ("application/json", b'{"grace_period_seconds": 0}'),
    "webhook_endpoints_create": ("application/json", b'{"url": "http://127.0.0.1:9/x"}'),
    "webhook_endpoints_replay": ("application/json", b'{"since": "2026-01-01T00:00:00Z"}'),
    "scoring_start": ("application/json", b'{"scorer": "rfm"}'),
    "segments_create": ("application/json", b'{"name": "x", "kind": "static"}'),
    "segments_preview": ("application/json", b'{"condition": {"field": "kind", "op": "exists"}}'),
    "customers_search": ("application/json", b'{"condition": {"field": "kind", "op": "exists"}}'),
    "lifecycle_transitions_create": ("application/json", b'{"to": "active"}'),
    "loyalty_programs_create": (
        "application/json",
        b'{"name": "x", "currency": "EUR", "points_per_unit": 1}',
    ),
    "loyalty_rewards_create": ("application/json", b'{"name": "x", "cost": 1}'),
    "loyalty_accounts_enrol": (
        "application/json",
        b'{"customer_id": "01a20000-0000-7000-8000-000000000000",'
        b' "program_id": "01a20000-0000-7000-8000-000000000000"}',
    ),
    "campaigns_create": (
        "application/json",
        b'{"code": "x", "name": "x", "channel": "email", "currency": "EUR",'
        b' "starts_at": "2026-01-01T00:00:00Z"}',
    ),
    "loyalty_accounts_earn": ("application/json", b'{"points": 1}'),
    "loyalty_accounts_redeem": ("application/json", b'{"points": 1}'),
    "loyalty_accounts_adjust": ("application/json", b'{"points": 1, "reason": "x"}'),
    "loyalty_entries_reverse": ("application/json", b'{"reason": "x"}'),
    "segment_members_add": (
        "application/json",
        b'{"customer_ids": ["01a20000-0000-7000-8000-000000000000"]}',
    ),
}


async def test_every_post_documents_the_409_of_a_retry_still_running(
    live: str, live_database: str, live_admin_key: str
) -> None:
    """A retry that arrives while the first request with its Idempotency-Key still runs."""
    customer = KNOWN["customer_id"][-1]
    visit = f'{{"customer_id": "{customer}", "type": "visit"}}'.encode()
    bodies = POST_BODIES | {
        "interactions_create": ("application/json", visit),
        "interactions_import": (NDJSON, visit + b"\n"),
    }
    known = {name: ids[-1] for name, ids in KNOWN.items()} | {"customer_id": customer}
    conn = await asyncpg.connect(asyncpg_dsn(live_database))
    http = httpx.AsyncClient(base_url=live)
    try:
        admin_id = await conn.fetchval("SELECT id FROM api_keys WHERE name = 'contract admin'")
        posts = [(p, m["post"]) for p, m in SPEC["paths"].items() if "post" in m]
        assert posts
        for template, operation in posts:
            path_parameters = {n: known[n] for n in re.findall(r"{(\w+)}", template)}
            path = template.format(**path_parameters)
            media_type, body = bodies.get(operation["operationId"], ("application/json", b""))
            key = f"in-flight-{uuid.uuid4().hex}"
            # The claim the first request holds while it runs.
            await conn.execute(
                "INSERT INTO idempotency_keys (api_key_id, key, fingerprint, expires_at)"
                " VALUES ($1, $2, $3, now() + interval '1 hour')",
                admin_id,
                key,
                idempotency.fingerprint("POST", path, "", body),
            )
            headers = {
                "Authorization": f"Bearer {live_admin_key}",
                "Idempotency-Key": key,
                **({"Content-Type": media_type} if body else {}),
            }
            response = await http.post(path, content=body, headers=headers)
            assert response.status_code == 409, (template, response.text)
            assert response.json()["type"] == "/problems/idempotency-key-in-use"
            case = schema[template]["POST"].Case(path_parameters=path_parameters)
            case.validate_response(response, checks=CHECKS)
    finally:
        await http.aclose()
        await conn.close()


# Valid RFC 3339, but with no UTC datetime in Python's range: these once caused 500s.
EDGE_TIMESTAMPS = ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"]
TIMESTAMP_BODIES = [
    ("/v1/interactions", lambda t: {"customer_id": KNOWN["customer_id"][0], "type": "visit",
                                    "occurred_at": t}),
    ("/v1/api-keys", lambda t: {"name": "edge", "scopes": ["pii:read"], "expires_at": t}),
    ("/v1/customers", lambda t: {"consents": {"email": {"granted": True, "at": t}}}),
]  # fmt: skip


def test_timestamps_beyond_utc_range_are_refused_not_crashed_on(
    live: str, live_admin_key: str
) -> None:
    auth = {"Authorization": f"Bearer {live_admin_key}"}
    cases = [
        schema[path][method.upper()].Case(
            path_parameters={n: KNOWN[n][0] for n in re.findall(r"{(\w+)}", path)},
            query={param["name"]: value},
        )
        for path, methods in SPEC["paths"].items()
        for method, operation in methods.items()
        for param in operation.get("parameters", [])
        if param["in"] == "query" and "date-time" in str(param["schema"])
        for value in EDGE_TIMESTAMPS
    ]
    cases += [
        schema[path]["POST"].Case(body=body(value), media_type="application/json")
        for path, body in TIMESTAMP_BODIES
        for value in EDGE_TIMESTAMPS
    ]
    assert len(cases) > 10
    for case in cases:
        response = case.call_and_validate(base_url=live, headers=auth, checks=CHECKS)
        assert response.status_code == 422, (case.path, case.query, case.body, response.text)
