"""Per-example task losses (reduced by the training loop with global-batch semantics).

* text: masked token cross-entropy, averaged over each report's real tokens (every report counts
  equally, whatever its length);
* oc: binary cross-entropy on the cumulative ordinal vector (4 positions);
* ml: binary cross-entropy over the five findings.
"""
from __future__ import annotations

import tensorflow as tf

EPS = 1e-7


def text_loss(logits, report_ids):
    """(B,) mean cross-entropy of predicting tokens 1..T-1 from logits over positions 0..T-2."""
    target = report_ids[:, 1:]
    mask = tf.cast(tf.not_equal(target, 0), logits.dtype)                         # (B, T-1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=logits)
    return tf.reduce_sum(ce * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def binary_cross_entropy(probs, target):
    """(B,) mean BCE over the last axis; ``probs`` are already sigmoid-averaged by the heads."""
    p = tf.clip_by_value(tf.cast(probs, tf.float32), EPS, 1.0 - EPS)
    target = tf.cast(target, tf.float32)
    return -tf.reduce_mean(target * tf.math.log(p) + (1 - target) * tf.math.log(1 - p), axis=-1)


def task_losses(outputs: dict, targets: dict) -> dict:
    """Per-example losses for the tasks present in ``outputs``: ``{"text"|"oc"|"ml": (B,)}``."""
    losses = {}
    if "text_logits" in outputs:
        losses["text"] = text_loss(outputs["text_logits"], targets["report_ids"])
    if "oc" in outputs:
        losses["oc"] = binary_cross_entropy(outputs["oc"], targets["ordinal"])
    if "ml" in outputs:
        losses["ml"] = binary_cross_entropy(outputs["ml"], targets["findings"])
    return losses
