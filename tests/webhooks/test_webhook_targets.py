"""Where deliveries may go when private networks are blocked (production's default):
checked when an endpoint is saved and again, on the address used, at every delivery."""

import asyncio
import ipaddress

import pytest

from crm_api.config import Environment, Settings
from live import settings_for
from support import assert_problem

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(
        database_url,
        webhook_block_private_networks=True,
        webhook_allowed_networks=LOOPBACK,
    )


def test_production_blocks_private_networks_by_default(database_url):
    production = Settings(
        environment=Environment.PRODUCTION,
        database_url=database_url,
        bootstrap_admin_key=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    assert production.blocks_private_networks
    assert not settings_for(database_url).blocks_private_networks


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/hook",
        "http://192.168.1.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",  # cloud metadata
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[::ffff:192.168.0.1]/hook",
        "http://[fd00:ec2::254]/hook",
    ],
)
async def test_private_addresses_are_refused_when_an_endpoint_is_saved(api, url):
    response = await api.post("/v1/webhook-endpoints", json={"url": url})
    problem = assert_problem(response, 422, "validation-error")
    [error] = problem["errors"]
    assert error["field"] == "url"
    assert "private, loopback or link-local" in error["message"]


async def test_an_unresolvable_host_is_refused(api):
    response = await api.post(
        "/v1/webhook-endpoints", json={"url": "https://no-such-host.invalid/"}
    )
    problem = assert_problem(response, 422, "validation-error")
    assert "does not resolve" in problem["errors"][0]["message"]


async def subscribe_by_name(api, receiver) -> dict:
    """An endpoint for the receiver under the name `localhost` instead of its address."""
    port = receiver.url.split(":")[2].split("/")[0]
    response = await api.post(
        "/v1/webhook-endpoints",
        json={"url": f"http://localhost:{port}/hook", "event_types": ["customer.*"]},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_address_no_longer_allowed_is_refused_at_delivery(
    api, receiver, start_worker, new_customer
):
    endpoint = await subscribe_by_name(api, receiver)  # the allow-list covers loopback ...
    # ... but not by the worker, which checks the address it is about to use.
    await start_worker(webhook_block_private_networks=True, webhook_retry_schedule_seconds=[0])
    await new_customer()
    endpoint_id = endpoint["id"]
    for _ in range(100):
        deliveries = (await api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()
        if deliveries["data"] and deliveries["data"][0]["status"] == "failed":
            break
        await asyncio.sleep(0.05)
    [failed] = deliveries["data"]
    assert failed["status"] == "failed"
    assert "target refused" in failed["last_error"]
    assert receiver.received == []


async def test_an_allowed_name_is_delivered_to_the_address_that_was_checked(
    api, receiver, start_worker, new_customer
):
    await subscribe_by_name(api, receiver)
    await start_worker(webhook_block_private_networks=True, webhook_allowed_networks=LOOPBACK)
    await new_customer()

    [got] = await receiver.wait_for(1)
    # The name, though the connection went to the address checked (127.0.0.1).
    assert got.headers["host"] == f"localhost:{receiver.url.split(':')[2].split('/')[0]}"
