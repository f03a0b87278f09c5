"""Worker processes as operators run them (`crm-api worker`): one killed mid-batch loses
nothing, two side by side never send the same delivery at once."""

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from crm_api.app import create_app
from live import serve, settings_for
from webhook_receiver import Answer

CRM_API = str(Path(sys.executable).parent / "crm-api")


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            assert process.wait(timeout=30) == 0  # a clean stop on SIGTERM


def start(workers: list, database_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")} | {
        "CRM_DATABASE_URL": database_url,
        "CRM_ENVIRONMENT": "test",
        "CRM_WEBHOOK_TIMEOUT_SECONDS": "1",
        "CRM_WEBHOOK_RETRY_SCHEDULE_SECONDS": "[0, 0.2, 0.2, 0.2]",
        "CRM_WORKER_CONCURRENCY": "8",
        "CRM_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [CRM_API, "worker", "--no-migrate"],
        env=env,
        # Its logs, shown by pytest when a test fails.
        stdout=sys.stderr,
        stderr=sys.stderr,
    )
    workers.append(process)
    return process


async def import_customers(api, count: int) -> list[str]:
    lines = b"".join(
        orjson.dumps({"external_id": f"w-{n}", "first_name": "W"}) + b"\n" for n in range(count)
    )
    response = await api.post(
        "/v1/customers/import", content=lines, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == count
    return [c["id"] for c in (await api.get("/v1/customers", params={"limit": 200})).json()["data"]]


async def all_settled(api, endpoint_id: str, count: int, within: float) -> None:
    url = f"/v1/webhook-endpoints/{endpoint_id}/deliveries"
    for _ in range(int(within / 0.1)):
        page = (await api.get(url, params={"status": "succeeded", "limit": 200})).json()
        if len(page["data"]) == count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(page['data'])} of {count} deliveries succeeded")


async def test_a_worker_killed_mid_batch_loses_nothing_and_resends_under_the_same_id(
    api, database_url, receiver, subscribe, workers
):
    receiver.behaviour = lambda got, earlier: Answer(delay=0.2)
    endpoint = await subscribe("customer.created")
    customers = await import_customers(api, 40)

    first = start(workers, database_url)
    await receiver.wait_for(8)
    first.send_signal(signal.SIGKILL)  # attempts in flight, their outcomes unrecorded
    first.wait(timeout=10)
    start(workers, database_url)
    await all_settled(api, endpoint["id"], 40, within=30)

    ids_of_event: dict[str, set[str]] = defaultdict(set)
    for got in receiver.received:
        ids_of_event[got.json["data"]["id"]].add(got.id)
    assert sorted(ids_of_event) == sorted(customers)  # every event arrived
    assert all(len(ids) == 1 for ids in ids_of_event.values())  # duplicates share the id
    assert len(receiver.received) > 40  # the killed worker's attempts were sent again


async def test_two_workers_share_the_queue_and_never_send_a_delivery_twice(
    api, database_url, receiver, subscribe, workers
):
    receiver.behaviour = lambda got, earlier: Answer(delay=0.05)
    endpoint = await subscribe("customer.created")
    start(workers, database_url)
    start(workers, database_url)
    await import_customers(api, 120)

    await all_settled(api, endpoint["id"], 120, within=30)
    received = receiver.received
    assert len(received) == 120
    assert len({r.id for r in received}) == 120
    assert receiver.overlaps == []
    assert all(process.poll() is None for process in workers)


async def test_the_server_runs_a_worker_itself_when_asked(database_url, admin_key, receiver):
    """The zero-config case (`make run` with the embedded database): one process does all."""
    settings = settings_for(database_url, worker_in_process=True)
    with serve(create_app(settings)) as base_url:
        async with httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}
        ) as http:
            endpoint = await http.post(
                "/v1/webhook-endpoints",
                json={"url": receiver.url, "event_types": ["customer.created"]},
            )
            assert endpoint.status_code == 201, endpoint.text
            customer = await http.post("/v1/customers", json={"first_name": "Solo"})
            [got] = await receiver.wait_for(1)
    assert got.json["data"]["id"] == customer.json()["id"]
