"""Learning-rate schedules: linear warmup to a peak over a fraction of all steps, then a decay.

Paper: warmup over 10 % of steps to 3e-5. Decays: ``constant`` (hold the peak), ``linear`` (to 0 at
the last step), ``cosine`` (half cosine to 0), ``inverse_sqrt`` (peak * sqrt(warmup / step)).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from .config import SCHEDULES


@keras.saving.register_keras_serializable("mtl")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak_lr: float, total_steps: int, warmup_fraction: float = 0.1,
                 decay: str = "constant"):
        if decay not in SCHEDULES:
            raise ValueError(f"schedule decay must be one of {SCHEDULES}, got {decay!r}")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if total_steps < 1 or peak_lr <= 0:
            raise ValueError(f"need total_steps >= 1 and peak_lr > 0, got {total_steps}, {peak_lr}")
        self.peak_lr, self.total_steps = float(peak_lr), int(total_steps)
        self.warmup_fraction, self.decay = float(warmup_fraction), decay
        self.warmup_steps = max(1, round(warmup_fraction * total_steps)) if warmup_fraction else 0

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0  # the optimizer's first step is 0
        warm = float(max(self.warmup_steps, 1))
        total = float(self.total_steps)
        progress = tf.clip_by_value((step - warm) / max(total - warm, 1.0), 0.0, 1.0)
        decayed = {
            "constant": lambda: tf.constant(self.peak_lr),
            "linear": lambda: self.peak_lr * (1.0 - progress),
            "cosine": lambda: self.peak_lr * 0.5 * (1.0 + tf.cos(3.141592653589793 * progress)),
            "inverse_sqrt": lambda: self.peak_lr * tf.sqrt(warm / tf.maximum(step, warm)),
        }[self.decay]()
        if not self.warmup_steps:
            return decayed
        return tf.where(step <= warm, self.peak_lr * step / warm, decayed)

    def get_config(self):
        return {"peak_lr": self.peak_lr, "total_steps": self.total_steps,
                "warmup_fraction": self.warmup_fraction, "decay": self.decay}
