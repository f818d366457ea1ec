"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022).

The update g = sum_i a_i g_i uses the Nash bargaining solution a > 0 of (G G^T) a = 1 / a, with
the Gram matrix normalised by its Frobenius norm as in the authors' code. That system is the
stationary point of the convex f(a) = a^T M a / 2 - sum_i log a_i, so it is solved exactly here by
damped Newton steps (the authors approximate it by a few convex-concave iterations of cvxpy).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .base import GradientWeighting


def bargaining_weights(gram: np.ndarray, iterations: int = 50) -> np.ndarray:
    """a > 0 with (M a) = 1 / a, M = gram / |gram|_F (module docs)."""
    m = gram.astype(np.float64) / (np.linalg.norm(gram) + 1e-20)
    a = 1.0 / np.sqrt(np.clip(np.diag(m), 1e-12, None))
    for _ in range(iterations):
        grad = m @ a - 1.0 / a
        step = np.linalg.solve(m + np.diag(1.0 / a ** 2), grad)
        t = 1.0
        while np.any(a - t * step <= 0):  # stay in the positive orthant
            t /= 2
        a = a - t * step
        if np.abs(grad).max() < 1e-10:
            break
    return a.astype(np.float32)


class NashMTL(GradientWeighting):
    name = "nashmtl"

    def combine_gradients(self, grads, losses: dict):
        gram = tf.matmul(grads, grads, transpose_b=True)
        alpha = tf.reshape(tf.numpy_function(bargaining_weights, [gram], tf.float32), [len(self.tasks)])
        self._record(alpha)
        return tf.linalg.matvec(grads, alpha, transpose_a=True)
