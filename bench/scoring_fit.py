"""BG/NBD fit time on a million synthetic customers, against lifetimes on the same arrays.

``python -m bench.scoring_fit`` draws purchase histories from the BG/NBD model itself with
the published CDNOW parameters (first purchases spread over 12 weeks, observed to week 39,
whole-day durations as the feature query makes them) and times the ``bgnbd`` scorer's fit
(best of ``--rounds``), checking that it recovers the parameters.

lifetimes is not a dependency: ``--lifetimes-python`` names an interpreter that has it
(e.g. a scratch virtualenv with ``pip install lifetimes``), which fits the same arrays with
``BetaGeoFitter().fit`` in a subprocess, timed there. When it cannot import lifetimes the
comparison is skipped with a message. Targets: a fit in under 60 s, and at least 10 times
lifetimes' speed. Results go to bench/results/scoring_fit.json.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from crm_api.scoring.plugins.bgnbd import BGNBD, BGNBDConfig
from crm_api.scoring.protocol import Features, TimeUnit

# Fader, Hardie & Lee (2005), CDNOW, in weeks
CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
FIRST_PURCHASE_DAYS = 84  # first purchases during the first 12 weeks
OBSERVED_DAYS = 272  # 1997-01-01 to 1997-09-30
MAX_SECONDS = 60.0
MIN_SPEEDUP = 10.0

LIFETIMES_FIT = """
import json, sys, time
import numpy as np
import lifetimes

arrays = np.load(sys.argv[1])
seconds = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    fitter = lifetimes.BetaGeoFitter().fit(arrays["x"], arrays["t_x"], arrays["T"])
    seconds.append(time.perf_counter() - started)
print(json.dumps({"version": lifetimes.__version__, "seconds": seconds,
                  "parameters": fitter.params_.to_dict()}))
"""


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scoring_fit",
        description="BG/NBD fit time on synthetic customers, against lifetimes' BetaGeoFitter.",
    )
    add = parser.add_argument
    add("--customers", type=int, default=1_000_000, help="customers drawn (default 1000000)")
    add("--seed", type=int, default=7, help="seed of the draws (default 7)")
    add("--rounds", type=int, default=3, help="timed fits of ours; the best counts (default 3)")
    add(
        "--lifetimes-python",
        default=sys.executable,
        help="an interpreter that can import lifetimes (default: this one)",
    )
    add("--lifetimes-rounds", type=int, default=1, help="timed fits of lifetimes (default 1)")
    add("--check", action="store_true", help="exit 1 when a target is missed (for CI)")
    args = parser.parse_args(argv)
    if min(args.customers, args.rounds, args.lifetimes_rounds) < 1:
        parser.error("--customers and the rounds must be positive")
    return args


def synthesise(customers: int, seed: int) -> Features:
    """Histories drawn from the model: purchase rate ~ Gamma(r, alpha), dropout probability
    ~ Beta(a, b). By T, n ~ Poisson(rate T) purchases would have happened, but the customer
    leaves after the j-th repeat purchase, j ~ Geometric(p): x = min(n, j). The n purchase
    times being uniform on (0, T], t_x is the x-th of n uniforms, T * Beta(x, n - x + 1)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(CDNOW["r"], 1 / CDNOW["alpha"], customers)
    dropout = rng.beta(CDNOW["a"], CDNOW["b"], customers)
    age_days = OBSERVED_DAYS - rng.integers(0, FIRST_PURCHASE_DAYS, customers)
    would_buy = rng.poisson(rate * age_days / 7)
    x = np.minimum(would_buy, rng.geometric(dropout))
    last_share = rng.beta(np.maximum(x, 1), would_buy - x + 1)
    last_day = np.where(x > 0, np.floor(last_share * age_days), 0)
    zeros, nothing = np.zeros(customers), np.full(customers, np.nan)
    return Features(
        customer_ids=np.arange(customers),
        frequency=x.astype(float),
        recency=last_day / 7,
        T=age_days / 7,
        monetary=zeros,
        purchases=x + 1.0,
        total_spend=zeros,
        days_since_last_activity=(age_days - last_day).astype(float),
        interactions=x + 1.0,
        nps_mean=nothing,
        csat_mean=nothing,
        time_unit=TimeUnit.WEEKS,
        currency="USD",
    )


def time_ours(features: Features, rounds: int) -> dict[str, Any]:
    seconds, fitted = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        fitted = BGNBD(BGNBDConfig()).fit(features)
        seconds.append(time.perf_counter() - started)
    assert fitted is not None
    return {"seconds": seconds, "parameters": fitted.parameters, **fitted.diagnostics}


def time_lifetimes(python: str, features: Features, rounds: int) -> dict[str, Any] | None:
    probe = subprocess.run([python, "-c", "import lifetimes"], capture_output=True, check=False)
    if probe.returncode != 0:
        print(
            f"lifetimes comparison skipped: {python} cannot import lifetimes "
            "(pass --lifetimes-python with an interpreter that can).",
            file=sys.stderr,
        )
        return None
    with tempfile.TemporaryDirectory() as folder:
        arrays = Path(folder) / "histories.npz"
        np.savez(arrays, x=features.frequency, t_x=features.recency, T=features.T)
        done = subprocess.run(
            [python, "-c", LIFETIMES_FIT, str(arrays), str(rounds)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.splitlines()[-1])


def render(results: dict[str, Any]) -> str:
    ours, theirs = results["bgnbd"], results["lifetimes"]

    def cells(run: dict[str, Any]) -> tuple[str, ...]:
        p = run["parameters"]
        figures = (min(run["seconds"]), statistics.median(run["seconds"]))
        return (*(f"{s:.2f}" for s in figures), *(f"{p[k]:.3f}" for k in CDNOW))

    rows = [report.Row("drawn with", ("", "", *(f"{v:.3f}" for v in CDNOW.values())))]
    if theirs is not None:
        rows.append(report.Row(f"(L) lifetimes {theirs['version']}", cells(theirs), share=1.0))
    rows.append(
        report.Row(
            "crm-api bgnbd",
            cells(ours),
            share=results["speedup"],
            target=MIN_SPEEDUP if theirs is not None else None,
        )
    )
    table = report.section(
        f"BG/NBD fit, {results['customers']:,} customers",
        ("best s", "median s", *CDNOW),
        rows,
        vs="(L)",
    )
    limit = "PASS" if results["within_limit"] else "FAIL"
    return (
        f"{table}\n(vs (L): lifetimes' best time / ours)\n"
        f"best fit {min(ours['seconds']):.2f} s, limit {MAX_SECONDS:.0f} s: {limit}"
    )


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    features = synthesise(args.customers, args.seed)
    print(f"drawn {args.customers:,} customers; fitting ...", file=sys.stderr)
    ours = time_ours(features, args.rounds)
    theirs = time_lifetimes(args.lifetimes_python, features, args.lifetimes_rounds)
    best = min(ours["seconds"])
    results = {
        "customers": args.customers,
        "seed": args.seed,
        "bgnbd": ours,
        "lifetimes": theirs,
        "speedup": min(theirs["seconds"]) / best if theirs else None,
        "within_limit": best < MAX_SECONDS,
    }
    results["passed"] = results["within_limit"] and (
        theirs is None or results["speedup"] >= MIN_SPEEDUP
    )
    path = report.write("scoring_fit", results)
    print(render(results))
    print(f"\nresults: {path}")
    return 1 if args.check and not results["passed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
