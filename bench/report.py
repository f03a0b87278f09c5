"""The figures: a table on stdout and each benchmark's record in bench/results/<name>.json."""

import functools
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
Main = Callable[[list[str] | None], int]  # a benchmark's command line: arguments -> exit status
PACKAGES = (
    "crm-api",
    "fastapi",
    "starlette",
    "strawberry-graphql",
    "uvicorn",
    "uvloop",
    "httptools",
    "asyncpg",
    "httpx",
)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    cells: tuple[str, ...]  # the figures, one per column
    share: float | None = None  # of the section's baseline; None when not compared
    target: float | None = None  # the share to reach; None when there is none
    valid: bool = True  # False when requests failed: the figures do not count

    @property
    def verdict(self) -> str:
        if not self.valid:
            return "INVALID"
        if self.target is None or self.share is None:
            return "-"
        return "PASS" if passed(self.share, self.target) else "FAIL"


def passed(share: float, target: float) -> bool:
    return share >= target


def section(title: str, columns: tuple[str, ...], rows: list[Row], *, vs: str) -> str:
    """A table: label, the figures, share of the baseline, target, verdict."""
    label_width = max(len(title), *(len(r.label) for r in rows)) + 2
    widths = [
        label_width,
        *(max(10, len(c) + 2, *(len(r.cells[i]) + 2 for r in rows)) for i, c in enumerate(columns)),
        9,
        8,
        9,
    ]

    def line(cells: list[str]) -> str:
        first, *rest = cells
        return f"{first:<{widths[0]}}" + "".join(
            f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True)
        )

    out = [line([title, *columns, f"vs {vs}", "target", "result"])]
    for row in rows:
        out.append(
            line(
                [
                    row.label,
                    *row.cells,
                    "-" if row.share is None else f"{row.share:.2f}",
                    "-" if row.target is None else f">={row.target:.2f}",
                    row.verdict,
                ]
            )
        )
    return "\n".join(out)


def percentiles(timings: list[float]) -> dict[str, float]:
    """p50, p90, p99 and mean of latencies in milliseconds."""
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


@dataclass(frozen=True, slots=True)
class Headline:
    """A figure the README's summary table shows: its value, the baseline of the same run
    it is compared with and their ratio, and its target with whether the run met it."""

    figure: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None  # what the baseline is, e.g. "ceiling (a)"
    ratio: float | None = None  # value / baseline; over rounds, the median round's
    target: str | None = None  # as a reader states it: "ratio >= 0.60", "< 60 s"
    met: bool | None = None  # None when there is no target

    @property
    def verdict(self) -> str:
        return "-" if self.met is None else "PASS" if self.met else "FAIL"


def all_met(headlines: Sequence[Headline]) -> bool:
    return all(h.met is not False for h in headlines)


def quantity(value: float, unit: str) -> str:
    """A figure as the tables show it: whole from 100 up, else three significant digits."""
    text = f"{value:,.0f}" if isinstance(value, int) or abs(value) >= 100 else f"{value:.3g}"
    return f"{text} {unit}"


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=RESULTS.parent,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None  # not a checkout (an image built from the sources), or no git
    return done.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """When and on what a run was made: the date, the commit, the machine, the versions."""
    changes = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": None if changes is None else bool(changes),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in PACKAGES},
    }


def write(name: str, results: dict[str, Any], headlines: Sequence[Headline] = ()) -> Path:
    """bench/results/<name>.json: the run's figures, headlines first, stamped by environment()."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "benchmark": name,
        "status": "done",
        **environment(),
        "headlines": [asdict(h) for h in headlines],
        **results,
    }
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def failed(name: str, reason: str, settings: dict[str, Any]) -> Path:
    """Record a run that ended without figures, so that the summary shows the failure
    instead of an older run's figures as if they were this run's."""
    return write(name, {"status": "failed", "error": reason, "settings": settings})


def failures_recorded(name: str) -> Callable[[Main], Main]:
    """Decorate a benchmark's ``main`` so that an error it did not expect (a server that
    cannot start, a bug) leaves a failure record too before it propagates."""

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def recorded(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except Exception as exc:
                arguments = sys.argv[1:] if argv is None else argv
                reason = ": ".join(filter(None, (type(exc).__name__, str(exc))))
                failed(name, reason, {"arguments": arguments})
                raise

        return recorded

    return decorate
