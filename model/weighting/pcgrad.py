"""PCGrad: gradient surgery (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020).

For each task i, its gradient is projected, task by task in a random order, onto the normal plane
of every other task's gradient it conflicts with (negative inner product):
g_i <- g_i - (g_i . g_j) / |g_j|^2 g_j; the shared gradient is the sum of the projected gradients.
The order is drawn from a stateless generator seeded by the step and the task, so every replica
draws the same (and a resumed run the same as an uninterrupted one).
"""
from __future__ import annotations

import tensorflow as tf

from .base import GradientWeighting


class PCGrad(GradientWeighting):
    name = "pcgrad"

    def __init__(self, tasks):
        super().__init__(tasks)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="pcgrad_step")

    def combine_gradients(self, grads, losses: dict):
        n = len(self.tasks)
        self.step.assign_add(1)
        projected = []
        for i in range(n):
            g = grads[i]
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n), seed=tf.stack([tf.constant(i, tf.int64), self.step]))
            for k in range(n):
                other = tf.gather(grads, order[k])
                dot = tf.tensordot(g, other, 1)   # g_i . g_i > 0: a task never projects off itself
                g = tf.where(dot < 0, g - dot / (tf.tensordot(other, other, 1) + 1e-20) * other, g)
            projected.append(g)
        self._record(tf.ones([n]))
        return tf.add_n(projected)

    def get_state(self) -> dict:
        return {"w": self.weights(), "step": int(self.step.numpy())}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.step.assign(state["step"])
