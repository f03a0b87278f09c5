"""/metrics: what Prometheus scrapes, per route, summed over server processes."""

import asyncio
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from crm_api.core.scopes import Scope
from live import free_port, issue_key, ready, server_process


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _requests(samples: dict, route: str, status: str, method: str = "GET") -> float:
    labels = frozenset({"method": method, "route": route, "status": status}.items())
    return samples.get(("crm_http_requests_total", labels), 0.0)


async def test_metrics_need_their_scope(client, key_for) -> None:
    assert (await client.get("/metrics")).status_code == 401
    other = await key_for(Scope.CUSTOMERS_READ)
    assert (await client.get("/metrics", headers=other)).status_code == 403


async def test_requests_are_counted_per_route_template_with_latency(
    client, api, key_for, new_customer, database_url
) -> None:
    scraper = await key_for(Scope.METRICS_READ)
    before = _samples((await client.get("/metrics", headers=scraper)).text)
    customer = await new_customer()
    for _ in range(3):
        assert (await api.get(f"/v1/customers/{customer['id']}")).status_code == 200
    assert (await api.get(f"/v1/customers/{uuid.uuid4()}")).status_code == 404
    scraped = await client.get("/metrics", headers=scraper)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    after = _samples(scraped.text)
    route = "/v1/customers/{customer_id}"
    assert _requests(after, route, "200") - _requests(before, route, "200") == 3
    assert _requests(after, route, "404") - _requests(before, route, "404") == 1
    latency = frozenset({"method": "GET", "route": route}.items())
    count = after[("crm_http_request_duration_seconds_count", latency)]
    assert count - before.get(("crm_http_request_duration_seconds_count", latency), 0) == 4
    # Raw paths never become series: one per customer would be unbounded.
    assert not any(customer["id"] in str(labels) for _, labels in after)
    pool = {dict(labels)["state"]: v for (name, labels), v in after.items()
            if name == "crm_db_pool_connections"}  # fmt: skip
    assert set(pool) == {"in_use", "idle"} and 1 <= pool["in_use"] + pool["idle"] <= 10
    assert after[("crm_db_pool_max_connections", frozenset())] == 10  # the test settings


async def test_coalesced_recordings_are_counted_per_statement(
    client, api, key_for, new_customer
) -> None:
    scraper = await key_for(Scope.METRICS_READ)
    customer = await new_customer()
    note = {"customer_id": customer["id"], "type": "note"}
    before = _samples((await client.get("/metrics", headers=scraper)).text)

    answers = await asyncio.gather(*(api.post("/v1/interactions", json=note) for _ in range(20)))

    assert [a.status_code for a in answers] == [201] * 20
    after = _samples((await client.get("/metrics", headers=scraper)).text)
    labels = frozenset({"write": "interaction"}.items())

    def grown(name: str) -> float:
        return after[(name, labels)] - before.get((name, labels), 0)

    assert grown("crm_coalesced_batch_size_sum") == 20
    assert 1 <= grown("crm_coalesced_batch_size_count") < 20


async def test_the_webhook_backlog_is_visible(client, api, key_for, new_customer, receiver) -> None:
    scraper = await key_for(Scope.METRICS_READ)
    created = await api.post("/v1/webhook-endpoints", json={"url": receiver.url})
    assert created.status_code == 201
    await new_customer()
    await new_customer()
    samples = {}
    for _ in range(100):  # the events become deliveries once fanned out; no worker runs here
        samples = _samples((await client.get("/metrics", headers=scraper)).text)
        backlog = samples[("crm_outbox_events_not_fanned_out", frozenset())]
        if backlog >= 2:
            break
        await asyncio.sleep(0.05)
    assert backlog >= 2
    assert samples[("crm_webhook_deliveries_pending", frozenset())] == 0
    endpoint = frozenset({"endpoint_id": created.json()["id"], "enabled": "true"}.items())
    assert samples[("crm_webhook_endpoint_consecutive_failures", endpoint)] == 0


async def test_two_server_processes_report_their_requests_together(database_url: str) -> None:
    admin = await issue_key(database_url, Scope.ADMIN)
    headers = {"Authorization": f"Bearer {admin}"}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with server_process(database_url, port, "--workers", "2"):
        await ready(base_url)

        async def one() -> int:  # a connection each, so both processes answer some
            async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
                return (await http.get("/v1/customers")).status_code

        assert set(await asyncio.gather(*(one() for _ in range(40)))) == {200}
        for _ in range(3):  # whichever process answers the scrape, the sum is the same
            async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:
                scraped = _samples((await http.get("/metrics")).text)
            assert _requests(scraped, "/v1/customers", "200") == 40
