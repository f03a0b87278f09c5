"""The frame of a wrk-driven benchmark: a fresh database, the run, the report, the exit code."""

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import database, load, report, servers

Run = Callable[[argparse.Namespace, str, str, Path], dict[str, Any]]
# The rendered table, whether the figures count (valid) and the headlines with their targets.
Render = Callable[[dict[str, Any]], tuple[str, bool, list[report.Headline]]]


def main(args: argparse.Namespace, run: Run, render: Render, *, name: str, invalid: str) -> int:
    """Run on a new database (dropped after), write bench/results/``name``.json, print the table.

    Exit status: 0 done, 1 a failure or invalid figures (``invalid`` says why), or a missed
    target under ``--check``; 2 without wrk.
    """
    wrk = load.find_wrk()
    if wrk is None:
        print(load.INSTALL_HINT, file=sys.stderr)
        report.failed(name, "wrk is not installed", vars(args))
        return 2
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch, database.server() as pg:
        url = asyncio.run(database.create(pg))
        try:
            found = run(args, wrk, url, Path(scratch))
            server = asyncio.run(database.about(pg, url))
        except (servers.ServerFailed, load.LoadFailed, RuntimeError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            report.failed(name, str(exc), vars(args))
            return 1
        finally:
            asyncio.run(database.drop(pg, url))
    text, valid, headlines = render(found)
    passed = report.all_met(headlines)
    path = report.write(name, {**server, **found, "valid": valid, "passed": passed}, headlines)
    print(text)
    print(f"\nresults: {path}")
    if not valid:
        print(f"INVALID: {invalid}; the figures do not count.")
        return 1
    return 1 if args.check and not passed else 0
