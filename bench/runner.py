"""The suite: data, COPY vs API import, then rounds of (a), (b), (c), one server at a time."""

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import data, database, importing, load, report, servers
from bench.report import Headline, Row


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    lua: str  # bench/lua/<lua>.lua
    path: str  # the URL path (prefix) the script requests
    minimum: float | None = None  # share of the ceiling's req/s to reach


CEILING = Target(
    "ceiling", "(a) ceiling: Starlette + asyncpg, GET by id", "get_customer", "/customers"
)
GET = Target("customers_get", "(b) GET /v1/customers/{id}", "get_customer", "/v1/customers", 0.6)
POST = Target(
    "interactions_post", "(c) POST /v1/interactions", "post_interaction", "/v1/interactions", 0.4
)
GET_NO_LOG = Target(
    "customers_get_no_access_log", "    (b) with CRM_ACCESS_LOG=false", GET.lua, GET.path
)
POST_NO_LOG = Target(
    "interactions_post_no_access_log", "    (c) with CRM_ACCESS_LOG=false", POST.lua, POST.path
)
TARGETS = (CEILING, GET, POST, GET_NO_LOG, POST_NO_LOG)
IMPORT_MINIMUM = 0.25  # share of COPY's rows/s
NAME = "throughput"  # bench/results/throughput.json
_started = time.monotonic()


def log(message: str) -> None:
    print(f"[bench {time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Throughput and bulk-import benchmarks of crm-api, as ratios against "
        "baselines measured in the same run. Database: CRM_BENCH_DATABASE_URL, else "
        "CRM_DATABASE_URL (a fresh database is created on that server and dropped after), "
        "else an embedded PostgreSQL in a temporary folder.",
    )
    add = parser.add_argument
    add("--customers", type=int, default=100_000, help="customers (default 100000)")
    add("--rounds", type=int, default=3, help="interleaved rounds of (a), (b), (c) (default 3)")
    add("--duration", type=int, default=5, help="seconds measured per target and round")
    add("--warmup", type=int, default=2, help="seconds of warm-up before each measurement")
    add("--connections", type=int, default=32, help="wrk connections (default 32)")
    add("--threads", type=int, default=1, help="wrk threads (default 1)")
    add("--pool-size", type=int, default=20, help="database pool of each server (default 20)")
    add("--import-chunk", type=int, default=10_000, help="NDJSON lines per import request")
    add("--import-rounds", type=int, default=3, help="rounds of COPY, then the API import")
    add("--skip-import", action="store_true", help="seed with COPY; no import comparison")
    add(
        "--skip-access-log-off",
        action="store_true",
        help="skip the extra (b)/(c) runs with the access log off",
    )
    add("--check", action="store_true", help="exit 1 when a target is missed (for CI)")
    return parser.parse_args(argv)


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what} answered {response.status_code}: {response.text[:500]}")


class Suite:
    def __init__(self, args: argparse.Namespace, wrk: str, workdir: Path) -> None:
        self.args = args
        self.wrk = wrk
        self.workdir = workdir
        self.load = load.Settings(args.connections, args.threads, args.duration, args.warmup)
        self.throughput: dict[str, list[load.LoadResult]] = {}
        self.imports: dict[str, list[importing.ImportResult]] = {"copy": [], "api": []}

    def run(self, url: str) -> None:
        args = self.args
        log(f"generating {args.customers:,} customers")
        people = data.customers(args.customers)
        lines = data.ndjson_lines(people)
        records = data.copy_records(people, lines)
        del people
        reader = asyncio.run(
            database.issue_key(url, "bench reader", "customers:read", "interactions:write")
        )
        writer = asyncio.run(database.issue_key(url, "bench import", "customers:write"))

        if args.skip_import:
            log("import: COPY of the rows into the empty customers table")
            self.imports["copy"].append(asyncio.run(importing.copy(url, records)))
            asyncio.run(_seed(url, records))
        else:
            with servers.crm_api(url, args.pool_size, self.workdir, access_log=True) as app:
                for number in range(1, args.import_rounds + 1):
                    log(
                        f"import round {number} of {args.import_rounds}: COPY, then NDJSON "
                        f"through the API, {args.import_chunk:,} lines a request"
                    )
                    copy = asyncio.run(importing.copy(url, records))
                    asyncio.run(importing.reset(url))
                    api = importing.through_api(app.base_url, writer, lines, args.import_chunk)
                    self.imports["copy"].append(copy)
                    self.imports["api"].append(api)
                    log(
                        f"  COPY {copy.rows_per_s:,.0f} rows/s, API {api.rows_per_s:,.0f} rows/s"
                        f" ({api.rows_per_s / copy.rows_per_s:.2f})"
                    )
        del records, lines

        log("VACUUM ANALYZE of the tables with rows")
        asyncio.run(database.settle(url))
        ids = asyncio.run(database.customer_ids(url))
        ids_file = self.workdir / "customer_ids.txt"
        data.write_ids(ids_file, ids)
        some_id = ids[len(ids) // 2]
        auth = {"Authorization": f"Bearer {reader}"}

        for number in range(1, args.rounds + 1):
            log(f"round {number} of {args.rounds}")
            with servers.ceiling(url, args.pool_size, self.workdir) as ceiling:
                _expect(httpx.get(f"{ceiling.base_url}/customers/{some_id}"), 200, "the ceiling")
                self._measure(CEILING, ceiling, "-", ids_file)
            runs = [(True, GET, POST)]
            if not args.skip_access_log_off:
                runs.append((False, GET_NO_LOG, POST_NO_LOG))
            for access_log, get, post in runs:
                with servers.crm_api(
                    url, args.pool_size, self.workdir, access_log=access_log
                ) as app:
                    _expect(
                        httpx.get(f"{app.base_url}/v1/customers/{some_id}", headers=auth),
                        200,
                        "GET /v1/customers/{id}",
                    )
                    self._measure(get, app, reader, ids_file)
                    before = asyncio.run(database.count(url, "interactions"))
                    self._measure(post, app, reader, ids_file)
                    if asyncio.run(database.count(url, "interactions")) == before:
                        raise RuntimeError("POST /v1/interactions stored nothing")

    def _measure(self, target: Target, server: servers.Running, key: str, ids: Path) -> None:
        script = load.script(self.workdir, target.lua)
        result = load.measure(
            self.wrk,
            server.base_url,
            script,
            [key, str(ids), target.path],
            self.load,
            server_pid=server.pid,
        )
        log(
            f"  {target.label.strip()}: {result.requests_per_s:,.0f} req/s, "
            f"p50 {result.latency_p50_ms} ms, p99 {result.latency_p99_ms} ms, "
            f"server CPU {result.server_cpu_us_per_request} us/req, "
            f"non-2xx {result.non_2xx_3xx}, socket errors {result.socket_errors}"
        )
        self.throughput.setdefault(target.key, []).append(result)

    def share(self, key: str) -> float | None:
        """Median over rounds of this target's req/s divided by the ceiling's in that round."""
        mine, ceiling = self.throughput.get(key), self.throughput.get(CEILING.key)
        if not mine or not ceiling:
            return None
        return statistics.median(
            m.requests_per_s / c.requests_per_s for m, c in zip(mine, ceiling, strict=True)
        )

    def import_share(self) -> float | None:
        """Median over rounds of the API import's rows/s divided by COPY's in that round."""
        copy, api = self.imports["copy"], self.imports["api"]
        if not api:
            return None
        pairs = zip(api, copy, strict=True)
        return statistics.median(a.rows_per_s / c.rows_per_s for a, c in pairs)


async def _seed(url: str, records: list[tuple[Any, ...]]) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "customers", records=records, columns=list(data.COPY_COLUMNS)
        )
    finally:
        await conn.close()


def _summary(results: list[load.LoadResult]) -> dict[str, Any]:
    rates = [r.requests_per_s for r in results]
    cpu = [r.server_cpu_us_per_request for r in results if r.server_cpu_us_per_request]
    return {
        "requests_per_s": round(statistics.median(rates), 1),
        "requests_per_s_min": min(rates),
        "requests_per_s_max": max(rates),
        "latency_p50_ms": statistics.median(r.latency_p50_ms for r in results),
        "latency_p99_ms": statistics.median(r.latency_p99_ms for r in results),
        "server_cpu_us_per_request": round(statistics.median(cpu), 1) if cpu else None,
        "failed_requests": sum(r.non_2xx_3xx + r.socket_errors for r in results),
        "valid": all(r.clean for r in results),
    }


def _throughput_rows(suite: Suite) -> list[Row]:
    rows = []
    for target in TARGETS:
        if target.key not in suite.throughput:
            continue
        s = _summary(suite.throughput[target.key])
        cpu = s["server_cpu_us_per_request"]
        rows.append(
            Row(
                target.label,
                (
                    f"{s['requests_per_s']:,.0f}",
                    f"{s['requests_per_s_min']:,.0f}-{s['requests_per_s_max']:,.0f}",
                    f"{s['latency_p50_ms']:.1f}",
                    f"{s['latency_p99_ms']:.1f}",
                    "-" if cpu is None else f"{cpu:,.0f}",
                    str(s["failed_requests"]),
                ),
                1.0 if target is CEILING else suite.share(target.key),
                target.minimum,
                s["valid"],
            )
        )
    return rows


def _import_rows(suite: Suite) -> list[Row]:
    rows = []
    for key, share, minimum in (
        ("copy", 1.0, None),
        ("api", suite.import_share(), IMPORT_MINIMUM),
    ):
        if results := suite.imports[key]:
            summary = _import_summary(results)
            rows.append(
                Row(
                    results[0].method,
                    (
                        f"{summary['rows_per_s']:,.0f}",
                        f"{summary['rows_per_s_min']:,.0f}-{summary['rows_per_s_max']:,.0f}",
                    ),
                    share,
                    minimum,
                )
            )
    return rows


def _import_summary(results: list[importing.ImportResult]) -> dict[str, Any]:
    rates = [r.rows_per_s for r in results]
    return {
        "method": results[0].method,
        "rows_per_s": round(statistics.median(rates), 1),
        "rows_per_s_min": round(min(rates)),
        "rows_per_s_max": round(max(rates)),
        "rounds": [r.as_dict() for r in results],
    }


def _meta(pg: database.Server, url: str, wrk: str) -> dict[str, Any]:
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return {
        **asyncio.run(database.about(pg, url)),
        "wrk": (wrk_version.stdout + wrk_version.stderr).strip().splitlines()[0],
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _headlines(suite: Suite) -> list[Headline]:
    """(b), (c) against the ceiling and the import against COPY, with their targets."""
    found = []
    ceiling = suite.throughput.get(CEILING.key)
    for target in (GET, POST):
        share = suite.share(target.key)
        if share is None or target.minimum is None or ceiling is None:
            continue
        found.append(
            Headline(
                target.label,
                _summary(suite.throughput[target.key])["requests_per_s"],
                "req/s",
                _summary(ceiling)["requests_per_s"],
                "ceiling (a)",
                _rounded(share),
                f"ratio >= {target.minimum:.2f}",
                report.passed(share, target.minimum),
            )
        )
    share = suite.import_share()
    if share is not None:
        found.append(
            Headline(
                f"NDJSON import, {suite.args.customers:,} customers",
                _import_summary(suite.imports["api"])["rows_per_s"],
                "rows/s",
                _import_summary(suite.imports["copy"])["rows_per_s"],
                "COPY",
                _rounded(share),
                f"ratio >= {IMPORT_MINIMUM:.2f}",
                report.passed(share, IMPORT_MINIMUM),
            )
        )
    return found


def _render(suite: Suite, meta: dict[str, Any]) -> tuple[str, dict[str, Any], list[Headline]]:
    a = suite.args
    throughput_rows, import_rows = _throughput_rows(suite), _import_rows(suite)
    header = (
        f"crm-api benchmark: {a.customers:,} customers; wrk -t{a.threads} -c{a.connections}; "
        f"{a.rounds} interleaved rounds x {a.duration} s per target (after {a.warmup} s "
        f"warm-up); each server alone, 1 uvicorn worker, pool {a.pool_size}\n"
        f"database: {meta['database']}, PostgreSQL {meta['postgres']}; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}\n"
        "req/s and rows/s are the medians of the rounds (min-max beside them); a ratio is the "
        "median of the per-round ratios; CPU is the server process's CPU time per request."
    )
    parts = [
        header,
        report.section(
            "Throughput",
            ("req/s", "min-max", "p50 ms", "p99 ms", "CPU us/req", "failed"),
            throughput_rows,
            vs="(a)",
        ),
    ]
    if import_rows:
        parts.append(
            report.section(
                f"Bulk import of {a.customers:,} customers, empty table",
                ("rows/s", "min-max"),
                import_rows,
                vs="COPY",
            )
        )
    judged = [r for r in throughput_rows + import_rows if r.target is not None]
    headlines = _headlines(suite)
    results = {
        **meta,
        "settings": {
            "customers": a.customers,
            "rounds": a.rounds,
            "duration_s_per_round": a.duration,
            "warmup_s": a.warmup,
            "connections": a.connections,
            "wrk_threads": a.threads,
            "pool_size": a.pool_size,
            "import_chunk_lines": a.import_chunk,
            "import_rounds": a.import_rounds,
            "access_log": "on for (b), (c) and the import; off in the *_no_access_log runs",
        },
        "throughput": {
            t.key: {
                "label": t.label.strip(),
                **_summary(suite.throughput[t.key]),
                "share_of_ceiling": None if t is CEILING else _rounded(suite.share(t.key)),
                "target": t.minimum,
                "rounds": [r.as_dict() for r in suite.throughput[t.key]],
            }
            for t in TARGETS
            if t.key in suite.throughput
        },
        "import": {
            **{k: _import_summary(results) for k, results in suite.imports.items() if results},
            "share_of_copy": _rounded(suite.import_share()),
        },
        "valid": all(r.valid for r in throughput_rows),
        "passed": all(r.verdict == "PASS" for r in judged),
    }
    return "\n\n".join(parts), results, headlines


def busy_warning(load1: float) -> str | None:
    """The machine is already busy: other work competes for the cores and skews ratios."""
    cpus = os.cpu_count() or 1
    if load1 < 0.5 * cpus:
        return None
    return (
        f"load average {load1:.1f} on {cpus} CPUs before the run: other processes compete "
        "for the cores, so figures will be noisy; run on an idle machine for comparable results"
    )


@report.failures_recorded(NAME)
def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    wrk = load.find_wrk()
    if wrk is None:
        print(load.INSTALL_HINT, file=sys.stderr)
        report.failed(NAME, "wrk is not installed", vars(args))
        return 2
    load_before = os.getloadavg()[0]
    busy = busy_warning(load_before)
    if busy:
        log(f"warning: {busy}")
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch, database.server() as pg:
        url = asyncio.run(database.create(pg))
        log(f"database {database.describe(url)} ({pg.source}), migrated")
        suite = Suite(args, wrk, Path(scratch))
        try:
            suite.run(url)
            meta = {
                **_meta(pg, url, wrk),
                "load_average_before": load_before,
                "warning": busy,
            }
        except (servers.ServerFailed, load.LoadFailed, importing.ImportFailed) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            report.failed(NAME, str(exc), vars(args))
            return 1
        finally:
            asyncio.run(database.drop(pg, url))
    text, results, headlines = _render(suite, meta)
    path = report.write(NAME, results, headlines)
    log("done")
    print(text)
    if busy:
        print(f"\nwarning: {busy}")
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    if not results["valid"]:
        print("INVALID: some requests failed (see 'failed'); the figures do not count.")
        return 1
    return 1 if args.check and not results["passed"] else 0
