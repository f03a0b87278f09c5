"""Segments and scoring at scale: ``python -m bench.scale`` (``make bench-scale``).

Fills a fresh database with synthetic customers and their timelines (bench/crm_data.py,
default 1M customers, ~10M interactions), then measures, in the same run:

* a ``bgnbd`` scoring run end to end as the worker executes it (features over the whole
  timeline, the fit, every customer's score written, churn events): target under 60 s;
* refreshing a behavioural rule segment ("bought vegetarian items at least twice in 90
  days") through the service, against the same logic written by hand as one SQL
  statement that materialises the members: target at most 1.5x its time. The refresh
  also diffs against the stored members, keeps their history and writes an event per
  entry; the hand-written statement only replaces the member set.
"""

import argparse
import asyncio
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench import crm_data, database, report
from bench.report import Headline
from bench.runner import log
from crm_api.core.auth import Principal
from crm_api.core.db import Database
from crm_api.scoring import runner as scoring_runner
from crm_api.scoring import service as scoring
from crm_api.scoring.schemas import RunCreate
from crm_api.segments import service as segments
from crm_api.segments.schemas import SegmentCreate

NAME = "scale"  # bench/results/scale.json
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
RUN_SECONDS_TARGET = 60.0
REFRESH_RATIO_TARGET = 1.5
# "In the last 90 days" as of the data's end, as fixed dates: a window sliding with the
# clock would let the two sides see different customers at its edge.
WINDOW_START = (AS_OF - timedelta(days=90)).isoformat()
VEGETARIANS = {
    "interactions": {
        "type": "purchase",
        "category": "vegetarian",
        "since": WINDOW_START,
        "count": {"gte": 2},
    }
}
# The same membership, by hand: customers with two or more purchases in the last 90 days
# that had a vegetarian line item, written into a new table of members.
BY_HAND = """
CREATE UNLOGGED TABLE bench_members AS
SELECT i.customer_id
FROM interactions i
JOIN interaction_items it ON it.customer_id = i.customer_id AND it.interaction_id = i.id
JOIN customers c ON c.id = i.customer_id AND c.deleted_at IS NULL
WHERE i.type = 'purchase' AND it.category = 'vegetarian'
  AND i.occurred_at >= '{since}'
GROUP BY i.customer_id
HAVING count(DISTINCT i.id) >= 2
"""


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--purchases",
        type=float,
        default=1.7,
        help="scale of purchases per customer (1.7: ~3.4 purchases, ~10 interactions)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each measure")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


async def scoring_run(db: Database, principal: Any) -> dict[str, Any]:
    """One bgnbd run, queued as the API queues it and executed as the worker does."""
    async with db.transaction() as conn:
        run = await scoring.create_run(
            conn,
            principal,
            RunCreate(scorer="bgnbd", observation_end=AS_OF.date(), time_unit="weeks"),
        )
    started = time.perf_counter()
    assert await scoring_runner.run_next(db, churn_threshold=0.7)
    seconds = time.perf_counter() - started
    async with db.connection() as conn:
        done = await scoring.get_run(conn, run.id)
    if done.status != "succeeded":
        raise RuntimeError(f"the scoring run failed: {done.error}")
    return {"seconds": seconds, "customers_scored": done.customers_scored}


async def segment_refreshes(db: Database, rounds: int) -> dict[str, Any]:
    """Best times of the segment's refresh (into an empty membership, as a new segment's
    first refresh is) and of the hand-written statement, interleaved."""
    principal = Principal(key_id=uuid.uuid4(), name="bench", scopes=frozenset({"pii:read"}))
    first_seconds, service_seconds, hand_seconds, members = [], [], [], 0
    for n in range(rounds):
        async with db.transaction() as conn:
            segment = await segments.create_segment(
                conn,
                principal,
                SegmentCreate(
                    name=f"vegetarians {n}", condition=VEGETARIANS, refresh_interval=None
                ),
            )
        started = time.perf_counter()
        async with db.transaction() as conn:
            report_ = await segments.refresh_segment(conn, segment.id)
        first_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with db.transaction() as conn:  # the usual case: little or nothing changed
            await segments.refresh_segment(conn, segment.id)
        service_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with db.transaction() as conn:
            await conn.execute(BY_HAND.format(since=WINDOW_START))
        hand_seconds.append(time.perf_counter() - started)
        async with db.transaction() as conn:
            by_hand = await conn.fetchval("SELECT count(*) FROM bench_members")
            await conn.execute("DROP TABLE bench_members")
        members = report_.members
        if by_hand != members:
            raise RuntimeError(f"the refresh found {members} members, the statement {by_hand}")
        log(
            f"  refresh {n + 1}: first {first_seconds[-1]:.2f} s, again "
            f"{service_seconds[-1]:.2f} s; by hand {hand_seconds[-1]:.2f} s"
        )
    return {
        "members": members,
        "first_refresh_seconds": min(first_seconds),
        "first_ratio": min(first_seconds) / min(hand_seconds),
        "refresh_seconds": min(service_seconds),
        "by_hand_seconds": min(hand_seconds),
        "ratio": min(service_seconds) / min(hand_seconds),
    }


def headlines(
    counts: dict[str, int], runs: list[dict[str, Any]], refresh: dict[str, Any]
) -> list[Headline]:
    best = min(r["seconds"] for r in runs)
    return [
        Headline(
            f"bgnbd scoring run, {counts['customers']:,} customers (best)",
            round(best, 2),
            "s",
            target=f"< {RUN_SECONDS_TARGET:.0f} s",
            met=best < RUN_SECONDS_TARGET,
        ),
        Headline(
            f"segment refresh, {refresh['members']:,} members (best)",
            round(refresh["refresh_seconds"], 3),
            "s",
            round(refresh["by_hand_seconds"], 3),
            "the same SQL by hand",
            round(refresh["ratio"], 3),
            f"ratio <= {REFRESH_RATIO_TARGET:.2f}",
            refresh["ratio"] <= REFRESH_RATIO_TARGET,
        ),
    ]


async def main_async(args: argparse.Namespace) -> int:
    principal = Principal(key_id=uuid.uuid4(), name="bench", scopes=frozenset())
    with database.server() as pg:
        url = await database.create(pg)
        try:
            server = await database.about(pg, url)
            conn = await asyncpg.connect(url)
            try:
                log(f"generating {args.customers:,} customers and their timelines")
                started = time.perf_counter()
                counts = await crm_data.generate(
                    conn, customers=args.customers, mean_purchases=args.purchases, as_of=AS_OF
                )
                log(f"  {counts} in {time.perf_counter() - started:.0f} s")
            finally:
                await conn.close()
            db = await Database.connect(url, min_size=1, max_size=4, statement_timeout_ms=0)
            try:
                refresh = await segment_refreshes(db, args.rounds)
                runs = []
                for n in range(args.rounds):
                    runs.append(await scoring_run(db, principal))
                    log(f"  bgnbd run {n + 1}: {runs[-1]['seconds']:.1f} s")
            finally:
                await db.close()
        finally:
            await database.drop(pg, url)
    best = min(r["seconds"] for r in runs)
    print(
        f"bgnbd run, {counts['customers']:,} customers / {counts['interactions']:,} "
        f"interactions: best of {len(runs)} {best:.1f} s (target < {RUN_SECONDS_TARGET:.0f} s)"
    )
    print(
        f"segment refresh, {refresh['members']:,} members, against the statement by hand "
        f"({refresh['by_hand_seconds']:.2f} s): again {refresh['refresh_seconds']:.2f} s, "
        f"{refresh['ratio']:.2f}x (target <= {REFRESH_RATIO_TARGET}x); the first, writing "
        f"every entry with its history and event, {refresh['first_refresh_seconds']:.2f} s, "
        f"{refresh['first_ratio']:.2f}x"
    )
    found = headlines(counts, runs, refresh)
    passed = report.all_met(found)
    results = {
        "settings": vars(args),
        **server,
        "counts": counts,
        "scoring_runs": runs,
        "segment_refresh": refresh,
        "passed": passed,
    }
    print(f"\nresults: {report.write(NAME, results, found)}")
    return 1 if args.check and not passed else 0


@report.failures_recorded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    try:
        return asyncio.run(main_async(args))
    except RuntimeError as exc:  # the scoring run failed, or the two memberships differ
        print(f"benchmark failed: {exc}", file=sys.stderr)
        report.failed(NAME, str(exc), vars(args))
        return 1


if __name__ == "__main__":
    sys.exit(main())
