"""9. Scale: what the report's analysis and the driver's bookkeeping cost as a study grows.

    python -m benchmarks.scale [--quick] [--baseline-rev REV] [--budget SECONDS]

Synthetic studies of 10, 30, 100, 1,000 and 3,000 configurations x 3 seeds with 3 objectives,
and of 10, 30, 100 and 1,000 with 5 (weights a, b, c and a weighting method per configuration; metrics that
trade off with the weights, seed noise on top; 10 epochs per trial; see
``benchmarks/scale_measure.py``). Timed, in a fresh process per size:

- the whole report, as ``python -m study.report`` makes it (analysis, importance, every plot and
  the summary), and its parts: the front with P(on front) (``configs_with_front``), the
  hypervolume with its interval and history, the methods comparison, the overfitting table, and
  the recipe comparison of 4 named recipes x 3 seeds on a test split of 1,000 studies;
- the driver's bookkeeping per finished trial after 10, 100 and 1,000 finished trials: the two
  Tune callbacks (records, progress line) on trial directories laid out as trials write them.

Each measure runs twice, side by side: in this tree and in ``--baseline-rev`` (default: the
commit before this work), extracted with ``git archive`` into the workspace, at every size where
the baseline finishes within ``--budget`` seconds (a size where its previous time, grown as n^2,
would exceed the budget is not tried). Where both finish, their answers are
compared (hypervolumes to 1e-9, the front and P(on front) exactly). The growth exponent is the
slope of log(time) over log(size) between the two largest sizes measured.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BASELINE_REV = "f2b92d4"  # before moocore and incremental records (issue 25)
FULL = {"configs": {3: (10, 30, 100, 1000, 3000), 5: (10, 30, 100, 1000)}, "finished": (10, 100, 1000),
        "budget": 600}
QUICK = {"configs": {3: (5, 10)}, "finished": (3, 10), "budget": 120}
SEEDS = 3
MEASURE = Path(__file__).resolve().parent / "scale_measure.py"  # the child, run in either tree


# ---- the side-by-side runner ----------------------------------------------------------------------
def baseline_tree(workdir: Path, rev: str) -> Path | None:
    """``rev``'s code (``data``, ``model``, ``study``) extracted into ``workdir``, or None when
    git cannot provide it (a source tarball, a shallow clone)."""
    out = workdir / f"baseline-{rev}"
    if (out / "study").exists():
        return out
    tmp = workdir / f".baseline-{rev}.tmp"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "data", "model", "study"],
                             capture_output=True)
    if archive.returncode:
        print(f"  no baseline: git archive {rev} failed ({archive.stderr.decode().strip()[:120]})")
        return None
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    tmp.replace(out)
    return out


def run_child(task: dict, tree: Path, budget: float) -> dict | None:
    """``task`` measured in a fresh process whose ``study`` package is ``tree``'s; None when it
    does not finish within ``budget`` seconds."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    try:  # run by file path from ``tree``: its study package comes first on sys.path
        child = subprocess.run([sys.executable, str(MEASURE), json.dumps(task)], cwd=tree, env=env,
                               capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        return None
    if child.returncode:
        raise RuntimeError(f"scale child {task} in {tree} failed:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def same_answers(ours: dict, theirs: dict) -> bool:
    """Equal fronts and P(on front); hypervolumes, methods and recipes to 1e-9."""
    for key, value in ours.items():
        other = theirs.get(key)
        if isinstance(value, dict) and key != "p_pareto":
            value, other = (np.array([v for v in d.values() if not isinstance(v[0], str)], float)
                            for d in (value, other))
        if key in ("front", "p_pareto", "overfit"):
            if value != other:
                return False
        elif not np.allclose(np.asarray(value, float), np.asarray(other, float), rtol=0, atol=1e-9,
                             equal_nan=True):
            return False
    return True


def growth(sizes: list, seconds: list) -> float:
    """Slope of log(seconds) over log(size) between the two largest sizes (nan with fewer)."""
    pairs = [(n, s) for n, s in zip(sizes, seconds) if s is not None and s > 0]
    if len(pairs) < 2:
        return float("nan")
    (n0, s0), (n1, s1) = pairs[-2:]
    return float(np.log(s1 / s0) / np.log(n1 / n0))


def run(ws, *, baseline_rev: str = BASELINE_REV, budget: float | None = None):
    from .common import Finding, Outcome

    size = QUICK if ws.quick else FULL
    budget = budget or size["budget"]
    base = baseline_tree(ws.root, baseline_rev)
    details = {"baseline_rev": baseline_rev, "budget_seconds": budget, "analysis": [], "bookkeeping": []}
    findings = []

    def both(task):
        ours = run_child(task, ROOT, budget * 4)
        theirs = run_child(task, base, budget) if base and not task.get("skip_baseline") else None
        return ours, theirs

    for k, sizes in size["configs"].items():
        last = None  # the baseline's last (size, seconds): it is not run where it would overrun
        for n in sizes:
            # its cost grows at least as n^2: skip a size it cannot finish within the budget
            hopeless = last is None and n != sizes[0] or (last and last[1] * (n / last[0]) ** 2 > budget)
            ours, theirs = both({"measure": "analysis", "n": n, "objectives": k, "skip_baseline": bool(hopeless)})
            last = (n, theirs["seconds"]["report"]) if theirs else None
            row = {"objectives": k, "configs": n, "ours": ours["seconds"],
                   "baseline": theirs["seconds"] if theirs else None,
                   "same_answers": same_answers(ours["answers"], theirs["answers"]) if theirs else None}
            details["analysis"].append(row)
            print(f"  report, {k} objectives, {n:5d} configurations: {ours['seconds']['report']:8.2f} s"
                  f"  (baseline {theirs['seconds']['report']:.2f} s, same answers: {row['same_answers']})" if theirs
                  else f"  report, {k} objectives, {n:5d} configurations: {ours['seconds']['report']:8.2f} s"
                       f"  (baseline: would not finish in {budget:.0f} s)", flush=True)
    for n in size["finished"]:
        ours, theirs = both({"measure": "bookkeeping", "n": n})
        details["bookkeeping"].append({"finished": n, "ours": ours["seconds"],
                                       "baseline": theirs["seconds"] if theirs else None})
        print(f"  bookkeeping after {n:5d} finished trials: {1e3 * ours['seconds']['per_trial']:8.1f} ms per trial"
              + (f"  (baseline {1e3 * theirs['seconds']['per_trial']:.1f} ms)" if theirs else ""), flush=True)

    for k in size["configs"]:
        rows = [r for r in details["analysis"] if r["objectives"] == k]
        largest = next((r for r in rows if r["configs"] == 1000), rows[-1])  # the targets are set at 1,000
        at = max((r for r in rows if r["baseline"]), key=lambda r: r["configs"], default=None)
        target = 60 if k == 3 else 300
        findings.append(Finding("9 scale", f"report analysis, {largest['configs']} configs x {SEEDS} seeds, {k} objectives",
                                largest["ours"]["report"], target, "s", largest["ours"]["report"] / target,
                                ("<=", 1.0) if largest["configs"] >= 1000 else None))
        if at:
            findings.append(Finding("9 scale", f"report analysis at {at['configs']} configs ({k} obj.): ours vs {baseline_rev}",
                                    at["ours"]["report"], at["baseline"]["report"], "s",
                                    at["ours"]["report"] / at["baseline"]["report"]))
        details[f"growth_analysis_{k}"] = growth([r["configs"] for r in rows], [r["ours"]["report"] for r in rows])
    books = details["bookkeeping"]
    first, last = books[0]["ours"]["per_trial"], books[-1]["ours"]["per_trial"]
    findings.append(Finding("9 scale", f"bookkeeping per trial at {books[-1]['finished']} vs {books[0]['finished']} finished",
                            last, first, "s", last / first, ("<=", 2.0) if books[-1]["finished"] >= 1000 else None))
    details["growth_bookkeeping"] = growth([b["finished"] for b in books], [b["ours"]["per_trial"] for b in books])
    return Outcome("scale", findings, details)


def main(argv=None):
    from .common import DEFAULT_WORKDIR, Workspace, format_table, run_timed

    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test of the output)")
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where the baseline tree is extracted")
    p.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline code")
    p.add_argument("--budget", type=float, help="seconds a baseline measure may take before it is left out")
    a = p.parse_args(argv)
    if a.budget is not None and a.budget <= 0:
        p.error(f"--budget: must be > 0 seconds, got {a.budget}")
    ws = Workspace(a.workdir, a.quick)
    outcome = run_timed(lambda ws: run(ws, baseline_rev=a.baseline_rev, budget=a.budget), ws)
    print("\n" + format_table(outcome.findings))
    details = ws.root / "scale.json"  # every size's parts, for the docs' table
    details.write_text(json.dumps(outcome.to_dict(), indent=1, default=float))
    print(f"details: {details}")
    return outcome


if __name__ == "__main__":
    main()
