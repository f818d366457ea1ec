"""FAMO: fast adaptive multitask optimisation (Liu et al., NeurIPS 2023): one backward pass.

Task logits xi give weights z = softmax(xi); the step minimises sum_i (z_i / c) log L_i with
c = sum_i z_i / L_i (held constant), which moves every log-loss at the pace z asks for. Between
steps, xi follows the observed improvement d_i = log L_i(prev) - log L_i(now): xi takes an Adam
step (learning rate ``lr``, weight decay ``decay``) along -J_softmax^T d, so tasks that improved
less get more weight. As in LibMTL, "now" is the next batch's loss.

Under data parallelism the log uses the global loss: each replica minimises
sum_i (z_i / c) L_i(replica) / L_i(global), whose gradients sum to the single-process one.
"""
from __future__ import annotations

import tensorflow as tf

from .base import Weighting


class FAMO(Weighting):
    name = "famo"

    def __init__(self, tasks, *, lr: float = 0.025, decay: float = 0.001):
        super().__init__(tasks)
        self.lr, self.decay = lr, decay
        n = len(self.tasks)
        self.logits = tf.Variable(tf.zeros([n]), trainable=False, name="famo_logits")
        self.previous = tf.Variable(tf.zeros([n]), trainable=False, name="famo_previous_losses")
        self.m = tf.Variable(tf.zeros([n]), trainable=False, name="famo_adam_m")
        self.v = tf.Variable(tf.zeros([n]), trainable=False, name="famo_adam_v")
        self.t = tf.Variable(0.0, trainable=False, name="famo_adam_t")

    def combine(self, losses: dict, replica_share: float = 1.0):
        context = tf.distribute.get_replica_context()
        local = tf.stack([losses[t] for t in self.tasks])
        global_losses = context.all_reduce("SUM", tf.stop_gradient(local)) + 1e-8
        self._update_logits(global_losses)
        z = tf.nn.softmax(self.logits)
        c = tf.reduce_sum(z / global_losses)
        for i, t in enumerate(self.tasks):
            self.w[t].assign(z[i] / c / global_losses[i])  # the weight each L_i effectively gets
        return tf.reduce_sum(z / c * local / global_losses)

    def _update_logits(self, now):
        seen = tf.reduce_all(self.previous > 0)  # no step before there is a previous loss
        improved = tf.where(seen, tf.math.log(tf.where(seen, self.previous, 1.0)) - tf.math.log(now), 0.0)
        z = tf.nn.softmax(self.logits)
        grad = z * (improved - tf.reduce_sum(z * improved)) + self.decay * self.logits  # J^T d + decay
        apply = tf.cast(seen, tf.float32)
        self.t.assign_add(apply)
        b1, b2 = 0.9, 0.999
        self.m.assign(self.m + apply * ((1 - b1) * grad - (1 - b1) * self.m))
        self.v.assign(self.v + apply * ((1 - b2) * grad ** 2 - (1 - b2) * self.v))
        t = tf.maximum(self.t, 1.0)
        step = self.lr * (self.m / (1 - b1 ** t)) / (tf.sqrt(self.v / (1 - b2 ** t)) + 1e-8)
        self.logits.assign_sub(apply * step)
        self.previous.assign(now)

    def get_state(self) -> dict:
        return {"w": self.weights(), **{k: getattr(self, k).numpy().tolist()
                                        for k in ("logits", "previous", "m", "v", "t")}}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        for k in ("logits", "previous", "m", "v", "t"):
            getattr(self, k).assign(state[k])
