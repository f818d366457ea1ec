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
"""
from __future__ import annotations

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
