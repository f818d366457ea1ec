"""DB-MTL: dual-balancing multi-task learning (Lin et al., 2023), as LibMTL computes it.

Loss scale: every task's loss is replaced by its logarithm (so tasks with losses of different
magnitude count alike). Gradient scale: an exponential moving average of each task's gradient,
m_t <- g_t + beta / k^beta_sigma (m_t - g_t) at step k, and the update sum_t (max_j |m_j| / |m_t|) m_t
gives every task the largest task's gradient norm.

Under data parallelism, d log L / d theta = (dL / d theta) / L with L the *global* loss, so each
replica differentiates its part of the loss divided by the global loss: summed over replicas, the
gradient is the single-process one.
"""
from __future__ import annotations

import tensorflow as tf

from .base import GradientWeighting


class DBMTL(GradientWeighting):
    name = "dbmtl"

    def __init__(self, tasks, *, beta: float = 0.9, beta_sigma: float = 0.5):
        super().__init__(tasks)
        self.beta, self.beta_sigma = beta, beta_sigma
        self.step = tf.Variable(0.0, trainable=False, name="dbmtl_step")
        self.buffer = None

    def prepare(self, size: int) -> None:
        self.buffer = tf.Variable(tf.zeros([len(self.tasks), size]), trainable=False, name="dbmtl_buffer")

    def objectives(self, losses: dict, global_losses: dict) -> dict:
        return {t: losses[t] / tf.stop_gradient(global_losses[t] + 1e-8) for t in self.tasks}

    def combine_gradients(self, grads, losses: dict):
        self.step.assign_add(1.0)
        decay = self.beta / self.step ** self.beta_sigma
        self.buffer.assign(grads + decay * (self.buffer - grads))
        norms = tf.norm(self.buffer, axis=1)
        alpha = tf.reduce_max(norms) / (norms + 1e-8)
        self._record(alpha)
        return tf.linalg.matvec(self.buffer, alpha, transpose_a=True)

    def get_state(self) -> dict:
        return {"w": self.weights(), "step": float(self.step.numpy()),
                "buffer": self.buffer.numpy().tolist() if self.buffer is not None else None}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.step.assign(state["step"])
        if state["buffer"] is not None:
            self.buffer.assign(state["buffer"])
