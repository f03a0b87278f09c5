"""``python -m bench.graphql``: the customer page over GraphQL against REST, in one run.

1. **The customer page**: one GraphQL query (the customer, timeline, segments, scores,
   churn, lifetime value, lifecycle and its transitions, loyalty accounts with their
   recent entries) against the REST calls a client makes for the same data, one after
   the other (the accounts' entries need the accounts' ids first). Timed by a Python
   httpx client at concurrency 1, alternating the two on random customers: the figure
   is the latency of a *sequence* of dependent requests, which wrk, a throughput tool
   that times single requests, cannot give. The client's own cost per request (a
   fraction of a millisecond) is part of both sides, REST's ten requests paying it ten
   times, as a real client would. The same REST calls fired concurrently are reported
   too, without a target. Target: GraphQL p50 <= the REST sequence's p50.
2. **A list of 100 customers with their latest interactions** over GraphQL, with wrk
   (throughput, 4 connections), against REST's list of the same 100 customers without
   their interactions, interleaved rounds.

For both, the SQL statements one request sends are counted on the app's own asyncpg
connection (a query logger; the app in-process with a one-connection pool, after a
warm-up), so a change that turns a batch back into one query per customer shows here.
Results: bench/results/graphql.json.
"""

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import data, database, load, report, servers, wrk_suite
from bench.report import Headline, Row
from bench.runner import log
from crm_api.app import create_app
from crm_api.config import Settings

RATIO_TARGET = 1.0  # GraphQL page p50 / REST sequence p50, at most
TIMELINE, ENTRIES, LIST_SIZE, LIST_TIMELINE = 20, 10, 100, 10

PAGE = f"""query($id: ID!) {{ customer(id: $id) {{
    id externalId kind firstName lastName companyName email phone industry birthDate gender
    incomeBand education occupation
    address {{ line1 line2 city region postalCode country }}
    interests values lifestyle preferredChannel consents {{ channel granted at source }}
    tags attributes acquisition {{ source channel campaign cost currency }}
    lifecycleStage createdAt updatedAt version erasedAt redactedFields
    interactions(first: {TIMELINE}) {{ edges {{ node {{
        id customerId type externalId channel direction occurredAt recordedAt subject body
        campaign metadata amount currency items {{ sku name category quantity unitPrice }}
        nps csat refundOf
    }} }} pageInfo {{ hasNextPage endCursor }} }}
    segments {{ edges {{ node {{ enteredAt segment {{
        id name description kind condition refreshInterval refreshedAt nextRefreshAt
        createdAt updatedAt version redactedFields
    }} }} }} pageInfo {{ hasNextPage endCursor }} }}
    scores {{ scorer kind runId scoredAt score label details }}
    churn {{ customerId churnProbability pAlive expectedPurchases scorer runId scoredAt }}
    clv {{ clv currency details scorer runId scoredAt }}
    lifecycle {{
        customerId stage since allowed
        transitions(first: {TIMELINE}) {{ edges {{ node {{
            id customerId fromStage toStage reason automatic rule actorKeyId occurredAt
        }} }} pageInfo {{ hasNextPage endCursor }} }}
    }}
    loyaltyAccounts {{
        id customerId programId balance available locked lifetimeEarned tier tierSince
        qualifyingPoints nextTier {{ name threshold qualifyingPoints pointsNeeded }}
        createdAt updatedAt version
        entries(first: {ENTRIES}) {{ edges {{ node {{
            id accountId customerId programId seq kind points balanceAfter qualifyingPoints
            reference reason rewardId rewardQuantity reversesId interactionId amount currency
            multiplier uncoveredPoints actorKeyId idempotencyKey occurredAt
        }} }} pageInfo {{ hasNextPage endCursor }} }}
    }}
}} }}"""
# What a client reads for the same page over REST; the accounts come last, for their ids.
REST_PAGE = (
    "/v1/customers/{id}",
    f"/v1/customers/{{id}}/interactions?limit={TIMELINE}",
    "/v1/customers/{id}/segments",
    "/v1/customers/{id}/scores",
    "/v1/customers/{id}/churn",
    "/v1/customers/{id}/clv",
    "/v1/customers/{id}/lifecycle",
    f"/v1/customers/{{id}}/lifecycle/transitions?limit={TIMELINE}",
    "/v1/loyalty/accounts?customer_id={id}",
)
REST_ENTRIES = f"/v1/loyalty/accounts/{{id}}/entries?limit={ENTRIES}"
LIST = f"""{{ customers(first: {LIST_SIZE}) {{ edges {{ node {{
    id email lifecycleStage
    interactions(first: {LIST_TIMELINE}) {{ edges {{ node {{
        id type occurredAt amount currency items {{ sku quantity unitPrice }}
    }} }} }}
}} }} }} }}"""
REST_LIST = f"/v1/customers?limit={LIST_SIZE}"


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.graphql", description=__doc__)
    add = parser.add_argument
    add("--customers", type=int, default=10_000, help="customers in the database (COPY)")
    add("--page-customers", type=int, default=200, help="the newest, given every kind of data")
    add("--pages", type=int, default=300, help="timed pages per side (default 300)")
    add("--rounds", type=int, default=3, help="interleaved rounds of the list load")
    add("--duration", type=int, default=10, help="seconds measured per list load and round")
    add("--warmup", type=int, default=2, help="seconds of warm-up before each measurement")
    # A nested list costs some 150 ms of a core: more connections would only queue, and
    # their backlog would still be served while the next load is measured.
    add("--connections", type=int, default=4, help="wrk connections (default 4)")
    add("--pool-size", type=int, default=20, help="the server's database pool (default 20)")
    add("--check", action="store_true", help="exit 1 when the target is missed")
    return parser.parse_args(argv)


def _expect(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:500]}"
        )
    return response.json()


# -- the data --------------------------------------------------------------------------


async def _copy_customers(url: str, count: int, newest: int) -> list[str]:
    """``count`` varied customers by COPY; the ids of the ``newest`` (the list's first)."""
    people = data.customers(count)
    conn = await asyncpg.connect(url)
    try:
        records = data.copy_records(people, data.ndjson_lines(people))
        await conn.copy_records_to_table(
            "customers", records=records, columns=list(data.COPY_COLUMNS)
        )
        rows = await conn.fetch(
            "SELECT id FROM customers ORDER BY created_at DESC, id DESC LIMIT $1", newest
        )
    finally:
        await conn.close()
    return [str(r["id"]) for r in rows]


async def _give_everything(base_url: str, key: str, customer_ids: list[str]) -> None:
    """Over the API, with a worker running: purchases (auto-earned points, the
    first_purchase rule moving the buyer), other interactions, a manual stage move, two
    segments, and a run of each scorer a page shows."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as http:
        _expect(await http.patch("/v1/lifecycle/rules/first_purchase", json={"enabled": True}))
        tiers = [{"name": "silver", "threshold": 200}, {"name": "gold", "threshold": 2000}]
        program = {"name": "club", "currency": "EUR", "points_per_unit": "1", "tiers": tiers}
        _expect(await http.post("/v1/loyalty/programs", json=program | {"auto_earn": True}), 201)
        gate, now = asyncio.Semaphore(16), datetime.now(UTC)

        async def one(n: int, customer_id: str) -> None:
            # Buyers as the churn and CLV models have them: each with their own span of
            # activity and purchase count, and spend Gamma(6.2, rate) around their own
            # rate (CDNOW's parameters), so that both models fit and score every buyer.
            rng = random.Random(n)
            rate, active_days = rng.gammavariate(3.7, 1 / 15.4), rng.uniform(60, 700)
            days_ago = sorted((rng.uniform(0, active_days) for _ in range(2 + n % 5)), reverse=True)
            async with gate:
                for ago in days_ago:
                    purchase = {
                        "customer_id": customer_id,
                        "type": "purchase",
                        "occurred_at": (now - timedelta(days=ago)).isoformat(),
                        "amount": round(100 * rng.gammavariate(6.2, 1 / rate)),
                        "currency": "EUR",
                        "items": [{"sku": f"SKU-{n % 50}", "quantity": 1, "unit_price": 1500}],
                    }
                    _expect(await http.post("/v1/interactions", json=purchase), 201)
                for kind in ("email", "web", "support"):
                    contact = {"customer_id": customer_id, "type": kind, "subject": kind}
                    _expect(await http.post("/v1/interactions", json=contact), 201)
                move = {"to": "active", "reason": "second order"}
                path = f"/v1/customers/{customer_id}/lifecycle/transitions"
                _expect(await http.post(path, json=move), 201)

        await asyncio.gather(*(one(n, c) for n, c in enumerate(customer_ids)))
        static = {"name": "page", "kind": "static"}
        segment = _expect(await http.post("/v1/segments", json=static), 201)
        members = {"customer_ids": customer_ids}
        _expect(await http.post(f"/v1/segments/{segment['id']}/members", json=members))
        newsletter = {"name": "newsletter", "condition": {"field": "tags", "op": "contains",
                                                          "value": "newsletter"}}  # fmt: skip
        segment = _expect(await http.post("/v1/segments", json=newsletter), 201)
        _expect(await http.post(f"/v1/segments/{segment['id']}/refresh"))
        for scorer in ("rfm", "bgnbd", "gamma_gamma"):
            await _scored(http, scorer)


async def _scored(http: httpx.AsyncClient, scorer: str) -> None:
    run = _expect(await http.post("/v1/scoring/runs", json={"scorer": scorer}), 202)
    for _ in range(1200):
        run = _expect(await http.get(f"/v1/scoring/runs/{run['id']}"))
        if run["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    if run["status"] != "succeeded":
        raise RuntimeError(f"the {scorer} run ended {run['status']}: {run.get('error')}")


# -- the requests ----------------------------------------------------------------------


async def graphql_page(http: httpx.AsyncClient, customer_id: str) -> None:
    body = _expect(
        await http.post("/graphql", json={"query": PAGE, "variables": {"id": customer_id}})
    )
    if "errors" in body or body["data"]["customer"] is None:
        raise RuntimeError(f"the GraphQL page failed: {str(body)[:500]}")


async def rest_sequence(http: httpx.AsyncClient, customer_id: str) -> None:
    for path in REST_PAGE:
        found = _expect(await http.get(path.format(id=customer_id)))
    for account in found["data"]:
        _expect(await http.get(REST_ENTRIES.format(id=account["id"])))


async def rest_concurrent(http: httpx.AsyncClient, customer_id: str) -> None:
    responses = await asyncio.gather(*(http.get(p.format(id=customer_id)) for p in REST_PAGE))
    accounts = [_expect(r) for r in responses][-1]["data"]
    entries = [http.get(REST_ENTRIES.format(id=a["id"])) for a in accounts]
    for response in await asyncio.gather(*entries):
        _expect(response)


async def graphql_list(http: httpx.AsyncClient, _: str) -> None:
    body = _expect(await http.post("/graphql", json={"query": LIST}))
    if "errors" in body or len(body["data"]["customers"]["edges"]) != LIST_SIZE:
        raise RuntimeError(f"the GraphQL list failed: {str(body)[:500]}")


async def rest_list(http: httpx.AsyncClient, _: str) -> None:
    _expect(await http.get(REST_LIST))


Request = Callable[[httpx.AsyncClient, str], Awaitable[None]]
PAGE_SIDES: dict[str, Request] = {
    "graphql": graphql_page,
    "rest_sequence": rest_sequence,
    "rest_concurrent": rest_concurrent,
}
COUNTED: dict[str, Request] = {
    "graphql_page": graphql_page,
    "rest_page": rest_sequence,
    "graphql_list": graphql_list,
    "rest_list": rest_list,
}


# -- the measurements ------------------------------------------------------------------


async def _statements(url: str, key: str, customer_id: str) -> dict[str, int]:
    """The SQL statements each request of ``COUNTED`` sends, after a warm-up (the key
    verified and cached, asyncpg's type lookups done), counted on the app's connection."""
    settings = Settings(
        database_url=url,
        pool_min_size=1,
        pool_size=1,
        api_key_cache_seconds=3600,
        bootstrap_admin_key=False,
        access_log=False,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(settings)
    sent: list[str] = []
    counts: dict[str, int] = {}
    async with app.router.lifespan_context(app):
        async with app.state.db.pool.acquire() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=headers
        ) as http:
            for name, send in COUNTED.items():
                await send(http, customer_id)
                await asyncio.sleep(0.01)  # asyncpg calls query loggers soon after
                before = len(sent)
                await send(http, customer_id)
                await asyncio.sleep(0.01)
                counts[name] = len(sent) - before
    return counts


async def _page_latencies(
    base_url: str, key: str, customer_ids: list[str], pages: int
) -> dict[str, dict[str, float]]:
    """Each side's latency over ``pages`` random customers, the sides taking turns (and
    turns about who goes first) so that drift of the machine hits them alike."""
    rng = random.Random(20261123)
    timings: dict[str, list[float]] = {name: [] for name in PAGE_SIDES}
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=len(REST_PAGE))
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as http:
        warmup = max(20, pages // 10)
        for n in range(warmup + pages):
            customer_id = rng.choice(customer_ids)
            order = list(PAGE_SIDES.items())
            rng.shuffle(order)
            for name, send in order:
                started = time.perf_counter()
                await send(http, customer_id)
                if n >= warmup:
                    timings[name].append((time.perf_counter() - started) * 1000)
    return {name: report.percentiles(found) for name, found in timings.items()}


def _throughput(results: list[load.LoadResult]) -> dict[str, Any]:
    return {
        "requests_per_s": round(statistics.median(r.requests_per_s for r in results), 1),
        "latency_p50_ms": statistics.median(r.latency_p50_ms for r in results),
        "latency_p99_ms": statistics.median(r.latency_p99_ms for r in results),
        "failed_requests": sum(r.non_2xx_3xx + r.socket_errors for r in results),
        "clean": all(r.clean for r in results),
        "rounds": [r.as_dict() for r in results],
    }


def run(args: argparse.Namespace, wrk: str, url: str, workdir: Path) -> dict[str, Any]:
    log(f"{args.customers:,} customers by COPY")
    page_customers = asyncio.run(_copy_customers(url, args.customers, args.page_customers))
    key = asyncio.run(database.issue_key(url, "bench graphql", "admin"))
    with (
        servers.crm_api(url, args.pool_size, workdir, access_log=True) as app,
        servers.worker(url, workdir, concurrency=4) as worker,
    ):
        log(f"{len(page_customers)} customers given every kind of data, over the API")
        asyncio.run(_give_everything(app.base_url, key, page_customers))
        worker.check()
    asyncio.run(database.settle(url))
    log("SQL statements per request, counted in-process")
    statements = asyncio.run(_statements(url, key, page_customers[0]))
    body, ids = workdir / "graphql_list.json", workdir / "customers.txt"
    body.write_bytes(orjson.dumps({"query": LIST}))
    data.write_ids(ids, page_customers)  # type: ignore[arg-type]
    settings = load.Settings(args.connections, 1, args.duration, args.warmup)
    scripts = {"graphql_list": load.script(workdir, "graphql_post"),
               "rest_list": load.script(workdir, "get_fixed")}  # fmt: skip
    targets = {"graphql_list": [key, str(ids), "/graphql", str(body)],
               "rest_list": [key, str(ids), REST_LIST]}  # fmt: skip
    lists: dict[str, list[load.LoadResult]] = {name: [] for name in scripts}
    with servers.crm_api(url, args.pool_size, workdir, access_log=True) as app:
        log(f"the customer page, {args.pages} times each way, one request at a time")
        page = asyncio.run(_page_latencies(app.base_url, key, page_customers, args.pages))
        for number in range(1, args.rounds + 1):
            log(f"list round {number} of {args.rounds}")
            for name, script in scripts.items():
                lists[name].append(
                    load.measure(
                        wrk, app.base_url, script, targets[name], settings, server_pid=app.pid
                    )
                )
                r = lists[name][-1]
                failed = r.non_2xx_3xx + r.socket_errors
                log(f"  {name}: {r.requests_per_s:,.0f} req/s, p50 {r.latency_p50_ms} ms, "
                    f"failed {failed}")  # fmt: skip
    # A round without requests makes the run invalid (see render); its share counts as 0.
    share = statistics.median(
        g.requests_per_s / r.requests_per_s if r.requests_per_s else 0.0
        for g, r in zip(lists["graphql_list"], lists["rest_list"], strict=True)
    )
    return {
        "settings": vars(args),
        "statements_per_request": statements,
        "page_latency": page,
        "page_ratio": round(page["graphql"]["p50_ms"] / page["rest_sequence"]["p50_ms"], 3),
        "lists": {name: _throughput(results) for name, results in lists.items()},
        "list_share_of_rest": round(share, 3),
    }


def render(results: dict[str, Any]) -> tuple[str, bool, list[Headline]]:
    page, counts, lists = (
        results["page_latency"],
        results["statements_per_request"],
        results["lists"],
    )
    rest_p50 = page["rest_sequence"]["p50_ms"]
    page_rows = [
        Row(
            label,
            (f"{page[name]['p50_ms']:.1f}", f"{page[name]['p90_ms']:.1f}", str(counts[counted])),
            page[name]["p50_ms"] / rest_p50,
        )
        for name, label, counted in (
            ("rest_sequence", "(r) REST: 10+ calls, one after the other", "rest_page"),
            ("rest_concurrent", "REST: the same calls, concurrently", "rest_page"),
            ("graphql", "GraphQL: one query", "graphql_page"),
        )
    ]
    page_headline = Headline(
        "customer page, GraphQL: one query (p50)",
        page["graphql"]["p50_ms"],
        "ms",
        rest_p50,
        "REST calls in sequence",
        results["page_ratio"],
        f"ratio <= {RATIO_TARGET:.2f}",
        results["page_ratio"] <= RATIO_TARGET,
    )
    list_headline = Headline(
        f"customer list, GraphQL: {LIST_SIZE} customers + {LIST_TIMELINE} interactions each",
        lists["graphql_list"]["requests_per_s"],
        "req/s",
        lists["rest_list"]["requests_per_s"],
        f"REST list of {LIST_SIZE}",
        results["list_share_of_rest"],
    )
    list_rows = [
        Row(
            label,
            (
                f"{lists[name]['requests_per_s']:,.0f}",
                f"{lists[name]['latency_p50_ms']:.1f}",
                str(counts[name]),
                str(lists[name]["failed_requests"]),
            ),
            share,
            valid=lists[name]["clean"],
        )
        for name, label, share in (
            ("rest_list", f"(l) REST: {LIST_SIZE} customers", 1.0),
            (
                "graphql_list",
                f"GraphQL: {LIST_SIZE} customers + {LIST_TIMELINE} interactions each",
                results["list_share_of_rest"],
            ),
        )
    ]
    valid = all(row.valid for row in list_rows)
    text = "\n\n".join(
        [
            report.section("Customer page", ("p50 ms", "p90 ms", "SQL"), page_rows, vs="(r)"),
            f"GraphQL p50 / REST sequence p50: {results['page_ratio']:.2f}, target <= "
            f"{RATIO_TARGET:.2f}: {page_headline.verdict}",
            report.section(
                "Customer list", ("req/s", "p50 ms", "SQL", "failed"), list_rows, vs="(l)"
            ),
        ]
    )
    return text, valid, [page_headline, list_headline]


@report.failures_recorded("graphql")
def main(argv: list[str] | None = None) -> int:
    return wrk_suite.main(options(argv), run, render, name="graphql", invalid="failed requests")


if __name__ == "__main__":
    raise SystemExit(main())
