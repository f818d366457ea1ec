"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
CVPR 2023), as LibMTL computes it.

The task gradients are aligned so that the linear system they form is well conditioned: with
G G^T = V diag(l) V^T (non-zero eigenvalues, largest first), B = sqrt(l_min) V diag(l)^-1/2 V^T,
the update is sum_i a_i g_i with a = column sums of B.
"""
from __future__ import annotations

import tensorflow as tf

from .base import GradientWeighting


class AlignedMTL(GradientWeighting):
    name = "alignedmtl"

    def combine_gradients(self, grads, losses: dict):
        gram = tf.matmul(grads, grads, transpose_b=True)                           # (T, T)
        values, vectors = tf.linalg.eigh(gram)                                     # ascending
        tol = tf.reduce_max(values) * float(len(self.tasks)) * 1.1920929e-07
        keep = values > tol                                                        # the rank
        inv_sqrt = tf.where(keep, 1.0 / tf.sqrt(tf.where(keep, values, 1.0)), 0.0)
        smallest = tf.reduce_min(tf.where(keep, values, tf.reduce_max(values)))
        b = tf.sqrt(smallest) * tf.matmul(vectors * inv_sqrt[None, :], vectors, transpose_b=True)
        alpha = tf.reduce_sum(b, axis=0)
        self._record(alpha)
        return tf.linalg.matvec(grads, alpha, transpose_a=True)
