"""The README's benchmark table, as `make bench` rewrites it from bench/results/*.json."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from bench import report, summary
from bench.report import Headline

BEFORE = "# crm-api\n\n## Performance\n\nProse before the table.\n\n"
AFTER = "\n\nProse after the table, with | a pipe and <!-- a comment -->.\n"
README = f"{BEFORE}{summary.START}\n| an old | table |\n{summary.END}{AFTER}"
RUN = {"finished_at": "2026-12-03T17:10:00+00:00", "commit": "7ce072d0123456789abcdef"}
GET = Headline(
    "(b) GET /v1/customers/{id}",
    3912.4,
    "req/s",
    7480.0,
    "ceiling (a)",
    0.523,
    "ratio >= 0.60",
    False,
)
LATENCY = Headline("latency commit -> receiver, median", 3.52, "ms", target="< 1,000 ms", met=True)


def record(name: str, **fields: object) -> dict[str, object]:
    return {"benchmark": name, "status": "done", **RUN, **fields}


def write(results: Path, name: str, content: dict[str, object]) -> None:
    results.mkdir(exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(content))


def table_rows(text: str) -> list[list[str]]:
    """The cells of each row between the markers, header and rule left out."""
    inside = text.split(summary.START)[1].split(summary.END)[0].strip().splitlines()
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in inside[2:]]


def updated(tmp_path: Path) -> str:
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert summary.main(["--readme", str(readme), "--results", str(tmp_path / "results")]) == 0
    return readme.read_text()


def test_one_row_per_headline_between_the_markers_and_the_rest_untouched(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, "throughput", record("throughput", headlines=[asdict(GET)], valid=True))
    write(results, "webhooks", record("webhooks", headlines=[asdict(LATENCY)], valid=True))

    text = updated(tmp_path)

    assert text.startswith(BEFORE + summary.START + "\n")
    assert text.endswith(summary.END + AFTER)
    assert "an old" not in text
    rows = table_rows(text)
    assert rows[0] == [
        "throughput",
        "(b) GET /v1/customers/{id}",
        "3,912 req/s",
        "ceiling (a): 7,480 req/s",
        "0.52",
        "ratio >= 0.60",
        "missed",
        "2026-12-03, 7ce072d",
    ]
    assert rows[1] == [
        "webhooks",
        "latency commit -> receiver, median",
        "3.52 ms",
        "",
        "",
        "< 1,000 ms",
        "met",
        "2026-12-03, 7ce072d",
    ]


def test_missing_failed_and_invalid_runs_are_shown_as_such(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, "throughput", record("throughput", headlines=[asdict(GET)], valid=False))
    write(
        results,
        "webhooks",
        record("webhooks", status="failed", error="the worker died\ntraceback ..."),
    )

    rows = table_rows(updated(tmp_path))

    by_benchmark = {row[0]: row for row in rows}
    assert [row[0] for row in rows] == [name for name, _ in summary.BENCHMARKS]
    assert by_benchmark["throughput"][6] == "invalid"
    assert by_benchmark["webhooks"][1] == "failed: the worker died"
    assert by_benchmark["webhooks"][6:] == ["failed", "2026-12-03, 7ce072d"]
    assert by_benchmark["loyalty"][1] == "no results: run `make bench-loyalty`"
    assert by_benchmark["loyalty"][6] == "not run"


def test_what_a_benchmark_writes_is_what_the_summary_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "RESULTS", tmp_path / "results")
    report.write("webhooks", {"valid": True, "settings": {"events": 10}}, [LATENCY])
    report.failed("loyalty", "wrk is not installed", {"accounts": 10})

    @report.failures_recorded("graphql")
    def crashing(argv: list[str] | None = None) -> int:
        raise OSError("the embedded PostgreSQL did not start")

    with pytest.raises(OSError):
        crashing(["--rounds", "1"])

    rows = {row[0]: row for row in table_rows(updated(tmp_path))}

    assert rows["webhooks"][1:7] == [
        "latency commit -> receiver, median",
        "3.52 ms",
        "",
        "",
        "< 1,000 ms",
        "met",
    ]
    assert rows["loyalty"][1] == "failed: wrk is not installed"
    assert rows["graphql"][1] == "failed: OSError: the embedded PostgreSQL did not start"
    written = json.loads((tmp_path / "results" / "webhooks.json").read_text())
    assert written["settings"] == {"events": 10}
    assert {"finished_at", "commit", "versions", "python"} <= written.keys()


def test_a_readme_without_the_markers_is_left_alone(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(BEFORE + AFTER)

    assert summary.main(["--readme", str(readme), "--results", str(tmp_path)]) == 1
    assert readme.read_text() == BEFORE + AFTER
