"""Significance for recipe comparisons: a paired, hierarchical bootstrap over test samples and seeds
(:func:`compare_recipes`) and Holm's correction for a family of tests (:func:`holm`). Student-t
intervals over seeds are computed for a whole table at once by :func:`study.analysis.configs.config_table`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


# ---- recipes: several seeds x the same test samples ---------------------------------------------
@dataclass
class RecipeResult:
    """Recipe a against recipe b (each trained with several seeds, scored on the same samples)."""

    mean_a: float          # the statistic on all samples, averaged over a's seeds
    mean_b: float
    diff: float            # mean_a - mean_b
    ci_low: float          # hierarchical bootstrap percentile interval of diff
    ci_high: float
    p_value: float         # two-sided hierarchical bootstrap p-value of diff = 0
    p_seed: float          # Welch t-test over per-seed statistics (NaN with fewer than 3 seeds a side)
    seeds_a: int
    seeds_b: int


def _per_model(components: dict, weights: np.ndarray, statistic) -> np.ndarray:
    """(models, replicates) statistic from per-sample components summed with sample ``weights``."""
    sums = {k: v @ weights for k, v in components.items()}          # each (models, replicates)
    return np.asarray(statistic(sums, weights.sum(axis=0)), float)


def compare_recipes(a: dict, b: dict, statistic, *, n_boot: int = 2000, confidence: float = 0.95,
                    seed: int = 0, min_seeds_for_t: int = 3) -> RecipeResult:
    """Paired, hierarchical bootstrap of ``statistic(recipe a) - statistic(recipe b)``.

    ``a`` and ``b`` map component names to (seeds, samples) arrays: per-sample values of each
    trained model on the *same* samples in the same order (e.g. per-sample ROUGE-L, or BLEU's
    n-gram counts). ``statistic(sums, n)`` turns components summed over a resample of samples
    (``sums[name]`` of shape (models, replicates); ``n`` the resample size) into one value per
    model and replicate: a mean is ``sums["x"] / n``, corpus BLEU is a ratio of sums.

    Each replicate resamples the test samples (the same resample for both recipes: paired) and,
    independently for each recipe, its seeds; a recipe's value is the mean over its resampled
    seeds. So the interval covers both sources of variation: which samples were tested and which
    seeds the recipe happened to be trained with. The p-value is the two-sided bootstrap tail
    probability of the difference's sign, ``2 min(P*(d <= 0), P*(d >= 0))`` with the usual +1
    correction. With ``min_seeds_for_t`` seeds or more on both sides, a Welch t-test over the
    per-seed values on all samples is reported too (``p_seed``).
    """
    from scipy.stats import ttest_ind

    n = next(iter(a.values())).shape[1]
    if any(v.shape[1] != n for v in [*a.values(), *b.values()]):
        raise ValueError("both recipes must be scored on the same samples (equal second dimension)")
    rng = np.random.default_rng(seed)
    full = np.ones((n, 1))
    per_seed_a = _per_model(a, full, statistic)[:, 0]                # (seeds_a,)
    per_seed_b = _per_model(b, full, statistic)[:, 0]
    sample_counts = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).T.astype(float)  # (n, B)
    stat_a = _per_model(a, sample_counts, statistic)                 # (seeds_a, B)
    stat_b = _per_model(b, sample_counts, statistic)

    def resample_seeds(stat):
        k = stat.shape[0]
        counts = rng.multinomial(k, np.full(k, 1 / k), size=n_boot)  # (B, seeds)
        return (counts * stat.T).sum(axis=1) / k                     # (B,)

    d = resample_seeds(stat_a) - resample_seeds(stat_b)
    alpha = (1 - confidence) / 2
    p = min(1.0, 2 * min((np.sum(d <= 0) + 1) / (n_boot + 1), (np.sum(d >= 0) + 1) / (n_boot + 1)))
    p_seed = np.nan
    if min(len(per_seed_a), len(per_seed_b)) >= min_seeds_for_t:
        both = np.concatenate([per_seed_a, per_seed_b])
        p_seed = 1.0 if np.ptp(both) == 0 else float(ttest_ind(per_seed_a, per_seed_b, equal_var=False).pvalue)
    mean_a, mean_b = float(per_seed_a.mean()), float(per_seed_b.mean())
    return RecipeResult(mean_a, mean_b, mean_a - mean_b, float(np.quantile(d, alpha)),
                        float(np.quantile(d, 1 - alpha)), float(p), p_seed, len(per_seed_a), len(per_seed_b))

