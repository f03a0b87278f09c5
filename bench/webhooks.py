"""Webhook delivery: throughput and commit -> receiver latency of one ``crm-api worker``.

``python -m bench.webhooks`` (``make bench-webhooks``) starts a receiver that answers 200
at once (bench/receiver.py), subscribes one endpoint to ``*`` at it, starts ONE worker and:

* throughput, per round: a plain httpx client posts the same bodies to the receiver at
  the worker's concurrency (the baseline: what a client can push through this receiver
  on this machine right now), then events are committed in batches while the worker runs
  and deliveries/s is taken from the first to the last arrival at the receiver;
* latency: with the worker idle, single events are committed one at a time, 50-100 ms
  apart, and each is timed from the return of its COMMIT to its arrival.

Every delivery is checked to arrive exactly once (per ``webhook-id``). See bench/README.md.
"""

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import database, load, outbox, report, servers
from bench.report import Headline
from bench.runner import busy_warning, log
from crm_api.config import Settings
from crm_api.core.ids import new_id
from crm_api.webhooks.queue import body
from crm_api.webhooks.signing import signature_header

NAME = "webhooks"  # bench/results/webhooks.json
TARGET_DELIVERIES_PER_S = 500.0
TARGET_MEDIAN_LATENCY_MS = 1000.0
# What `crm-api worker` runs with unless configured otherwise.
WORKER_CONCURRENCY: int = Settings.model_fields["worker_concurrency"].default
WORKER_BATCH: int = Settings.model_fields["worker_batch_size"].default
POLL_SECONDS = 0.1
IDLE_SECONDS = 2.0  # longer than the worker's 1 s safety-net poll: it is asleep on LISTEN
STARTUP_TIMEOUT_SECONDS = 60.0


class DeliveryFailed(RuntimeError):
    pass


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webhooks",
        description="Webhook delivery throughput and commit-to-receiver latency of one "
        "`crm-api worker` against a local receiver. Database: as for `python -m bench`.",
    )
    add = parser.add_argument
    add("--events", type=int, default=20_000, help="events per throughput round (default 20000)")
    add("--rounds", type=int, default=2, help="throughput rounds, baseline first (default 2)")
    add("--batch", type=int, default=1_000, help="events per committed transaction")
    add(
        "--concurrency",
        type=int,
        default=WORKER_CONCURRENCY,
        help="the worker's CRM_WORKER_CONCURRENCY, and the baseline client's "
        f"(default {WORKER_CONCURRENCY}, the worker's own default)",
    )
    add("--latency-events", type=int, default=200, help="single events timed (default 200)")
    add(
        "--spacing-ms",
        type=float,
        nargs=2,
        default=(50.0, 100.0),
        metavar=("MIN", "MAX"),
        help="pause before each timed event, drawn uniformly (default 50 100)",
    )
    add("--timeout", type=float, default=600.0, help="seconds to wait for a phase's deliveries")
    add("--check", action="store_true", help="exit 1 when a target is missed (for CI)")
    args = parser.parse_args(argv)
    if min(args.events, args.latency_events) < 2:
        parser.error("--events and --latency-events need at least 2 to measure anything")
    if min(args.rounds, args.batch, args.concurrency) < 1:
        parser.error("--rounds, --batch and --concurrency must be positive")
    return args


class Receiver:
    """The receiver process's control side: how many requests came, and which, and when."""

    def __init__(self, base_url: str) -> None:
        self.hook_url = f"{base_url}/hook"
        self._client = httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False)

    async def count(self) -> int:
        return int((await self._client.get("/count")).json()["count"])

    async def take(self) -> list[tuple[str, float]]:
        """(webhook-id, arrival) of every request since the last call."""
        return [(i, t) for i, t in (await self._client.get("/arrivals")).json()]

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class Verified:
    """What arrived, compared with the deliveries the database holds for the events."""

    first_arrival: dict[str, float]  # webhook-id -> first arrival, expected ids only
    span: tuple[float, float]  # first and last arrival of an expected delivery
    arrivals: int  # requests for expected deliveries, duplicates included
    duplicates: int  # requests beyond the first per webhook-id
    missing: int  # events without a delivery that arrived
    unexpected: int  # requests whose webhook-id is none of these events' deliveries
    retries: int  # attempts beyond one per delivery
    failed: int  # deliveries given up on


def verify(arrived: Sequence[tuple[str, float]], found: outbox.Deliveries, events: int) -> Verified:
    first: dict[str, float] = {}
    times = []
    unexpected = 0
    for webhook_id, at in arrived:
        if webhook_id not in found.by_id:
            unexpected += 1
            continue
        times.append(at)
        first.setdefault(webhook_id, at)
    if len(first) < 2:
        raise DeliveryFailed(f"{len(first)} of {events} deliveries arrived: nothing to measure")
    return Verified(
        first_arrival=first,
        span=(min(times), max(times)),
        arrivals=len(times),
        duplicates=len(times) - len(first),
        missing=events - len(first),
        unexpected=unexpected,
        retries=found.attempts - len(found.by_id),
        failed=found.failed,
    )


def rate(requests: int, first: float, last: float) -> float:
    """Requests per second between the first and the last one."""
    return (requests - 1) / (last - first) if requests > 1 and last > first else 0.0


async def wait_for(
    receiver: Receiver,
    conn: asyncpg.Connection,
    expected: int,
    within: float,
    worker: servers.Worker | None = None,
) -> None:
    """Until ``expected`` requests have arrived and, with a worker, it has recorded every
    outcome (so no lease can run out and send one again later); at most ``within`` s."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if worker is not None:
            worker.check()
        if await receiver.count() >= expected and (
            worker is None or await outbox.outstanding(conn) == 0
        ):
            return
        await asyncio.sleep(POLL_SECONDS)
    log(f"  gave up waiting after {within:.0f} s with {await receiver.count():,} arrived")


def _postgres_cpu(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds of those PostgreSQL processes this machine can see (none for a remote
    server, where the pids would be someone else's)."""
    out = {}
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        seconds = load.cpu_seconds(pid)
        if name.startswith("postgres") and seconds is not None:
            out[pid] = seconds
    return out


@dataclass(frozen=True, slots=True)
class Round:
    events: int
    baseline_per_s: float  # the plain client's requests/s at the receiver
    deliveries_per_s: float  # the worker's, first to last arrival
    seconds: float  # first to last arrival
    producer_seconds: float  # committing the events, in batches
    end_to_end_per_s: float  # from the first commit's start to the last arrival
    worker_cpu_us: float | None  # per delivery, the worker process
    database_cpu_us: float | None  # per delivery, the worker's PostgreSQL backends
    duplicates: int
    missing: int
    unexpected: int
    retries: int
    failed: int
    baseline_failed: int  # the plain client's non-200 answers

    @property
    def ratio(self) -> float:
        return self.deliveries_per_s / self.baseline_per_s if self.baseline_per_s else 0.0

    @property
    def valid(self) -> bool:
        return self.missing == 0 and self.baseline_failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio_to_baseline": round(self.ratio, 3)}


@dataclass(frozen=True, slots=True)
class Latency:
    events: int
    latencies_ms: list[float]  # commit returned -> arrived, in commit order
    duplicates: int
    missing: int
    unexpected: int
    retries: int

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]

    def summary(self) -> dict[str, Any]:
        ms = self.latencies_ms
        return {
            "events": self.events,
            "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(self.percentile(95), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(ms), 2),
            "min_ms": round(min(ms), 2),
            "mean_ms": round(statistics.fmean(ms), 2),
            "duplicates": self.duplicates,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "retries": self.retries,
        }


def signed_requests(
    payloads: Sequence[outbox.Payload], endpoint: outbox.Endpoint
) -> list[tuple[bytes, dict[str, str]]]:
    """The requests the worker would send for these events (body, Standard Webhooks
    headers), prepared ahead so the baseline client does nothing but send them."""
    occurred_at, timestamp = datetime.now(UTC), int(time.time())
    out = []
    for payload in payloads:
        content = body(
            outbox.EVENT_TYPE, occurred_at, orjson.loads(payload.json), receives_pii=False
        )
        webhook_id = str(new_id())
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                webhook_id, timestamp, content, [endpoint.secret]
            ),
        }
        out.append((content, headers))
    return out


async def post_all(
    url: str, requests: Sequence[tuple[bytes, dict[str, str]]], concurrency: int
) -> int:
    """POST every request, ``concurrency`` at a time over one pooled client configured like
    the worker's; returns how many were not answered 200."""
    pending = iter(requests)
    failed = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:

        async def post_some() -> None:
            nonlocal failed
            for content, headers in pending:  # shared: each request is sent once
                response = await client.post(url, content=content, headers=headers)
                failed += response.status_code != 200

        await asyncio.gather(*(post_some() for _ in range(concurrency)))
    return failed


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        conn: asyncpg.Connection,
        receiver: Receiver,
        endpoint: outbox.Endpoint,
        worker: servers.Worker,
    ) -> None:
        self.args = args
        self.conn = conn
        self.receiver = receiver
        self.endpoint = endpoint
        self.worker = worker

    async def verify(self, found: outbox.Deliveries, events: int) -> Verified:
        try:
            return verify(await self.receiver.take(), found, events)
        except DeliveryFailed as exc:
            tail = self.worker.log_tail()
            raise DeliveryFailed(f"{exc}; the worker's log ends:\n{tail}") from None

    async def baseline(self, payloads: Sequence[outbox.Payload]) -> tuple[float, int]:
        """The plain client's requests/s at the receiver, and its failed requests."""
        requests = signed_requests(payloads, self.endpoint)
        failed = await post_all(self.receiver.hook_url, requests, self.args.concurrency)
        # The receiver records a request before it answers: all have arrived by now.
        times = [t for _, t in await self.receiver.take()]
        return rate(len(times), min(times), max(times)), failed

    async def throughput(self, payloads: Sequence[outbox.Payload]) -> Round:
        baseline_per_s, baseline_failed = await self.baseline(payloads)
        log(f"  baseline: a plain client, {baseline_per_s:,.0f} requests/s")
        backends = _postgres_cpu(await outbox.worker_backends(self.conn))
        worker_cpu = load.cpu_seconds(self.worker.pid)
        started = time.monotonic()
        event_ids: list[uuid.UUID] = []
        for start in range(0, len(payloads), self.args.batch):
            batch = payloads[start : start + self.args.batch]
            event_ids += await outbox.insert_batch(self.conn, batch)
        producer_seconds = time.monotonic() - started
        log(f"  {len(event_ids):,} events committed in {producer_seconds:.2f} s")
        await wait_for(self.receiver, self.conn, len(event_ids), self.args.timeout, self.worker)
        worker_after = load.cpu_seconds(self.worker.pid)
        backends_after = _postgres_cpu([*backends, *await outbox.worker_backends(self.conn)])
        found = await outbox.deliveries(self.conn, event_ids)
        checked = await self.verify(found, len(event_ids))
        first, last = checked.span
        delivered = len(checked.first_arrival)

        def per_delivery_us(seconds: float) -> float:
            return round(seconds * 1e6 / delivered, 1)

        return Round(
            events=len(event_ids),
            baseline_per_s=round(baseline_per_s, 1),
            deliveries_per_s=round(rate(checked.arrivals, first, last), 1),
            seconds=round(last - first, 3),
            producer_seconds=round(producer_seconds, 3),
            end_to_end_per_s=round(delivered / (last - started), 1),
            worker_cpu_us=None
            if worker_cpu is None or worker_after is None
            else per_delivery_us(worker_after - worker_cpu),
            # A backend opened during the round counts from zero: its start-up is small.
            database_cpu_us=per_delivery_us(
                sum(t - backends.get(p, 0.0) for p, t in backends_after.items())
            )
            if backends_after
            else None,
            duplicates=checked.duplicates,
            missing=checked.missing,
            unexpected=checked.unexpected,
            retries=checked.retries,
            failed=checked.failed,
            baseline_failed=baseline_failed,
        )

    async def latency(self, payloads: Sequence[outbox.Payload]) -> Latency:
        await asyncio.sleep(IDLE_SECONDS)
        low, high = self.args.spacing_ms
        rng = random.Random(20261123)
        committed: dict[uuid.UUID, float] = {}
        for payload in payloads:
            # Irregular spacing, so commits cannot fall in step with any timer of the worker.
            await asyncio.sleep(rng.uniform(low, high) / 1000)
            event_id = await outbox.insert_one(self.conn, payload)
            committed[event_id] = time.monotonic()
        await wait_for(self.receiver, self.conn, len(committed), self.args.timeout, self.worker)
        found = await outbox.deliveries(self.conn, list(committed))
        checked = await self.verify(found, len(committed))
        latencies = [
            (checked.first_arrival[webhook_id] - committed[event_id]) * 1000
            for webhook_id, event_id in sorted(found.by_id.items(), key=lambda i: committed[i[1]])
            if webhook_id in checked.first_arrival
        ]
        return Latency(
            len(committed),
            [round(ms, 3) for ms in latencies],
            checked.duplicates,
            checked.missing,
            checked.unexpected,
            checked.retries,
        )


async def _start_delivering(
    receiver: Receiver, conn: asyncpg.Connection, worker: servers.Worker
) -> None:
    """The worker's first delivery, of the endpoint's own creation event, proves it is
    up and listening; it is then set aside."""
    await wait_for(receiver, conn, 1, STARTUP_TIMEOUT_SECONDS, worker)
    if not await receiver.take():
        raise DeliveryFailed(
            f"crm-api worker delivered nothing within {STARTUP_TIMEOUT_SECONDS:.0f} s; "
            f"its log ends:\n{worker.log_tail()}"
        )


async def measure(
    args: argparse.Namespace, url: str, workdir: Path, payloads: list[outbox.Payload]
) -> tuple[list[Round], Latency]:
    conn = await outbox.connect(url)
    try:
        with servers.receiver(workdir) as running:
            receiver = Receiver(running.base_url)
            try:
                endpoint = await outbox.create_endpoint(url, receiver.hook_url)
                with servers.worker(url, workdir, args.concurrency) as worker:
                    await _start_delivering(receiver, conn, worker)
                    bench = Bench(args, conn, receiver, endpoint, worker)
                    rounds = []
                    for number in range(1, args.rounds + 1):
                        log(f"throughput round {number} of {args.rounds}: {args.events:,} events")
                        rounds.append(await bench.throughput(payloads[: args.events]))
                        done = rounds[-1]
                        log(
                            f"  worker: {done.deliveries_per_s:,.0f} deliveries/s "
                            f"({done.ratio:.2f} of the baseline), {done.duplicates} duplicates, "
                            f"{done.missing} missing"
                        )
                    log(f"latency: {args.latency_events} single events, worker idle between")
                    latency = await bench.latency(payloads[args.events :])
            finally:
                await receiver.aclose()
    finally:
        await conn.close()
    return rounds, latency


def verdicts(rounds: Sequence[Round], latency: Latency) -> list[Headline]:
    throughput = statistics.median(r.deliveries_per_s for r in rounds)
    median_ms = statistics.median(latency.latencies_ms)
    extra = sum(r.duplicates + r.unexpected for r in rounds) + latency.duplicates
    extra += latency.unexpected
    missing = sum(r.missing for r in rounds) + latency.missing
    return [
        Headline(
            "throughput, median of the rounds",
            throughput,
            "deliveries/s",
            round(statistics.median(r.baseline_per_s for r in rounds), 1),
            "plain httpx client",
            round(statistics.median(r.ratio for r in rounds), 3),
            f">= {TARGET_DELIVERIES_PER_S:,.0f} deliveries/s",
            throughput >= TARGET_DELIVERIES_PER_S,
        ),
        Headline(
            "latency commit -> receiver, median",
            round(median_ms, 2),
            "ms",
            target=f"< {TARGET_MEDIAN_LATENCY_MS:,.0f} ms",
            met=median_ms < TARGET_MEDIAN_LATENCY_MS,
        ),
        Headline(
            "each event delivered exactly once",
            missing + extra,
            "missing or extra",
            target="= 0",
            met=missing == 0 and extra == 0,
        ),
    ]


def table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The first column left-aligned, the others right-aligned, widths to fit."""
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return f"{first:<{widths[0]}}" + "".join(
            f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True)
        )

    return "\n".join(line(r) for r in [columns, *rows])


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def render(results: dict[str, Any], rounds: Sequence[Round], found: list[Headline]) -> str:
    s, lat = results["settings"], results["latency"]
    header = (
        f"crm-api webhook delivery: one `crm-api worker` (concurrency {s['worker_concurrency']}, "
        f"batch {s['worker_batch_size']}) to a local receiver answering 200 at once\n"
        f"database: {results['database']}, PostgreSQL {results['postgres']}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}\n"
        f"baseline: a plain httpx client posting the same bodies at concurrency "
        f"{s['worker_concurrency']}; rates run from the first to the last arrival"
    )
    per_round = [
        [
            f"round {n}",
            f"{r.deliveries_per_s:,.0f}",
            f"{r.baseline_per_s:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.seconds:.1f}",
            f"{r.producer_seconds:.1f}",
            _us(r.worker_cpu_us),
            _us(r.database_cpu_us),
            f"{r.retries}",
            f"{r.duplicates}",
            f"{r.missing}",
        ]
        for n, r in enumerate(rounds, 1)
    ]
    summary = results["throughput"]
    per_round.append(
        [
            "median",
            f"{summary['deliveries_per_s']:,.0f}",
            f"{summary['baseline_per_s']:,.0f}",
            f"{summary['ratio_to_baseline']:.2f}",
            *[""] * 7,
        ]
    )
    throughput = table(
        (
            f"Throughput, {s['events']:,} events a round",
            "deliveries/s",
            "baseline/s",
            "vs baseline",
            "seconds",
            "commit s",
            "worker CPU us/dlv",
            "PG CPU us/dlv",
            "retries",
            "dup",
            "missing",
        ),
        per_round,
    )
    latency = table(
        (
            f"Latency commit -> receiver, {lat['events']} single events",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "dup",
            "missing",
        ),
        [
            [
                f"worker idle, {s['spacing_ms'][0]:g}-{s['spacing_ms'][1]:g} ms apart",
                *(f"{lat[k]:,.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                f"{lat['duplicates']}",
                f"{lat['missing']}",
            ]
        ],
    )
    targets = table(
        ("Targets", "figure", "target", "result"),
        [[h.figure, report.quantity(h.value, h.unit), h.target, h.verdict] for h in found],
    )
    return "\n\n".join([header, throughput, latency, targets])


def results_of(
    args: argparse.Namespace, rounds: Sequence[Round], latency: Latency, meta: dict[str, Any]
) -> tuple[dict[str, Any], list[Headline]]:
    found = verdicts(rounds, latency)
    results = {
        **meta,
        "settings": {
            "events": args.events,
            "rounds": args.rounds,
            "events_per_commit": args.batch,
            "latency_events": args.latency_events,
            "spacing_ms": list(args.spacing_ms),
            "worker_concurrency": args.concurrency,
            "worker_batch_size": WORKER_BATCH,
            "baseline_concurrency": args.concurrency,
        },
        "throughput": {
            "deliveries_per_s": statistics.median(r.deliveries_per_s for r in rounds),
            "deliveries_per_s_min": min(r.deliveries_per_s for r in rounds),
            "deliveries_per_s_max": max(r.deliveries_per_s for r in rounds),
            "baseline_per_s": statistics.median(r.baseline_per_s for r in rounds),
            "ratio_to_baseline": round(statistics.median(r.ratio for r in rounds), 3),
            "rounds": [r.as_dict() for r in rounds],
        },
        "latency": {**latency.summary(), "latencies_ms": latency.latencies_ms},
        "valid": all(r.valid for r in rounds) and latency.missing == 0,
        "passed": report.all_met(found),
    }
    return results, found


@report.failures_recorded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    load_before = os.getloadavg()[0]
    busy = busy_warning(load_before)
    if busy:
        log(f"warning: {busy}")
    log(f"generating {args.events + args.latency_events:,} customer.created payloads")
    payloads = outbox.payloads(args.events + args.latency_events)
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch, database.server() as pg:
        url = asyncio.run(database.create(pg))
        log(f"database {database.describe(url)} ({pg.source}), migrated")
        try:
            rounds, latency = asyncio.run(measure(args, url, Path(scratch), payloads))
            meta = {
                **asyncio.run(database.about(pg, url)),
                "load_average_before": load_before,
                "warning": busy,
            }
        except (servers.ServerFailed, DeliveryFailed, httpx.HTTPError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            report.failed(NAME, str(exc), vars(args))
            return 1
        finally:
            asyncio.run(database.drop(pg, url))
    results, found = results_of(args, rounds, latency, meta)
    path = report.write(NAME, results, found)
    log("done")
    print(render(results, rounds, found))
    if busy:
        print(f"\nwarning: {busy}")
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if not results["valid"]:
        print("INVALID: deliveries went missing or baseline requests failed; see above.")
        return 1
    return 1 if args.check and not results["passed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
