"""GPU vs CPU: training speed of the default model on each (run by ``benchmarks/gpu_check.sh``).

    python -m benchmarks.gpu [--quick]

Seconds per train step (batch 32, the step alone, batches already in memory) on the GPU in
float32, mixed bfloat16 and float32 with XLA-compiled steps, and on the CPU in float32 in a child process that cannot see the GPU
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


VARIANTS = {"float32": ("float32", False), "mixed_bfloat16": ("mixed_bfloat16", False),
            "float32 + XLA": ("float32", True)}  # name: (precision, jit_compile), each forced


def step_seconds(ws: Workspace, variants: tuple) -> dict:
    """Median seconds per train step for each of ``VARIANTS`` named, on whatever device TensorFlow picks."""
    from model.config import ModelConfig
    from model.train import TrainConfig, Trainer

    dataset = ws.dataset()
    cfg = ModelConfig.for_dataset(dataset)
    train_cfg = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3)
    trainers = {v: Trainer(cfg, replace(train_cfg, precision=VARIANTS[v][0], jit_compile=VARIANTS[v][1]), dataset)
                for v in variants}
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
    gpu = step_seconds(ws, tuple(VARIANTS))
    child = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--cpu-side", "--workdir", str(ws.root),
                            *(["--quick"] if ws.quick else [])],
                           env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True,
                           check=True)
    cpu = json.loads(child.stdout.strip().splitlines()[-1])["float32"]
    batch = 32
    print(f"GPU: {gpus[0].name} ({tf.config.experimental.get_device_details(gpus[0]).get('device_name', '?')})")
    for name, s in (("GPU float32", gpu["float32"]), ("GPU mixed bfloat16", gpu["mixed_bfloat16"]),
                    ("GPU float32 + XLA", gpu["float32 + XLA"]), ("CPU float32", cpu)):
        print(f"  {name:20s} {1e3 * s:8.1f} ms/step  {1 / s:7.1f} steps/s  {batch / s:8.0f} samples/s")
    findings = [Finding("GPU", "train step, GPU float32 vs CPU float32", 1 / gpu["float32"], 1 / cpu,
                        "steps/s", cpu / gpu["float32"]),
                Finding("GPU", "train step, GPU mixed bfloat16 vs GPU float32", 1 / gpu["mixed_bfloat16"],
                        1 / gpu["float32"], "steps/s", gpu["float32"] / gpu["mixed_bfloat16"]),
                Finding("GPU", "train step, GPU float32 + XLA vs GPU float32", 1 / gpu["float32 + XLA"],
                        1 / gpu["float32"], "steps/s", gpu["float32"] / gpu["float32 + XLA"])]
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
