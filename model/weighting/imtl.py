"""IMTL-G: impartial multi-task learning, gradient part (Liu et al., "Towards Impartial
Multi-task Learning", ICLR 2021), as LibMTL computes it.

The combined gradient g = sum_t a_t g_t has equal projections onto every task's unit gradient
u_t = g_t / |g_t| (no task is favoured), with sum_t a_t = 1. With D the rows g_1 - g_t and U the
rows u_1 - u_t (t = 2..T): a_{2..T} = g_1 U^T (D U^T)^-1, a_1 = 1 - sum a_{2..T}. (The paper's
loss part, IMTL-L, which scales each loss by a learned exp(s_t), is not included.)
"""
from __future__ import annotations

import tensorflow as tf

from .base import GradientWeighting


class IMTL(GradientWeighting):
    name = "imtl"

    def combine_gradients(self, grads, losses: dict):
        unit = grads / (tf.norm(grads, axis=1, keepdims=True) + 1e-20)
        d = grads[:1] - grads[1:]                                                  # (T-1, P)
        u = unit[:1] - unit[1:]                                                    # (T-1, P)
        rest = tf.linalg.matvec(tf.linalg.inv(tf.matmul(d, u, transpose_b=True)),
                                tf.linalg.matvec(u, grads[0]), transpose_a=True)   # (T-1,)
        alpha = tf.concat([1.0 - tf.reduce_sum(rest, keepdims=True), rest], axis=0)
        self._record(alpha)
        return tf.linalg.matvec(grads, alpha, transpose_a=True)
