"""CAGrad: conflict-averse gradient descent (Liu et al., NeurIPS 2021), as LibMTL computes it.

With g0 the mean task gradient, find w on the simplex minimising
    g_w . g0 + c |g0| |g_w|,   g_w = sum_i w_i g_i
(a T-dimensional problem on the Gram matrix G G^T, solved with SciPy's SLSQP from the uniform
point), then update with g = (g0 + c |g0| / |g_w| g_w) / (1 + c^2). ``c`` in [0, 1) trades the
average loss against the worst task's improvement (c = 0: plain mean).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from .base import GradientWeighting


def conflict_averse_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """The w of the module docs, from the Gram matrix (T, T)."""
    from scipy.optimize import minimize

    n = len(gram)
    b = np.ones(n) / n
    scale = c * np.sqrt(gram.mean() + 1e-8) + 1e-8

    def objective(x):
        return float(x @ gram @ b + scale * np.sqrt(x @ gram @ x + 1e-8))

    res = minimize(objective, b, bounds=[(0.0, 1.0)] * n, constraints=({"type": "eq", "fun": lambda x: 1 - x.sum()},))
    return res.x.astype(np.float32)


class CAGrad(GradientWeighting):
    name = "cagrad"

    def __init__(self, tasks, *, c: float = 0.4):
        super().__init__(tasks)
        if not 0.0 <= c < 1.0:
            raise ValueError(f"cagrad c must be in [0, 1), got {c}")
        self.c = c

    def combine_gradients(self, grads, losses: dict):
        gram = tf.matmul(grads, grads, transpose_b=True)                           # (T, T)
        w = tf.numpy_function(lambda g: conflict_averse_weights(g, self.c), [gram], tf.float32)
        w = tf.reshape(w, [len(self.tasks)])
        g0 = tf.reduce_mean(grads, axis=0)
        gw = tf.linalg.matvec(grads, w, transpose_a=True)
        lam = (self.c * tf.sqrt(tf.reduce_mean(gram) + 1e-8) + 1e-8) / (tf.norm(gw) + 1e-8)
        self._record((1.0 / len(self.tasks) + lam * w) / (1.0 + self.c ** 2))
        return (g0 + lam * gw) / (1.0 + self.c ** 2)
