"""GradNorm (Chen et al., ICML 2018), as LibMTL computes it on the shared parameters' gradients.

Task weights w = T softmax(s) scale each task's gradient; s learns to make every weighted gradient
norm G_i = |w_i g_i| equal to mean(G) r_i^alpha, where r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0))
is the task's relative inverse training rate (L_i(0): its loss at the first step). Each step takes
one plain gradient step of size ``lr`` on sum_i |G_i - mean(G) r_i^alpha| with respect to s (the
target held constant, as in the paper), after the update sum_i w_i g_i is formed with the current w.
"""
from __future__ import annotations

import tensorflow as tf

from .base import GradientWeighting


class GradNorm(GradientWeighting):
    name = "gradnorm"

    def __init__(self, tasks, *, alpha: float = 1.5, lr: float = 0.025):
        super().__init__(tasks)
        self.alpha, self.lr = alpha, lr
        self.logits = tf.Variable(tf.zeros([len(self.tasks)]), trainable=False, name="gradnorm_logits")
        self.initial = tf.Variable(tf.zeros([len(self.tasks)]), trainable=False, name="gradnorm_initial_losses")

    def combine_gradients(self, grads, losses: dict):
        n = float(len(self.tasks))
        current = tf.stack([losses[t] for t in self.tasks])
        self.initial.assign(tf.where(self.initial > 0, self.initial, current))     # L_i(0)
        norms = tf.norm(grads, axis=1)                                             # |g_i|
        weights = n * tf.nn.softmax(self.logits)
        combined = tf.linalg.matvec(grads, weights, transpose_a=True)
        self._record(weights)
        ratio = current / self.initial
        with tf.GradientTape() as tape:
            tape.watch(self.logits)
            scaled = n * tf.nn.softmax(self.logits) * norms                         # G_i
            target = tf.stop_gradient(tf.reduce_mean(scaled) * (ratio / tf.reduce_mean(ratio)) ** self.alpha)
            balance = tf.reduce_sum(tf.abs(scaled - target))
        self.logits.assign_sub(self.lr * tape.gradient(balance, self.logits))
        return combined

    def get_state(self) -> dict:
        return {"w": self.weights(), "logits": self.logits.numpy().tolist(), "initial": self.initial.numpy().tolist()}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self.logits.assign(state["logits"])
        self.initial.assign(state["initial"])
