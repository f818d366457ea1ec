"""Homoscedastic uncertainty weighting (Kendall, Gal and Cipolla, CVPR 2018).

Each task has a learned log-variance s_t; the loss is sum_t L_t / (2 exp(s_t)) + s_t / 2, so a
noisy task is down-weighted and the s_t / 2 term stops all weights collapsing to zero (the form
used by LibMTL). The applied weight reported each epoch is 1 / (2 exp(s_t)).
"""
from __future__ import annotations

import tensorflow as tf

from .base import Weighting


class Uncertainty(Weighting):
    name = "uncertainty"

    def __init__(self, tasks):
        super().__init__(tasks)
        self.log_var = {t: tf.Variable(0.0, trainable=True, name=f"log_var_{t}")
                        for t in self.tasks}
        self._sync()

    @property
    def trainable_variables(self):
        return tuple(self.log_var[t] for t in self.tasks)

    def combine(self, losses: dict, replica_share: float = 1.0):
        # the regulariser s_t / 2 belongs to the global loss once: each replica adds its share
        return tf.add_n([losses[t] / (2.0 * tf.exp(self.log_var[t])) + replica_share * self.log_var[t] / 2.0
                         for t in self.tasks])

    def _sync(self):
        for t in self.tasks:
            self.w[t].assign(1.0 / (2.0 * tf.exp(self.log_var[t])))

    def end_epoch(self, train_losses: dict) -> None:
        self._sync()  # report the weights the epoch ended with

    def get_state(self) -> dict:
        return {"log_var": {t: float(v.numpy()) for t, v in self.log_var.items()}}

    def set_state(self, state: dict) -> None:
        for t, value in state["log_var"].items():
            self.log_var[t].assign(value)
        self._sync()
