"""8. Weighting methods: the cost of a training step of the default model, against static weights.

    python -m benchmarks.weighting [--quick]

Each method runs in its own process (so each peak memory is its own), on the workspace cohort:
the default model (all three tasks), batch 32, ``steps`` train steps timed after two untimed
ones (compilation). Reported per method: seconds per step and its ratio to static weights, and
the process's peak resident memory and its ratio. Loss methods take one backward pass; gradient
methods take one per task through the shared encoder, plus their combination (a T x T problem).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

from .common import DEFAULT_WORKDIR, Finding, Outcome, Workspace, format_table, run_timed

FULL = {"steps": 20, "rounds": 3}
QUICK = {"steps": 2, "rounds": 1}


def measure(ws: Workspace, name: str) -> dict:
    """In this process: seconds per train step with weighting ``name`` and the peak RSS."""
    from model.config import ModelConfig, TrainConfig
    from model.train import Trainer

    size = QUICK if ws.quick else FULL
    dataset = ws.dataset()
    trainer = Trainer(ModelConfig.for_dataset(dataset), TrainConfig(epochs=1, batch_size=32, weighting=name), dataset)
    batches = list(trainer._distributed("train", 1, training=True))
    batches = (batches * (size["steps"] // len(batches) + 1))[: size["steps"]]
    for batch in batches[:2]:
        trainer._train_step(batch)  # trace and compile
    times = []
    for _ in range(size["rounds"]):
        start = time.perf_counter()
        for batch in batches:
            out = trainer._train_step(batch)
        float(out["text"])
        times.append((time.perf_counter() - start) / len(batches))
    return {"seconds_per_step": statistics.median(times),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run(ws: Workspace) -> Outcome:
    from model.weighting import STRATEGIES

    ws.dataset()  # encode once here; the children reuse the cache
    rows = {}
    for name in STRATEGIES:
        child = subprocess.run([sys.executable, "-m", "benchmarks.weighting", "--child", name,
                                "--workdir", str(ws.root), *(["--quick"] if ws.quick else [])],
                               capture_output=True, text=True, check=True)
        rows[name] = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  {name:12s} {1e3 * rows[name]['seconds_per_step']:8.1f} ms/step  "
              f"{rows[name]['peak_rss_mb']:7.0f} MB peak", flush=True)
    base = rows["static"]
    findings = []
    for name, r in rows.items():
        if name == "static":
            continue
        findings.append(Finding("8 Weighting", f"{name}: step time vs static", r["seconds_per_step"],
                                base["seconds_per_step"], "s/step", r["seconds_per_step"] / base["seconds_per_step"]))
        findings.append(Finding("8 Weighting", f"{name}: peak memory vs static", r["peak_rss_mb"],
                                base["peak_rss_mb"], "MB", r["peak_rss_mb"] / base["peak_rss_mb"]))
    return Outcome("weighting", findings, {"methods": rows})


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.weighting", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where the cohort is kept")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one method, in its own process
    a = p.parse_args(argv)
    ws = Workspace(a.workdir, a.quick)
    if a.child:
        print(json.dumps(measure(ws, a.child)))
        return None
    outcome = run_timed(run, ws)
    print("\n" + format_table(outcome.findings))
    return outcome


if __name__ == "__main__":
    main()
