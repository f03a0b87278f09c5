"""The figures: a table on stdout and JSON in bench/results/latest.json."""

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


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


def write(results: dict[str, Any], name: str = "latest.json") -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path
