"""The paper's comparison: recipes (a configuration trained with several seeds) against a baseline
group on the test split, by a paired hierarchical bootstrap over test samples and seeds."""
from __future__ import annotations

import numpy as np
import pandas as pd

from study.evaluation.metrics import PER_REPORT
from study.evaluation.text import BLEU_STATS, corpus_bleu
from study.spec.space import group_of

from .fronts import finished
from .significance import compare_recipes, holm


# ---- the paper's comparison: recipes over seeds and test samples ----------------------------------
def per_sample_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (trial, sample) scores: OC correctness and absolute error, ML label accuracy and
    counts. A head a trial does not have gives NaN, never a wrong answer."""
    out = predictions[["trial_id", "sample_id"]].copy()
    if {"acuity_true", "acuity_pred"} <= set(predictions):
        true, pred = predictions["acuity_true"].astype(float), predictions["acuity_pred"].astype(float)
        out["oc_correct"] = (true == pred).astype(float).where(pred.notna() & true.notna())
        out["oc_abs_error"] = (true - pred).abs()
    true_cols = [c for c in predictions if c.startswith("true_")]
    if true_cols:
        true = predictions[true_cols].to_numpy(float)
        pred = predictions[[c.replace("true_", "pred_") for c in true_cols]].to_numpy(float)
        has = ~(np.isnan(true).any(axis=1) | np.isnan(pred).any(axis=1))
        for name, value in (("ml_label_accuracy", (true == pred).mean(axis=1)),
                            ("ml_tp", ((true == 1) & (pred == 1)).sum(axis=1)),
                            ("ml_fp", ((true == 0) & (pred == 1)).sum(axis=1)),
                            ("ml_fn", ((true == 1) & (pred == 0)).sum(axis=1))):
            out[name] = np.where(has, value.astype(float), np.nan)
    return out


def _mean_of(column):
    return lambda sums, n: sums[column] / n


def _bleu(k):
    return lambda sums, n: corpus_bleu(sums)[k - 1]

# metric: (task, better, per-sample columns, statistic of summed columns and resample size)
RECIPE_METRICS = {
    **{f"bleu{k}": ("text", "max", list(BLEU_STATS), _bleu(k)) for k in range(1, 5)},
    "rouge_l": ("text", "max", ["rouge_l"], _mean_of("rouge_l")),
    "bertscore_f1": ("text", "max", ["bertscore_f1"], _mean_of("bertscore_f1")),
    "cider": ("text", "max", ["cider"], _mean_of("cider")),
    **{m: ("text", "min", [m], _mean_of(m)) for m in PER_REPORT},
    "oc_accuracy": ("oc", "max", ["oc_correct"], _mean_of("oc_correct")),
    "oc_mae": ("oc", "min", ["oc_abs_error"], _mean_of("oc_abs_error")),
    "ml_label_accuracy": ("ml", "max", ["ml_label_accuracy"], _mean_of("ml_label_accuracy")),
    "ml_f1": ("ml", "max", ["ml_tp", "ml_fp", "ml_fn"],
              lambda s, n: 2 * s["ml_tp"] / np.maximum(2 * s["ml_tp"] + s["ml_fp"] + s["ml_fn"], 1e-12)),
}


def _components(scores: pd.DataFrame, trial_ids, columns, samples) -> dict | None:
    """(models, samples) arrays of ``columns`` for the trials that have them on every sample."""
    have = []
    for tid in trial_ids:
        part = scores[scores["trial_id"] == tid].set_index("sample_id").reindex(samples)
        if all(c in part for c in columns) and part[columns].notna().all().all():
            have.append(part)
    if not have:
        return None
    return {c: np.stack([p[c].to_numpy(float) for p in have]) for c in columns}


TASK_RECIPE_METRICS = [m for m in RECIPE_METRICS if m not in PER_REPORT]  # the paper's tables 2-4


def compare_to_baseline(trials: pd.DataFrame, predictions: pd.DataFrame, *, baseline: str,
                        pairs: list[tuple[str, str]] | None = None, group_col: str = "param_config",
                        metrics: list[str] | None = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Every group of named configurations against ``baseline`` on every task metric both have
    (``metrics``, default :data:`TASK_RECIPE_METRICS`), as recipes: trained with several seeds and
    scored on the same test samples. ``pairs``: (group, against) to compare instead.

    A group is a config name plus the names that extend ``baseline``'s with ``-`` (``STL`` =
    ``STL-text``, ``STL-oc``, ``STL-ml``), so a metric's baseline value comes from the baseline
    configuration that has that task, and a missing head is missing, never a zero. Each row: both
    means, the difference (group - baseline, in the metric's units), its hierarchical bootstrap
    interval and p-value (:func:`study.significance.compare_recipes`), the seed-level Welch p
    where each side has three seeds or more, Holm's adjusted p over the whole table, and a verdict.
    """
    done = finished(trials)
    done = done[done[group_col].notna()]
    groups = done[group_col].astype(str).map(lambda name: group_of(name, baseline))
    if pairs is None:
        pairs = [(group, baseline) for group in dict.fromkeys(groups) if group != baseline]
    scores = per_sample_scores(predictions)
    scores = scores.merge(predictions[[c for c in predictions if c not in scores or c in ("trial_id", "sample_id")]],
                          on=["trial_id", "sample_id"], how="left")
    samples = sorted(set(scores["sample_id"]))
    rows = []
    for metric in metrics or TASK_RECIPE_METRICS:
        task, better, columns, statistic = RECIPE_METRICS[metric]
        for group, against in pairs:
            base = _components(scores, done.loc[groups == against, "trial_id"], columns, samples)
            other = _components(scores, done.loc[groups == group, "trial_id"], columns, samples)
            if base is None or other is None:
                continue
            r = compare_recipes(other, base, statistic, n_boot=n_boot, seed=seed)
            rows.append({"task": task, "metric": metric, "better": better, "group": group,
                         "baseline": against, "group_mean": r.mean_a, "baseline_mean": r.mean_b,
                         "diff": r.diff, "ci_low": r.ci_low, "ci_high": r.ci_high, "p": r.p_value,
                         "p_seed": r.p_seed, "seeds": r.seeds_a, "baseline_seeds": r.seeds_b,
                         "samples": len(samples)})
    columns = ["task", "metric", "better", "group", "baseline", "group_mean", "baseline_mean", "diff",
               "ci_low", "ci_high", "p", "p_holm", "p_seed", "seeds", "baseline_seeds", "samples", "verdict"]
    table = pd.DataFrame(rows, columns=[c for c in columns if c not in ("p_holm", "verdict")])
    table["p_holm"] = holm(table["p"]) if len(table) else []
    table["verdict"] = [verdict(r.diff, r.p_holm, r.better) for r in table.itertuples()]
    return table[columns]


def quality_comparison(trials: pd.DataFrame, predictions: pd.DataFrame, *, baseline: str,
                       group_col: str = "param_config", n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """The paper's qualitative claims (its figure 2: single-task models hallucinate findings, equal
    weights repeat themselves, text priority is more coherent) as tests: every group that writes
    reports against every group listed before it (the order of the space's configurations), on
    repetition and clinical faithfulness (:data:`study.evaluation.metrics.PER_REPORT`), one
    family for Holm's correction."""
    done = finished(trials)
    named = done.loc[done[group_col].notna(), group_col].astype(str)
    order = list(dict.fromkeys(named.map(lambda name: group_of(name, baseline))))
    pairs = [(later, earlier) for i, later in enumerate(order) for earlier in order[:i]]
    return compare_to_baseline(trials, predictions, baseline=baseline, pairs=pairs, group_col=group_col,
                               metrics=list(PER_REPORT), n_boot=n_boot, seed=seed)


def verdict(diff: float, p_holm: float, better: str, alpha: float = 0.05) -> str:
    """``better``/``worse`` than the baseline when Holm's p is below ``alpha``, else ``no
    significant difference`` (a difference within the noise of seeds and samples)."""
    if not p_holm < alpha:
        return "no significant difference"
    return "better" if (diff > 0) == (better == "max") else "worse"
