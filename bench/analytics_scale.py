"""Analytics at scale: ``python -m bench.analytics_scale`` (``make bench-analytics``).

Fills a fresh database with 1M customers and ~10M interactions generated inside PostgreSQL
(generate_series; ~30% purchases of 1-4 lines over SKUs and categories of skewed
popularity, some refunds, feedback with NPS and CSAT), then measures, over HTTP against
`crm-api serve` (one worker) unless said otherwise:

* the KPIs of a full year (`GET /v1/analytics/kpis`): target under 5 s, once the worker
  has rolled the history up into the KPIs' daily totals (the first roll is timed too);
* the refresh of the stored recommendation rules, as the worker runs it (in-process,
  both levels): target under 30 s; and the live affinity computation
  (`GET /v1/analytics/affinities`), which the refresh spares the recommendations;
* `GET /v1/customers/{id}/recommendations`, one request at a time: p50;
* `GET /v1/customers/{id}/profile`, one request at a time: target p50 under 20 ms
  (skipped, with a note, while the route does not exist).

The baseline, measured in the same run, is one full sequential scan of `interactions`:
every figure is also given as a multiple of it, so machines can be compared.
"""

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import crm_data, database, report, servers
from bench.report import Headline
from bench.runner import log
from crm_api.analytics import daily_totals, stored_rules
from crm_api.core.db import Database
from crm_api.interactions import service as interactions

NAME = "analytics"  # bench/results/analytics.json
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
YEAR = {"from": (AS_OF - timedelta(days=365)).isoformat(), "to": AS_OF.isoformat()}
KPI_SECONDS_TARGET = 5.0
REFRESH_SECONDS_TARGET = 30.0
PROFILE_P50_MS_TARGET = 20.0
PROFILE_PATH = "/v1/customers/{customer_id}/profile"
PER_CUSTOMER = ("recommendations", "profile")

# Per customer a number of interactions (exponential, mean `$1`), each a purchase with
# probability 0.30, a refund 0.015, feedback 0.055, else another kind of contact.
INTERACTIONS = """
WITH people AS (
    SELECT id, created_at, 1 + floor(-ln(1 - random()) * ($1::float - 1))::int AS n
    FROM customers
), drawn AS (
    SELECT p.id, p.created_at, random() AS r, random() AS u
    FROM people p CROSS JOIN LATERAL generate_series(1, p.n)
)
INSERT INTO interactions (customer_id, id, type, channel, direction, occurred_at, amount,
                          currency, nps, csat, recorded_at)
SELECT d.id, gen_random_uuid(), t.type,
       (ARRAY['email','web','app','phone','in_person','chat'])[1 + floor(d.u * 6)::int],
       CASE WHEN t.type = 'email' THEN 'outbound' ELSE 'inbound' END,
       d.created_at + ($2::timestamptz - d.created_at) * d.u,
       CASE WHEN t.type IN ('purchase', 'refund') THEN (500 + floor(d.u * 20000))::bigint END,
       CASE WHEN t.type IN ('purchase', 'refund') THEN 'EUR' END,
       CASE WHEN t.type = 'feedback' THEN floor(d.r * 1000)::int % 11 END,
       CASE WHEN t.type = 'feedback' THEN 1 + floor(d.r * 1000)::int % 5 END,
       $2::timestamptz
FROM drawn d
CROSS JOIN LATERAL (
    SELECT CASE WHEN d.r < 0.30 THEN 'purchase' WHEN d.r < 0.315 THEN 'refund'
                WHEN d.r < 0.37 THEN 'feedback'
                ELSE (ARRAY['email','web','app','visit','support','chat'])
                         [1 + floor((d.r - 0.37) / 0.63 * 6)::int]
           END AS type
) t
"""

# 1-4 lines per purchase. The first SKU is drawn with a cubic skew over 2,000 SKUs (SKU 0
# in ~8% of baskets), the next ones near it, so neighbours sell together; a SKU's category
# is its power-of-two band, from 1 SKU to 977, so categories are skewed as well. Three SKUs
# in four have a unit cost, 60-80% of the price; the others none, as when costs are unknown.
ITEMS = """
WITH purchases AS (
    SELECT customer_id, id, amount, 1 + (abs(hashtext(id::text)) % 4) AS lines,
           floor(power(random(), 3) * 2000)::int AS first_sku
    FROM interactions WHERE type = 'purchase'
)
INSERT INTO interaction_items (customer_id, interaction_id, line, sku, name, category,
                               quantity, unit_price, unit_cost)
SELECT p.customer_id, p.id, l.line, 'SKU-' || s.sku, 'Article ' || s.sku,
       (ARRAY['vegetarian','meat','dairy','bakery','drinks','household','books','toys',
              'garden','beauty','electronics'])[1 + floor(log(2, s.sku + 1))::int],
       1 + s.sku % 3, s.price,
       CASE WHEN s.sku % 4 <> 3 THEN s.price * (60 + s.sku % 21) / 100 END
FROM purchases p
CROSS JOIN LATERAL generate_series(1, p.lines) l(line)
CROSS JOIN LATERAL (
    SELECT (p.first_sku + (l.line - 1) * (1 + abs(hashtext(p.id::text || l.line)) % 7))
           % 2000 AS sku,
           greatest(1, p.amount / p.lines) AS price
) s
"""


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.analytics_scale", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--interactions", type=float, default=10.0, help="mean interactions per customer"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of the slow calls")
    parser.add_argument("--requests", type=int, default=300, help="per-customer calls timed")
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


async def generate(url: str, customers: int, per_customer: float) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        for name, statement, args in (
            ("customers", crm_data.CUSTOMERS, (customers, AS_OF)),
            ("interactions", INTERACTIONS, (per_customer, AS_OF)),
            ("line items", ITEMS, ()),
            # as the write paths store them (the data is made in SQL, not through the API)
            ("item costs", interactions.ITEM_FIGURES_FROM_ITEMS, ()),
            # That UPDATE moved every purchase row away from its customer's other rows and
            # left the table a third larger; the service writes the figures with the row.
            # Rewriting in primary-key order restores the layout the generator makes (a
            # customer's rows together), as every earlier run of this benchmark had it.
            ("rewrite", "CLUSTER interactions USING pk_interactions", ()),
        ):
            started = time.perf_counter()
            await conn.execute(statement, *args)
            log(f"  {name} in {time.perf_counter() - started:.0f} s")
        await conn.execute("VACUUM ANALYZE customers, interactions, interaction_items")
        return {
            "customers": customers,
            **{
                kind: await conn.fetchval("SELECT count(*) FROM interactions WHERE type = $1", kind)
                for kind in ("purchase", "refund", "feedback")
            },
            "interactions": await conn.fetchval("SELECT count(*) FROM interactions"),
            "interaction_items": await conn.fetchval("SELECT count(*) FROM interaction_items"),
        }
    finally:
        await conn.close()


async def roll_totals(url: str) -> float:
    """Seconds of the worker's first roll of the KPIs' daily totals: the history was
    written straight to SQL, so they hold none of it yet."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await daily_totals.roll(conn)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def sequential_scan(url: str, rounds: int) -> float:
    """Best time of one full sequential scan of interactions (the baseline)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET enable_indexonlyscan = off; SET enable_bitmapscan = off")
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            await conn.fetchval("SELECT count(*) FROM interactions WHERE amount IS NULL")
            times.append(time.perf_counter() - started)
        return min(times)
    finally:
        await conn.close()


async def refreshes(url: str, rounds: int) -> list[dict[str, Any]]:
    """The rules refresh as the worker runs it, `rounds` times."""
    db = await Database.connect(url, min_size=1, max_size=2, statement_timeout_ms=0)
    try:
        done = []
        for _ in range(rounds):
            started = time.perf_counter()
            levels = await stored_rules.refresh(db.pool, older_than=timedelta(0), wait=True)
            assert levels is not None
            done.append(
                {
                    "seconds": time.perf_counter() - started,
                    "levels": {
                        lv.level.value: {"baskets": lv.baskets, "rules": lv.rules} for lv in levels
                    },
                }
            )
            log(f"  refresh: {done[-1]['seconds']:.1f} s {done[-1]['levels']}")
        return done
    finally:
        await db.close()


async def _timed(http: httpx.AsyncClient, path: str, **params: Any) -> tuple[float, int]:
    """Seconds and status; status 0 when the connection failed."""
    started = time.perf_counter()
    try:
        status = (await http.get(path, params=params)).status_code
    except httpx.HTTPError:
        status = 0
    return time.perf_counter() - started, status


async def slow_calls(http: httpx.AsyncClient, rounds: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, path, params in (
        ("kpis_year", "/v1/analytics/kpis", YEAR),
        ("affinities_live", "/v1/analytics/affinities", {}),
    ):
        calls = [await _timed(http, path, **params) for _ in range(rounds)]
        found[name] = {
            "seconds": [round(s, 3) for s, _ in calls],
            "statuses": [status for _, status in calls],
        }
        log(f"  {name}: {found[name]}")
    return found


async def per_customer(
    http: httpx.AsyncClient, path: str, customer_ids: list[str], requests: int
) -> dict[str, Any]:
    """Latency of `path` for random customers, one request at a time, after a warm-up."""
    rng = random.Random(20261203)
    timings, statuses = [], set()
    warmup = max(20, requests // 10)
    for n in range(warmup + requests):
        seconds, status = await _timed(http, path.format(customer_id=rng.choice(customer_ids)))
        statuses.add(status)
        if n >= warmup:
            timings.append(seconds * 1000)
    return {**report.percentiles(timings), "statuses": sorted(statuses)}


async def measure(base_url: str, key: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        # Customers with a purchase, as those recommendations and profiles have most to do.
        sample = await conn.fetch(
            "SELECT DISTINCT customer_id FROM interactions TABLESAMPLE SYSTEM (1) "
            "WHERE type = 'purchase' LIMIT 5000"
        )
    finally:
        await conn.close()
    customer_ids = [str(r["customer_id"]) for r in sample]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300) as http:
        found = await slow_calls(http, args.rounds)
        found["recommendations"] = await per_customer(
            http, "/v1/customers/{customer_id}/recommendations", customer_ids, args.requests
        )
        log(f"  recommendations: {found['recommendations']}")
        paths = (await http.get("/openapi.json")).json()["paths"]
        if PROFILE_PATH in paths:
            found["profile"] = await per_customer(http, PROFILE_PATH, customer_ids, args.requests)
            log(f"  profile: {found['profile']}")
        else:
            found["profile"] = None
            log("  profile: skipped, the route does not exist yet")
    return found


async def run(args: argparse.Namespace, url: str, workdir: Path) -> dict[str, Any]:
    log(f"generating {args.customers:,} customers, ~{args.interactions:g} interactions each")
    started = time.perf_counter()
    counts = await generate(url, args.customers, args.interactions)
    log(f"  {counts} in {time.perf_counter() - started:.0f} s")
    rolled = await roll_totals(url)
    log(f"the KPIs' daily totals, first roll over all history: {rolled:.1f} s")
    await database.settle(url)
    baseline = await sequential_scan(url, args.rounds)
    log(f"baseline, a sequential scan of interactions: {baseline:.2f} s")
    log("the rules refresh")
    refreshed = await refreshes(url, max(1, args.rounds - 1))
    key = await database.issue_key(url, "bench analytics", "admin")
    with servers.crm_api(url, args.pool_size, workdir, access_log=False) as app:
        log("over HTTP")
        found = await measure(app.base_url, key, url, args)
        if any(found[name] and found[name]["statuses"] != [200] for name in PER_CUSTOMER):
            log("the server's log ends:\n" + "\n".join(app.log.read_text().splitlines()[-20:]))
    return {
        "settings": vars(args),
        "counts": counts,
        "sequential_scan_seconds": round(baseline, 3),
        "totals_first_roll_seconds": round(rolled, 3),
        "refresh": refreshed,
        **found,
    }


def render(results: dict[str, Any]) -> tuple[str, list[Headline]]:
    """The table, and the headlines with their targets."""
    scan = results["sequential_scan_seconds"]
    kpis = results["kpis_year"]
    affinities = results["affinities_live"]
    refresh = min(r["seconds"] for r in results["refresh"])
    rows = [
        ("KPIs, a full year", min(kpis["seconds"]), kpis["statuses"], KPI_SECONDS_TARGET),
        ("daily totals, first roll", results["totals_first_roll_seconds"], [], None),
        ("rules refresh (both levels)", refresh, [], REFRESH_SECONDS_TARGET),
        ("affinities computed live", min(affinities["seconds"]), affinities["statuses"], None),
    ]
    counts = results["counts"]
    size = f"{counts['customers']:,} customers"
    lines = [
        f"{counts['customers']:,} customers, {counts['interactions']:,} interactions "
        f"({counts['purchase']:,} purchases, {counts['interaction_items']:,} lines); baseline "
        f"a sequential scan of interactions {scan:.2f} s",
        f"{'':32}{'s':>9}{'x scan':>9}{'target':>10}{'result':>8}  statuses",
    ]
    found = []
    for label, seconds, statuses, target in rows:
        headline = Headline(
            f"{label}, {size}",
            round(seconds, 3),
            "s",
            scan,
            "sequential scan of interactions",
            round(seconds / scan, 3),
            None if target is None else f"< {target:g} s",
            None if target is None else seconds < target and set(statuses) <= {200},
        )
        found.append(headline)
        limit = "-" if target is None else f"<{target:g} s"
        lines.append(
            f"{label:32}{seconds:9.2f}{seconds / scan:9.2f}{limit:>10}{headline.verdict:>8}  "
            f"{','.join(map(str, statuses)) or '-'}"
        )
    recommendations = results["recommendations"]
    found.append(Headline(f"recommendations, {size} (p50)", recommendations["p50_ms"], "ms"))
    lines.append(
        f"{'recommendations, p50 / p99 ms':32}{recommendations['p50_ms']:9.2f}"
        f"{recommendations['p99_ms']:9.2f}{'-':>10}{'-':>8}  {recommendations['statuses']}"
    )
    profile = results["profile"]
    if profile is None:
        lines.append(f"{'profile':32}  skipped: GET {PROFILE_PATH} does not exist yet")
    else:
        headline = Headline(
            f"profile, {size} (p50)",
            profile["p50_ms"],
            "ms",
            target=f"< {PROFILE_P50_MS_TARGET:g} ms",
            met=profile["p50_ms"] < PROFILE_P50_MS_TARGET and profile["statuses"] == [200],
        )
        found.append(headline)
        lines.append(
            f"{'profile, p50 / p99 ms':32}{profile['p50_ms']:9.2f}{profile['p99_ms']:9.2f}"
            f"{f'<{PROFILE_P50_MS_TARGET:g} ms':>10}{headline.verdict:>8}  "
            f"{profile['statuses']}"
        )
    return "\n".join(lines), found


@report.failures_recorded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch, database.server() as pg:
        url = asyncio.run(database.create(pg))
        try:
            found = asyncio.run(run(args, url, Path(scratch)))
            server = asyncio.run(database.about(pg, url))
        except servers.ServerFailed as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            report.failed(NAME, str(exc), vars(args))
            return 1
        finally:
            asyncio.run(database.drop(pg, url))
    text, headlines = render(found)
    passed = report.all_met(headlines)
    path = report.write(NAME, {**server, **found, "passed": passed}, headlines)
    print(text)
    print(f"\nresults: {path}")
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
