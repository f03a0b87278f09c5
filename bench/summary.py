"""``python -m bench.summary``: the README's table of headline figures, from bench/results/.

Reads each benchmark's record (bench/results/<name>.json, written by its run) and rewrites
the table between the two marker lines in README.md, one row per headline figure: its
value, the baseline of the same run with their ratio, the target and whether it was met,
and the date and commit of the run. A benchmark without a record, or whose last run
failed, gets a row saying so, so that a gap in ``make bench`` cannot pass unnoticed.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.report import RESULTS, quantity

# What `make bench` runs, in its order: (results name, make target).
BENCHMARKS = (
    ("throughput", "bench-throughput"),
    ("webhooks", "bench-webhooks"),
    ("loyalty", "bench-loyalty"),
    ("graphql", "bench-graphql"),
    ("scale", "bench-scale"),
    ("analytics", "bench-analytics"),
)
START = "<!-- bench-summary:start -->"
END = "<!-- bench-summary:end -->"
README = RESULTS.parent.parent / "README.md"
COLUMNS = ("benchmark", "figure", "value", "baseline", "ratio", "target", "met", "run")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _run(record: dict[str, Any]) -> str:
    """The date of the run and the commit it measured."""
    date = str(record.get("finished_at") or "?")[:10]
    commit = record.get("commit")
    return f"{date}, {commit[:7]}" if commit else date


def _verdict(met: bool | None, valid: bool) -> str:
    if not valid:
        return "invalid"
    return "-" if met is None else "met" if met else "missed"


def rows(name: str, target: str, record: dict[str, Any] | None) -> list[tuple[str, ...]]:
    """The table's rows for one benchmark's record (None: there is none)."""
    if record is None:
        return [(name, f"no results: run `make {target}`", "", "", "", "", "not run", "-")]
    if record.get("status") == "failed":
        reason = str(record.get("error") or "see its output").splitlines()[0]
        return [(name, f"failed: {reason}", "", "", "", "", "failed", _run(record))]
    headlines = record.get("headlines") or []
    if not headlines:
        return [(name, "no headline figures in its results", "", "", "", "", "-", _run(record))]
    valid = record.get("valid", True)
    out = []
    for h in headlines:
        baseline = ""
        if h.get("baseline") is not None:
            baseline = quantity(h["baseline"], h["unit"])
            if h.get("baseline_name"):
                baseline = f"{h['baseline_name']}: {baseline}"
        out.append(
            (
                name,
                h["figure"],
                quantity(h["value"], h["unit"]),
                baseline,
                "" if h.get("ratio") is None else f"{h['ratio']:.2f}",
                h.get("target") or "-",
                _verdict(h.get("met"), valid),
                _run(record),
            )
        )
    return out


def read(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def table(results: Path) -> str:
    """The Markdown table of every benchmark `make bench` runs."""
    found = [row for name, target in BENCHMARKS for row in rows(name, target, read(results, name))]
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in found),
    ]
    return "\n".join(lines)


def replace_between_markers(text: str, generated: str) -> str:
    """``text`` with what lies between the markers replaced by ``generated``."""
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the markers {START} and {END} are not both there, in that order")
    return f"{head}{START}\n{generated}\n{END}{tail}"


def update(readme: Path, results: Path) -> None:
    readme.write_text(replace_between_markers(readme.read_text(), table(results)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.summary", description=__doc__)
    parser.add_argument("--readme", type=Path, default=README, help="default: README.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="default: bench/results")
    args = parser.parse_args(argv)
    try:
        update(args.readme, args.results)
    except (OSError, ValueError) as exc:  # no README there, or no markers in it
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.readme}: benchmark summary updated from {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
