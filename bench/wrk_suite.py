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
# The rendered table, whether the figures count (valid) and whether the targets were met.
Render = Callable[[dict[str, Any]], tuple[str, bool, bool]]


def main(args: argparse.Namespace, run: Run, render: Render, *, results: str, invalid: str) -> int:
    """Run on a new database (dropped after), write bench/results/``results``, print the table.

    Exit status: 0 done, 1 a failure or invalid figures (``invalid`` says why), or a missed
    target under ``--check``; 2 without wrk.
    """
    wrk = load.find_wrk()
    if wrk is None:
        print(load.INSTALL_HINT, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as scratch, database.server() as pg:
        url = asyncio.run(database.create(pg))
        try:
            found = run(args, wrk, url, Path(scratch))
        except (servers.ServerFailed, load.LoadFailed, RuntimeError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            asyncio.run(database.drop(pg, url))
    text, valid, passed = render(found)
    path = report.write({**found, "valid": valid, "passed": passed}, results)
    print(text)
    print(f"\nresults: {path}")
    if not valid:
        print(f"INVALID: {invalid}; the figures do not count.")
        return 1
    return 1 if args.check and not passed else 0
