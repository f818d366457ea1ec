"""Paired significance tests over per-sample scores (as the paper's table 2) and Holm correction."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairedResult:
    mean_a: float
    mean_b: float
    mean_diff: float       # mean of (a - b)
    t_statistic: float
    p_value: float         # two-sided paired t-test
    ci_low: float          # paired bootstrap percentile CI of the mean difference
    ci_high: float


def paired_test(a, b, *, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0) -> PairedResult:
    """Paired t-test (scipy ``ttest_rel``) and paired bootstrap CI of mean(a - b).

    ``a`` and ``b`` are per-sample scores of two systems on the same samples, in the same order
    (for two *groups* of trials, pass each group's per-sample mean).
    """
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired scores must be two 1-D arrays of equal length >= 2, "
                         f"got shapes {a.shape} and {b.shape}")
    diff = a - b
    if np.allclose(diff, diff[0]):
        t, p = (0.0, 1.0) if diff[0] == 0 else (np.inf * np.sign(diff[0]), 0.0)
    else:
        t, p = ttest_rel(a, b)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return PairedResult(float(a.mean()), float(b.mean()), float(diff.mean()), float(t), float(p),
                        float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha)))


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted
