"""Run every benchmark, print one table, write ``benchmarks/results.json``.

    python -m benchmarks [--quick] [--only sweep throughput ...] [--workdir DIR] [--output FILE]
    make bench                       # the same, full size (about 14 minutes on 2 cores)

Each benchmark is also a module of its own (``python -m benchmarks.<name> [--quick]``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import decoding, feature_cache, iu_text, labeler, scale, search, sweep, throughput, weighting
from .common import DEFAULT_WORKDIR, ROOT, Workspace, format_table, run_timed, write_results

# feature_cache first: it times the first preparation of the workspace's cohort
BENCHMARKS = {"feature_cache": feature_cache, "decoding": decoding, "throughput": throughput,
              "labeler": labeler, "iu_text": iu_text, "search": search, "sweep": sweep, "weighting": weighting,
              "scale": scale}


def build_parser() -> argparse.ArgumentParser:
    """The command's flags (the CLI reference is generated from it)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs (minutes)")
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where the cohort, runs and logs are kept")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"), help="results file")
    return p


def main(argv=None) -> dict:
    p = build_parser()
    a = p.parse_args(argv)
    ws = Workspace(a.workdir, a.quick)
    outcomes, start = [], time.perf_counter()
    for name in a.only or BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        outcome = run_timed(BENCHMARKS[name].run, ws)
        outcomes.append(outcome)
        print(f"({name}: {outcome.seconds:.0f} s)", flush=True)
    findings = sorted((f for o in outcomes for f in o.findings), key=lambda f: f.benchmark)
    print(f"\nall benchmarks: {time.perf_counter() - start:.0f} s\n")
    print(format_table(findings))
    write_results(Path(a.output), outcomes, a.quick)
    print(f"\nresults: {a.output}; logs and runs: {ws.root}")
    return {"findings": findings, "outcomes": outcomes}


if __name__ == "__main__":
    main()
