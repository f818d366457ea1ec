"""GPU vs CPU: training speed of the default model on each (run by ``benchmarks/gpu_check.sh``).

    python -m benchmarks.gpu [--quick]

Seconds per train step (batch 32, the step alone, batches already in memory) on the GPU in
float32 and mixed bfloat16, and on the CPU in float32 in a child process that cannot see the GPU
(``CUDA_VISIBLE_DEVICES=""``), so that nothing placed on the GPU leaks into the CPU figure.
Needs a GPU that TensorFlow sees; never part of the test suite.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import replace

from .common import DEFAULT_WORKDIR, Finding, Outcome, Workspace, format_table
from .throughput import _time_steps

ROUNDS = {"full": 5, "quick": 1}


def step_seconds(ws: Workspace, precisions: tuple) -> dict:
    """Median seconds per train step for each precision, on whatever device TensorFlow picks."""
    from model.config import ModelConfig
    from model.train import TrainConfig, Trainer

    dataset = ws.dataset()
    cfg = ModelConfig.for_dataset(dataset)
    train_cfg = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, jit_compile=False)  # precision forced below
    trainers = {p: Trainer(cfg, replace(train_cfg, precision=p), dataset) for p in precisions}
    batches = list(next(iter(trainers.values()))._distributed("train", 1, training=True))
    times = _time_steps(trainers, batches, ROUNDS["quick" if ws.quick else "full"])
    return {p: statistics.median(t) for p, t in times.items()}


def run(ws: Workspace) -> Outcome:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        raise SystemExit("TensorFlow sees no GPU: install tensorflow[and-cuda] (cluster.yaml's setup "
                         "commands) on a machine with an NVIDIA driver")
    ws.dataset()  # encode the cohort here (on the GPU) before the CPU child reuses the cache
    gpu = step_seconds(ws, ("float32", "mixed_bfloat16"))
    child = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--cpu-side", "--workdir", str(ws.root),
                            *(["--quick"] if ws.quick else [])],
                           env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True,
                           check=True)
    cpu = json.loads(child.stdout.strip().splitlines()[-1])["float32"]
    batch = 32
    print(f"GPU: {gpus[0].name} ({tf.config.experimental.get_device_details(gpus[0]).get('device_name', '?')})")
    for name, s in (("GPU float32", gpu["float32"]), ("GPU mixed bfloat16", gpu["mixed_bfloat16"]),
                    ("CPU float32", cpu)):
        print(f"  {name:20s} {1e3 * s:8.1f} ms/step  {1 / s:7.1f} steps/s  {batch / s:8.0f} samples/s")
    findings = [Finding("GPU", "train step, GPU float32 vs CPU float32", 1 / gpu["float32"], 1 / cpu,
                        "steps/s", cpu / gpu["float32"]),
                Finding("GPU", "train step, GPU mixed bfloat16 vs GPU float32", 1 / gpu["mixed_bfloat16"],
                        1 / gpu["float32"], "steps/s", gpu["float32"] / gpu["mixed_bfloat16"])]
    return Outcome("gpu", findings, {"gpu_seconds_per_step": gpu, "cpu_seconds_per_step": cpu,
                                     "device": gpus[0].name})


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="where the cohort is kept")
    p.add_argument("--cpu-side", action="store_true", help=argparse.SUPPRESS)  # the child process
    a = p.parse_args(argv)
    ws = Workspace(a.workdir, a.quick)
    if a.cpu_side:
        print(json.dumps(step_seconds(ws, ("float32",))))
        return
    print("\n" + format_table(run(ws).findings))


if __name__ == "__main__":
    main()
