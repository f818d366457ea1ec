"""The contract every task-weighting strategy follows (as LibMTL's, with explicit inputs).

Loss methods (:class:`Weighting`: static, uncertainty, DWA, FAMO) keep one backward pass:

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

Gradient methods (:class:`GradientWeighting`: GradNorm, PCGrad, CAGrad, IMTL, Nash-MTL,
Aligned-MTL, DB-MTL) add the one hook they need. The trainer differentiates each task's objective
separately with respect to the shared encoder, sums each task's gradient over replicas, and hands
the strategy the global per-task gradients: ``combine_gradients(grads, losses)`` with ``grads``
of shape (T, P) (tasks in ``self.tasks`` order, P shared parameters flattened) and the global
task losses; it returns the shared gradient (P,). Every replica passes the same inputs, so every
replica computes the same update: K workers give the single-process step. Each task's head keeps
its own task's gradient. ``objectives(losses, global_losses)`` says what is differentiated per
task (default: the losses themselves; DB-MTL: their logarithms).

A strategy never reads the training loop's state: all it learns arrives through these calls.
"""
from __future__ import annotations

import tensorflow as tf


class Weighting(tf.Module):
    name = "base"
    per_task_gradients = False  # True: the trainer calls combine_gradients (GradientWeighting)

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


class GradientWeighting(Weighting):
    """A method that combines per-task gradients of the shared parameters (see the module docs).
    ``self.w`` holds the effective weight of each task's gradient in the last step (for the logs);
    ``prepare(size)`` is called once with P before the first step (for state of that size)."""

    per_task_gradients = True

    def prepare(self, size: int) -> None:
        """Create state that depends on the number of shared parameters (default: none)."""

    def objectives(self, losses: dict, global_losses: dict) -> dict:
        return losses

    def combine_gradients(self, grads, losses: dict):
        raise NotImplementedError(f"{type(self).__name__} must combine the per-task gradients")

    def _record(self, alpha) -> None:
        """Log ``alpha`` (T,) as the tasks' applied weights."""
        for i, t in enumerate(self.tasks):
            self.w[t].assign(alpha[i])
