"""The contract every task-weighting strategy follows (as LibMTL's, with explicit inputs).

* ``combine(losses, replica_share)`` turns one replica's task losses into the scalar it
  minimises (inside the compiled step, so weights live in ``tf.Variable``s). The losses are that
  replica's part of the global-batch mean, so summing over replicas gives the global loss; a
  term that does not depend on the batch (a regulariser) must be multiplied by
  ``replica_share`` (1 / number of replicas) for the sum over replicas to equal the
  single-process loss;
* ``end_epoch(train_losses)`` receives the epoch's mean training loss per task and may update the
  weights for the next epoch;
* ``weights()`` reports the weights actually applied (logged each epoch, e.g. ``weight_text``);
* ``get_state`` / ``set_state`` make checkpoints exact.

A strategy never reads the training loop's state: all it learns arrives through these calls.
"""
from __future__ import annotations

import tensorflow as tf


class Weighting(tf.Module):
    name = "base"

    def __init__(self, tasks):
        super().__init__()
        self.tasks = tuple(tasks)
        self.w = {t: tf.Variable(1.0, trainable=False, name=f"weight_{t}") for t in self.tasks}

    @property
    def trainable_variables(self):
        return ()

    def combine(self, losses: dict, replica_share: float = 1.0):
        return tf.add_n([self.w[t] * losses[t] for t in self.tasks])

    def end_epoch(self, train_losses: dict) -> None:
        """Static weights: nothing to learn between epochs."""

    def monitor_weights(self) -> dict:
        """Weights for the early-stopping criterion: fixed across epochs so epochs compare.
        Adaptive strategies monitor the plain sum; static ones the weighted sum (as the paper)."""
        return {t: 1.0 for t in self.tasks}

    def weights(self) -> dict:
        return {t: float(self.w[t].numpy()) for t in self.tasks}

    def get_state(self) -> dict:
        return {"w": self.weights()}

    def set_state(self, state: dict) -> None:
        for t, value in state["w"].items():
            self.w[t].assign(value)
