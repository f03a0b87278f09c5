"""``python -m bench.loyalty``: earn/redeem throughput against the ceiling in the same run.

Two loads, each half earns (5 points) and half redeems (1 point) over real HTTP at wrk's
concurrency: spread over many distinct accounts (``--accounts``, default 10,000), and all
on one hot account, where every write waits for the account's row lock. After the run the
books of every account are checked: balance == sum of its ledger == sum of its lots, and
the hot account's ledger is a gapless chain. A run whose books do not balance fails.
"""

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import data, database, load, report, servers, wrk_suite
from bench.report import Headline, Row

DISTINCT_MINIMUM = 0.35  # share of the ceiling's req/s
HOT_MINIMUM_OPS = 300.0  # operations per second on one account
FUNDING = 1_000_000_000  # points per account: redeems of 1 never run out
_started = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loyalty", description=__doc__)
    add = parser.add_argument
    add("--accounts", type=int, default=10_000, help="distinct accounts (default 10000)")
    add("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    add("--duration", type=int, default=5, help="seconds measured per load and round")
    add("--warmup", type=int, default=2, help="seconds of warm-up before each measurement")
    add("--connections", type=int, default=32, help="wrk connections (default 32)")
    add("--pool-size", type=int, default=20, help="database pool of each server (default 20)")
    add("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


async def _seed_customers(url: str, count: int) -> list[Any]:
    people = data.customers(count)
    records = data.copy_records(people, data.ndjson_lines(people))
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "customers", records=records, columns=list(data.COPY_COLUMNS)
        )
        return [r["id"] for r in await conn.fetch("SELECT id FROM customers ORDER BY id")]
    finally:
        await conn.close()


async def _open_accounts(base_url: str, key: str, customer_ids: list[Any]) -> list[str]:
    """A programme, an account per customer, each funded with one earn: all over the API."""
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as http:
        program = await http.post(
            "/v1/loyalty/programs",
            json={"name": "bench", "currency": "EUR", "points_per_unit": "1"},
        )
        _expect(program, 201, "creating the programme")
        gate = asyncio.Semaphore(32)

        async def open_one(customer_id: Any) -> str:
            async with gate:
                account = await http.post(
                    "/v1/loyalty/accounts",
                    json={"customer_id": str(customer_id), "program_id": program.json()["id"]},
                )
                _expect(account, 201, "enrolling")
                account_id = account.json()["id"]
                funded = await http.post(
                    f"/v1/loyalty/accounts/{account_id}/earn",
                    json={"points": FUNDING, "reference": "funding"},
                )
                _expect(funded, 201, "funding")
                return str(account_id)

        return list(await asyncio.gather(*(open_one(c) for c in customer_ids)))


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:500]}")


BOOKS = """
WITH ledger AS (
    SELECT account_id, sum(points) AS points, count(*) AS entries, max(seq) AS last_seq
    FROM loyalty_entries GROUP BY account_id
), lots AS (
    SELECT account_id, sum(remaining) AS remaining FROM loyalty_lots GROUP BY account_id
)
SELECT count(*) AS accounts,
       count(*) FILTER (
           WHERE a.balance <> ledger.points OR a.balance <> lots.remaining
              OR ledger.entries <> ledger.last_seq OR a.balance < 0
       ) AS unbalanced,
       sum(ledger.entries) AS entries
FROM loyalty_accounts a JOIN ledger ON ledger.account_id = a.id
JOIN lots ON lots.account_id = a.id
"""


async def _books(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(BOOKS)
    finally:
        await conn.close()
    return {k: int(v) for k, v in row.items()}


def _summary(results: list[load.LoadResult]) -> dict[str, Any]:
    return {
        "requests_per_s": round(statistics.median(r.requests_per_s for r in results), 1),
        "latency_p50_ms": statistics.median(r.latency_p50_ms for r in results),
        "latency_p99_ms": statistics.median(r.latency_p99_ms for r in results),
        "failed_requests": sum(r.non_2xx_3xx + r.socket_errors for r in results),
        "rounds": [r.as_dict() for r in results],
    }


def run(args: argparse.Namespace, wrk: str, url: str, workdir: Path) -> dict[str, Any]:
    log(f"{args.accounts:,} customers by COPY")
    customer_ids = asyncio.run(_seed_customers(url, args.accounts))
    key = asyncio.run(database.issue_key(url, "bench loyalty", "loyalty:write"))
    customers_file, accounts_file, hot_file = (
        workdir / f"{n}.txt" for n in ("customers", "accounts", "hot")
    )
    data.write_ids(customers_file, customer_ids)
    settings = load.Settings(args.connections, 1, args.duration, args.warmup)
    loads: dict[str, list[load.LoadResult]] = {"ceiling": [], "distinct": [], "hot": []}
    with servers.crm_api(url, args.pool_size, workdir, access_log=True) as app:
        log("a programme and an account per customer, funded, over the API")
        accounts = asyncio.run(_open_accounts(app.base_url, key, customer_ids))
    data.write_ids(accounts_file, accounts)
    data.write_ids(hot_file, accounts[:1])
    asyncio.run(database.settle(url))
    mixed, ceiling_script = (load.script(workdir, n) for n in ("loyalty_mixed", "get_customer"))
    for number in range(1, args.rounds + 1):
        log(f"round {number} of {args.rounds}")
        with servers.ceiling(url, args.pool_size, workdir) as ceiling:
            loads["ceiling"].append(
                load.measure(
                    wrk,
                    ceiling.base_url,
                    ceiling_script,
                    ["-", str(customers_file), "/customers"],
                    settings,
                    server_pid=ceiling.pid,
                )
            )
        with servers.crm_api(url, args.pool_size, workdir, access_log=True) as app:
            for name, ids in (("distinct", accounts_file), ("hot", hot_file)):
                loads[name].append(
                    load.measure(
                        wrk,
                        app.base_url,
                        mixed,
                        [key, str(ids), "/v1/loyalty/accounts"],
                        settings,
                        server_pid=app.pid,
                    )
                )
        for name, results in loads.items():
            r = results[-1]
            failed = r.non_2xx_3xx + r.socket_errors
            log(
                f"  {name}: {r.requests_per_s:,.0f} req/s, p50 {r.latency_p50_ms} ms, "
                f"p99 {r.latency_p99_ms} ms, failed {failed}"
            )
    books = asyncio.run(_books(url))
    share = statistics.median(
        d.requests_per_s / c.requests_per_s
        for d, c in zip(loads["distinct"], loads["ceiling"], strict=True)
    )
    return {
        "settings": vars(args),
        "throughput": {name: _summary(results) for name, results in loads.items()},
        "distinct_share_of_ceiling": round(share, 3),
        "hot_ops_per_s": _summary(loads["hot"])["requests_per_s"],
        "books": books,
    }


def headlines(results: dict[str, Any]) -> list[Headline]:
    throughput, share = results["throughput"], results["distinct_share_of_ceiling"]
    hot = results["hot_ops_per_s"]
    return [
        Headline(
            f"earn/redeem, {results['settings']['accounts']:,} accounts",
            throughput["distinct"]["requests_per_s"],
            "req/s",
            throughput["ceiling"]["requests_per_s"],
            "ceiling (a)",
            share,
            f"ratio >= {DISTINCT_MINIMUM:.2f}",
            share >= DISTINCT_MINIMUM,
        ),
        Headline(
            "earn/redeem, one hot account",
            hot,
            "ops/s",
            target=f">= {HOT_MINIMUM_OPS:,.0f} ops/s",
            met=hot >= HOT_MINIMUM_OPS,
        ),
    ]


def render(results: dict[str, Any]) -> tuple[str, bool, list[Headline]]:
    books = results["books"]
    balanced = books["unbalanced"] == 0 and books["accounts"] > 0
    throughput = results["throughput"]
    valid = balanced and all(t["failed_requests"] == 0 for t in throughput.values())
    labels = {
        "ceiling": "(a) ceiling: Starlette + asyncpg, GET by id",
        "distinct": f"earn/redeem, {results['settings']['accounts']:,} accounts",
        "hot": "earn/redeem, one hot account",
    }
    rows = []
    for name, label in labels.items():
        t = throughput[name]
        cells = (
            f"{t['requests_per_s']:,.0f}",
            f"{t['latency_p50_ms']:.1f}",
            f"{t['latency_p99_ms']:.1f}",
            str(t["failed_requests"]),
        )
        share = {"ceiling": 1.0, "distinct": results["distinct_share_of_ceiling"]}.get(name)
        target = DISTINCT_MINIMUM if name == "distinct" else None
        rows.append(Row(label, cells, share, target, t["failed_requests"] == 0))
    distinct, hot = headlines(results)
    text = "\n\n".join(
        [
            report.section(
                "Loyalty writes", ("req/s", "p50 ms", "p99 ms", "failed"), rows, vs="(a)"
            ),
            f"one hot account: {results['hot_ops_per_s']:,.0f} ops/s, target >= "
            f"{HOT_MINIMUM_OPS:.0f}: {hot.verdict}",
            f"books: {books['accounts']:,} accounts, {books['entries']:,} entries, "
            f"{books['unbalanced']} unbalanced: {'BALANCED' if balanced else 'NOT BALANCED'}",
        ]
    )
    return text, valid, [distinct, hot]


@report.failures_recorded("loyalty")
def main(argv: list[str] | None = None) -> int:
    return wrk_suite.main(
        options(argv),
        run,
        render,
        name="loyalty",
        invalid="failed requests or unbalanced books",
    )


if __name__ == "__main__":
    raise SystemExit(main())
