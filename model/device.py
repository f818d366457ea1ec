"""Precision and compilation per device: what a trial trains with when its settings say ``auto``.

The rule (a user can always force either setting: ``--set precision=float32``,
``--set jit_compile=false``):

* **CPU**: float32, no XLA. Neither alternative was faster on this project's CPU
  (``python -m benchmarks.throughput``: XLA-compiled steps at 0.23x the float32 step's samples
  per second; mixed bfloat16 at 0.99-1.09x).
* **GPU**: XLA-compiled steps when the trial runs as one replica. The paper's model is small
  (about 5 GFLOP a step), so a step is bound by kernel launches and host work, which XLA's
  fusion removes (TensorFlow's XLA guide, https://www.tensorflow.org/xla). Under several
  workers the steps stay uncompiled: this loop's collective ops are not compiled with XLA.
* **Mixed bfloat16 on GPUs of compute capability 8.0 and newer** (Ampere, Hopper: A10G, A100,
  H100, H200), whose tensor cores run bfloat16 (NVIDIA's Ampere architecture whitepaper);
  float32 on older GPUs, where bfloat16 has no fast path and float16 would need loss scaling,
  which this loop does not do. bfloat16 keeps float32's exponent range, so no loss scaling is
  needed; weights and losses stay float32 (tested on CPU).

Nothing here touches a GPU: :func:`resolve` takes the devices as data, and
:func:`visible_gpus` reads them from TensorFlow in the trial process.

**Memory when trials share a GPU** (:func:`configure_memory`, called in every trial process
before TensorFlow initialises its devices). TensorFlow otherwise reserves nearly all of a GPU's
memory in the first process that touches it, and a second trial on the same GPU fails. With a
share of 1/N of a GPU, each process gets a hard limit of its share of the GPU's memory (read
from ``nvidia-smi``), minus 5 % for the CUDA context: a limit, not memory growth, because growth
lets one trial's peak take what another needs later, so an out-of-memory error would hit
whichever trial grows last. Without ``nvidia-smi`` the share falls back to memory growth, and a
whole GPU gets memory growth too (the default would also hold it all, but growth leaves room for
a monitoring tool).
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass

AUTO = "auto"
BF16_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class DevicePolicy:
    """What one trial trains with, and why (recorded in its result and in ``trials.parquet``)."""

    device: str                 # "cpu" or "gpu"
    precision: str              # "float32" or "mixed_bfloat16"
    jit_compile: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def resolve(precision: str, jit_compile, gpus: list[tuple[int, int]], *, replicas: int = 1) -> DevicePolicy:
    """The policy for settings ``precision`` and ``jit_compile`` (``auto`` or a forced value) on
    ``gpus``, the compute capabilities of the GPUs the trial sees (empty: CPU)."""
    if not gpus:
        device, auto_precision, auto_jit, why = "cpu", "float32", False, "CPU: float32, no XLA (measured faster here)"
    else:
        modern = all(tuple(c) >= BF16_CAPABILITY for c in gpus)
        auto_precision = "mixed_bfloat16" if modern else "float32"
        auto_jit = replicas == 1
        device = "gpu"
        why = (f"GPU compute capability {min(tuple(c) for c in gpus)}: "
               + ("bfloat16 tensor cores" if modern else "no bfloat16 fast path")
               + ("; XLA for one replica" if auto_jit else "; no XLA across workers"))
    forced = [name for name, value in (("precision", precision), ("jit_compile", jit_compile)) if value != AUTO]
    if forced:
        why += f" ({' and '.join(forced)} set by the study)"
    return DevicePolicy(device, auto_precision if precision == AUTO else precision,
                        auto_jit if jit_compile == AUTO else bool(jit_compile), why)


def visible_gpus() -> list[tuple[int, int]]:
    """Compute capabilities of the GPUs TensorFlow sees in this process (empty on a CPU)."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability) if capability else (0, 0))
    return found


MEMORY_HEADROOM = 0.95   # of a GPU share: the rest is left for the CUDA context


def gpu_memory_mb() -> list[int]:
    """Total memory of each GPU in MiB, from ``nvidia-smi`` (empty when it is not there)."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                          capture_output=True, text=True, timeout=30)
    return [int(line) for line in done.stdout.split() if line.strip().isdigit()] if done.returncode == 0 else []


_CONFIGURED: dict | None = None  # a process configures its GPUs once; reused trial processes keep it


def configure_memory(share: float) -> dict:
    """Limit (or let grow) TensorFlow's GPU memory for a trial holding ``share`` of each of its
    GPUs; return what was done, for the trial's records. Must run before TensorFlow initialises
    its devices; a process that already did keeps its first setting (and says so)."""
    global _CONFIGURED
    if _CONFIGURED is not None:
        return {**_CONFIGURED, "note": "configured by this process's first trial"}
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        _CONFIGURED = {"mode": "none", "share": share, "note": "TensorFlow sees no GPU"}
        return _CONFIGURED
    totals = gpu_memory_mb() if share < 1 else []
    try:
        if share < 1 and len(totals) >= len(gpus):
            limits = [int(total * share * MEMORY_HEADROOM) for total in totals[:len(gpus)]]
            for gpu, limit in zip(gpus, limits):
                tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit)])
            _CONFIGURED = {"mode": "limit", "share": share, "limit_mb": limits}
        else:
            for gpu in gpus:
                tf.config.experimental.set_memory_growth(gpu, True)
            _CONFIGURED = {"mode": "growth", "share": share,
                           "note": "whole GPU" if share >= 1 else "nvidia-smi not found: no memory total to divide"}
    except RuntimeError as exc:  # TensorFlow had initialised its GPUs already
        _CONFIGURED = {"mode": "unchanged", "share": share, "note": f"too late: {exc}"}
    return _CONFIGURED
