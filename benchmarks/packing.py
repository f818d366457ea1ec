"""Trials packed on one GPU: trials per GPU-hour with 1, 2, 4 and 8 trials sharing it.

    python -m benchmarks.packing [--quick]       (run by benchmarks/gpu_check.sh on a GPU node)

For each N, ``study/run.py`` trains N configurations of the smoke space at ``--trials-per-gpu N``
on this machine's first GPU, all at once, and the records give the throughput: N trials over the
time from the first trial's start to the last one's finish (``trials.parquet``'s ``started_at``
and ``finished_at``), per GPU-hour. The baseline is N = 1, one trial holding the GPU alone; the
ratio is what packing gains. Each trial's ``workers/rank-0.json`` shows the memory limit it ran
under. Needs a GPU that TensorFlow sees; never part of the test suite (only
:func:`packing_rows` is tested, on hand-made records).
"""
from __future__ import annotations

import os
import time

import pandas as pd

from .common import Finding, Outcome, cli, run_python

PACKS = (1, 2, 4, 8)
EPOCHS = {"full": 3, "quick": 1}


def packing_rows(runs: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per pack size N from each run's trial table: the trials finished, the span from
    the first start to the last finish, trials per GPU-hour (one GPU), and the gain over N = 1."""
    rows = []
    for n, trials in sorted(runs.items()):
        done = trials[trials["status"] == "TERMINATED"]
        span = float(done["finished_at"].max() - done["started_at"].min()) if len(done) else float("nan")
        rows.append({"trials_per_gpu": n, "trials": len(done), "span_s": span,
                     "trials_per_gpu_hour": 3600 * len(done) / span if len(done) else 0.0})
    table = pd.DataFrame(rows)
    base = table.loc[table["trials_per_gpu"] == 1, "trials_per_gpu_hour"]
    table["gain"] = table["trials_per_gpu_hour"] / (float(base.iloc[0]) if len(base) else float("nan"))
    return table


def run(ws) -> Outcome:
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise SystemExit("TensorFlow sees no GPU: install tensorflow[and-cuda] (cluster.yaml's setup "
                         "commands) on a machine with an NVIDIA driver")
    ws.dataset()
    runs, stamp, cores = {}, f"{time.time():.0f}", os.cpu_count() or 1
    for n in PACKS:  # the node's CPUs shared too, so that all N trials fit at once
        name = f"packing-{stamp}-{n}"
        exp = ws.root / "runs" / name
        run_python(["study/run.py", "--search-space", "smoke", "--num-samples", str(n), "--repeats", "1",
                    "--max-epochs", str(EPOCHS["quick" if ws.quick else "full"]), "--trials-per-gpu", str(n),
                    "--cpus-per-worker", f"{max(cores / n, 0.01):g}", "--storage", str(ws.root / "runs"), "--name", name,
                    *ws.study_flags()], ws.root / "logs" / f"{name}.log", env={"CUDA_VISIBLE_DEVICES": "0"})
        runs[n] = pd.read_parquet(exp / "trials.parquet")
    table = packing_rows(runs)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    best = table.loc[table["trials_per_gpu_hour"].idxmax()]
    one = table[table["trials_per_gpu"] == 1].iloc[0]
    findings = [Finding("GPU packing", f"trials per GPU-hour: {int(best['trials_per_gpu'])} per GPU vs 1 per GPU",
                        best["trials_per_gpu_hour"], one["trials_per_gpu_hour"], "trials/GPU-h", best["gain"])]
    return Outcome("packing", findings, {"runs": table.to_dict(orient="records")})


def main(argv=None) -> Outcome:
    return cli("packing", run, argv, __doc__)


if __name__ == "__main__":
    main()
