"""``python -m bench.soak`` (``make soak``): mixed traffic held for a long while, bounded.

A `crm-api serve` process, a `crm-api worker` delivering every event to a webhook receiver,
and ``--clients`` HTTP clients on loopback sharing a fixed request rate (``--rate``) for
``--duration`` seconds (default 600). The mix is what a CRM front end and its partners
send: reads of customers and timelines, customer updates, purchases, loyalty earns and
redeems, and the GraphQL customer page. Every answer is counted by status; latencies are
reported per operation (p50, p99).

The run fails (exit 1) on any 5xx or dropped connection, and when the outbox has not
drained to the receiver within a minute of the load stopping. Results:
bench/results/soak.json.
"""

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import database, report, servers
from bench.runner import log

GRAPHQL_PAGE = """query($id: ID!) { customer(id: $id) {
    id email lifecycleStage version
    interactions(first: 10) { edges { node { id type occurredAt amount currency } } }
    segments { edges { node { enteredAt segment { id name } } } }
    loyaltyAccounts { id available tier entries(first: 5) { edges { node { id points } } } }
} }"""
DRAIN_SECONDS = 60


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    add = parser.add_argument
    add("--duration", type=float, default=600, help="seconds of load (default 600)")
    add("--rate", type=float, default=150, help="requests per second, all clients (default 150)")
    add("--clients", type=int, default=16, help="concurrent clients (default 16)")
    add("--customers", type=int, default=500, help="customers seeded (default 500)")
    add("--pool-size", type=int, default=20, help="the server's database pool (default 20)")
    return parser.parse_args(argv)


class Traffic:
    """The seeded world and one request of each kind against it."""

    def __init__(self, http: httpx.AsyncClient, customers: list[str], accounts: list[str]):
        self.http = http
        self.customers = customers
        self.accounts = accounts

    async def get_customer(self) -> httpx.Response:
        return await self.http.get(f"/v1/customers/{random.choice(self.customers)}")

    async def list_customers(self) -> httpx.Response:
        return await self.http.get("/v1/customers", params={"limit": 50, "kind": "consumer"})

    async def timeline(self) -> httpx.Response:
        customer = random.choice(self.customers)
        return await self.http.get(f"/v1/customers/{customer}/interactions", params={"limit": 20})

    async def update_customer(self) -> httpx.Response:
        customer = random.choice(self.customers)
        return await self.http.patch(
            f"/v1/customers/{customer}", json={"tags": [random.choice(["vip", "new", "b2b"])]}
        )

    async def purchase(self) -> httpx.Response:
        quantity = random.randint(1, 3)
        line = {"sku": f"SKU-{random.randint(1, 40)}", "category": "books",
                "quantity": quantity, "unit_price": 1250}  # fmt: skip
        body = {"customer_id": random.choice(self.customers), "type": "purchase",
                "amount": 1250 * quantity, "currency": "EUR", "items": [line]}  # fmt: skip
        return await self.http.post(
            "/v1/interactions", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )

    async def earn(self) -> httpx.Response:
        account = random.choice(self.accounts)
        return await self.http.post(f"/v1/loyalty/accounts/{account}/earn", json={"points": 5})

    async def redeem(self) -> httpx.Response:
        account = random.choice(self.accounts)
        return await self.http.post(f"/v1/loyalty/accounts/{account}/redeem", json={"points": 1})

    async def graphql_page(self) -> httpx.Response:
        variables = {"id": random.choice(self.customers)}
        return await self.http.post("/graphql", json={"query": GRAPHQL_PAGE,
                                                      "variables": variables})  # fmt: skip


# Operation: share of the traffic.
MIX: dict[str, float] = {
    "get_customer": 0.25,
    "list_customers": 0.08,
    "timeline": 0.12,
    "update_customer": 0.05,
    "purchase": 0.20,
    "earn": 0.10,
    "redeem": 0.08,
    "graphql_page": 0.12,
}


async def _seed(http: httpx.AsyncClient, count: int) -> tuple[list[str], list[str]]:
    """Customers, a loyalty programme, and a funded account for every fifth customer."""
    customers = []
    for n in range(count):
        created = await http.post(
            "/v1/customers",
            json={"kind": "consumer", "email": f"soak-{n}-{uuid.uuid4().hex[:6]}@example.com",
                  "first_name": f"Soak{n}"},
        )  # fmt: skip
        created.raise_for_status()
        customers.append(created.json()["id"])
    program = await http.post(
        "/v1/loyalty/programs", json={"name": "Soak club", "currency": "EUR", "points_per_unit": 1}
    )
    program.raise_for_status()
    accounts = []
    for customer in customers[::5]:
        account = await http.post(
            "/v1/loyalty/accounts",
            json={"customer_id": customer, "program_id": program.json()["id"]},
        )
        account.raise_for_status()
        funded = await http.post(
            f"/v1/loyalty/accounts/{account.json()['id']}/earn", json={"points": 1_000_000}
        )
        funded.raise_for_status()
        accounts.append(account.json()["id"])
    return customers, accounts


async def _client(
    traffic: Traffic, interval: float, until: float, outcomes: dict[str, Any]
) -> None:
    operations: list[Callable[[], Awaitable[httpx.Response]]] = [
        getattr(traffic, name) for name in MIX
    ]
    weights = list(MIX.values())
    next_at = time.monotonic() + random.uniform(0, interval)
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval  # a fixed schedule: a slow answer does not lower the rate
        operation = random.choices(operations, weights)[0]
        name = operation.__name__
        started = time.perf_counter()
        try:
            response = await operation()
        except httpx.TransportError as exc:
            outcomes["errors"][f"{name}: {type(exc).__name__}"] += 1
            continue
        outcomes["latency"][name].append((time.perf_counter() - started) * 1000)
        outcomes["status"][name][response.status_code] += 1
        if response.status_code >= 500:
            outcomes["errors"][f"{name}: {response.status_code}"] += 1


async def _undelivered(url: str) -> int:
    """Events not yet delivered to the receiver (the outbox lag, in events)."""
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            """SELECT count(*) FROM events e WHERE NOT EXISTS (
                   SELECT 1 FROM webhook_deliveries d
                   WHERE d.event_id = e.id AND d.delivered_at IS NOT NULL)"""
        )
    finally:
        await conn.close()


def run(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    key = asyncio.run(database.issue_key(url, "soak", "admin"))
    with (
        servers.crm_api(url, args.pool_size, workdir, access_log=False) as api,
        servers.receiver(workdir) as receiver,
        servers.worker(url, workdir, concurrency=16),
    ):
        return asyncio.run(_load(args, url, api.base_url, receiver.base_url, key))


async def _load(
    args: argparse.Namespace, url: str, base_url: str, receiver_url: str, key: str
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=30, limits=limits
    ) as http:
        endpoint = await http.post("/v1/webhook-endpoints", json={"url": receiver_url})
        endpoint.raise_for_status()
        log(f"seeding {args.customers} customers and {args.customers // 5} loyalty accounts")
        customers, accounts = await _seed(http, args.customers)
        outcomes: dict[str, Any] = {
            "latency": defaultdict(list),
            "status": defaultdict(Counter),
            "errors": Counter(),
        }
        log(f"{args.duration:.0f} s at {args.rate:g} req/s from {args.clients} clients")
        traffic = Traffic(http, customers, accounts)
        until = time.monotonic() + args.duration
        interval = args.clients / args.rate
        await asyncio.gather(
            *(_client(traffic, interval, until, outcomes) for _ in range(args.clients))
        )
    log("load stopped; waiting for the outbox to drain")
    deadline = time.monotonic() + DRAIN_SECONDS
    while (lag := await _undelivered(url)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(1)
    return {
        "settings": vars(args),
        "operations": {
            name: {
                "requests": len(outcomes["latency"][name]),
                "statuses": dict(outcomes["status"][name]),
                **report.percentiles(outcomes["latency"][name] or [0.0]),
            }
            for name in MIX
        },
        "errors": dict(outcomes["errors"]),
        "undelivered_after_drain": lag,
    }


def render(results: dict[str, Any]) -> str:
    lines = [f"{'operation':<18}{'requests':>10}{'p50 ms':>10}{'p99 ms':>10}  statuses"]
    for name, figures in results["operations"].items():
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(figures["statuses"].items()))
        lines.append(
            f"{name:<18}{figures['requests']:>10,}{figures['p50_ms']:>10}"
            f"{figures['p99_ms']:>10}  {statuses}"
        )
    total = sum(f["requests"] for f in results["operations"].values())
    lines.append(f"\n{total:,} requests; 5xx and dropped connections: {results['errors'] or 0}")
    lines.append(f"deliveries pending after the drain: {results['undelivered_after_drain']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    with database.server() as server, tempfile.TemporaryDirectory(prefix="crm-soak-") as tmp:
        url = asyncio.run(database.create(server))
        try:
            results = run(args, url, Path(tmp))
        finally:
            asyncio.run(database.drop(server, url))
    print(render(results))
    print(f"\nresults: {report.write('soak', results)}")
    return 1 if results["errors"] or results["undelivered_after_drain"] else 0


if __name__ == "__main__":
    sys.exit(main())
