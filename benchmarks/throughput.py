"""4. Training throughput against the machine's limit.

    python -m benchmarks.throughput [--quick]

* Peak: the best float32 dense matmul rate (``tf.matmul`` of square matrices) in this process.
* Work: the floating-point operations of one train step of the default model (forward, backward,
  clipping, Adam), counted by TensorFlow's profiler on the step's compiled graph.
* Speed: samples/s of the product's train step (``model.train.Trainer``) on batches already in
  memory (the step alone), and of a whole epoch through its ``tf.data`` pipeline.
* Variants: mixed bfloat16 (``TrainConfig.precision``), timed round-robin with the float32 step
  so that the machine's drift hits both alike, and XLA (``jit_compile``), timed last on its own
  because its CPU runtime slows everything that runs after it in the process. The fastest is
  reported; the README says which one the study uses and why.
* Profile: where a float32 step's CPU time goes, per TensorFlow op type (from a profiler trace).
"""
from __future__ import annotations

import collections
import glob
import statistics
import tempfile
import time
from dataclasses import replace

from .common import Finding, Outcome, cli, graph_flops

FULL = {"matmul_sizes": (2048, 4096), "rounds": 5, "profile_steps": 10}
QUICK = {"matmul_sizes": (256,), "rounds": 1, "profile_steps": 2}
MATMUL_OPS = ("MatMul", "BatchMatMul")  # substrings: also oneDNN's _MklMatMul, _MklBatchMatMulV2


def matmul_peak(sizes) -> dict:
    """Best float32 matmul FLOP/s over the given square sizes (each timed after a warm-up)."""
    import tensorflow as tf

    best = {}
    for n in sizes:
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        (a @ b).numpy()
        reps = max(2, int(2e10 // (2 * n ** 3)))  # about 20 GFLOP per size
        start = time.perf_counter()
        for _ in range(reps):
            c = a @ b
        c.numpy()
        best[n] = 2 * n ** 3 * reps / (time.perf_counter() - start)
    return {"flops": max(best.values()), "by_size": best}


def op_profile(trainer, batches) -> list[dict]:
    """CPU milliseconds per step by TensorFlow op type, from a profiler trace of ``batches``."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for batch in batches:
            trainer._train_step(batch)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb").read())
    totals = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor threads that run kernels
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name.split(":")[-1]
                if name != "Process":  # the executor's wrapper around each batch of kernels
                    totals[name] += event.duration_ps / 1e9 / len(batches)
    busy = sum(totals.values())
    return [{"op": op, "ms_per_step": ms, "share": ms / busy} for op, ms in totals.most_common()]


def _time_steps(trainers: dict, batches, rounds: int) -> dict:
    """Seconds per step of each trainer, passes over ``batches`` taken round-robin."""
    for trainer in trainers.values():
        trainer._train_step(batches[0])  # trace and compile outside the timing
    times = {name: [] for name in trainers}
    for _ in range(rounds):  # round-robin: drift on a shared machine hits every variant alike
        for name, trainer in trainers.items():
            clock = time.perf_counter()
            for batch in batches:
                out = trainer._train_step(batch)
            float(out["text"])
            times[name].append((time.perf_counter() - clock) / len(batches))
    return times


def run(ws) -> Outcome:
    from model.config import ModelConfig
    from model.train import TrainConfig, Trainer

    size = QUICK if ws.quick else FULL
    dataset = ws.dataset()
    peak = matmul_peak(size["matmul_sizes"])
    cfg = ModelConfig.for_dataset(dataset)  # the default model: d_model 120, 3 heads, feed-forward 256
    # each variant forced: "auto" would pick by device
    train_cfg = TrainConfig(epochs=1, batch_size=32, learning_rate=1e-3, precision="float32", jit_compile=False)
    trainers = {"float32": Trainer(cfg, train_cfg, dataset),
                "mixed bfloat16": Trainer(cfg, replace(train_cfg, precision="mixed_bfloat16"), dataset)}
    base = trainers["float32"]
    batches = list(base._distributed("train", 1, training=True))  # one epoch, in memory
    samples = len(batches) * base.batch_size
    flops = graph_flops(base._train_step, batches[0])
    times = _time_steps(trainers, batches, size["rounds"])
    epoch_clock = time.perf_counter()
    for batch in base._distributed("train", 2, training=True):  # the product's whole input path
        base._train_step(batch)
    epoch = time.perf_counter() - epoch_clock
    profile = op_profile(base, batches[: size["profile_steps"]])
    # XLA last and on its own: once its CPU runtime has started, the other variants run slower
    times.update(_time_steps({"float32 + XLA": Trainer(cfg, replace(train_cfg, jit_compile=True), dataset)}, batches, size["rounds"]))
    step = {name: statistics.median(t) for name, t in times.items()}
    matmul_share = sum(p["share"] for p in profile if any(m in p["op"] for m in MATMUL_OPS))
    best = min(step, key=step.get)
    achieved = flops / step["float32"]
    rows = {name: {"step_ms": 1e3 * s, "samples_per_s": base.batch_size / s, "gflops": flops / s / 1e9,
                   "of_peak": flops / s / peak["flops"], "vs_float32": step["float32"] / s,
                   "all_ms": [1e3 * t for t in times[name]]} for name, s in step.items()}
    print(f"peak float32 matmul: {peak['flops'] / 1e9:.0f} GFLOP/s; one train step (batch "
          f"{base.batch_size}): {flops / 1e9:.2f} GFLOP")
    for name, r in rows.items():
        print(f"  {name:15s} {r['step_ms']:7.1f} ms/step  {r['samples_per_s']:6.0f} samples/s  "
              f"{r['gflops']:6.1f} GFLOP/s = {100 * r['of_peak']:4.1f} % of peak  ({r['vs_float32']:.2f}x float32)")
    print(f"  whole epoch with the tf.data pipeline: {samples / epoch:.0f} samples/s")
    print(f"profile (CPU time per step): matmuls {100 * matmul_share:.0f} %; top ops: " +
          ", ".join(f"{p['op']} {100 * p['share']:.0f} %" for p in profile[:6]))
    findings = [
        Finding("4 Throughput", f"train step float32, batch {base.batch_size}: achieved vs matmul peak",
                achieved / 1e9, peak["flops"] / 1e9, "GFLOP/s", achieved / peak["flops"], (">=", 0.40)),
        *[Finding("4 Throughput", f"{name} vs float32 step", rows[name]["samples_per_s"],
                  rows["float32"]["samples_per_s"], "samples/s", rows[name]["vs_float32"])
          for name in rows if name != "float32"],
    ]
    details = {"peak": peak, "step_flops": flops, "batch": base.batch_size, "variants": rows, "best": best,
               "epoch_samples_per_s": samples / epoch, "profile": profile[:20], "matmul_share": matmul_share}
    return Outcome("throughput", findings, details)


def main(argv=None) -> Outcome:
    return cli("throughput", run, argv, __doc__)


if __name__ == "__main__":
    main()
