"""All metrics of a trial's split in one call (:func:`compute_metrics`), each computed by (or
checked against) the field's reference implementation.

Text (all take the same :func:`normalize_text` of reference and hypothesis):

* ``bleu1``..``bleu4``: corpus-level BLEU of ``pycocoevalcap`` ``Bleu(4)`` ("closest" reference
  length), as R2Gen and later report-generation papers compute it; per-sample BLEU-4 comes from the
  same scorer for paired tests.
* ``rouge_l``: Google's ``rouge-score`` ROUGE-L F-measure (mean over samples);
  ``rouge_l_coco``: ``pycocoevalcap`` ``Rouge`` (LCS F-score with beta = 1.2), the other family.
* ``cider``: ``pycocoevalcap`` ``Cider`` (corpus IDF from the evaluated references).
* per sample (``predictions.parquet``): BLEU-4, ROUGE-L, CIDEr, BERTScore, and BLEU's sufficient
  statistics (:func:`bleu_statistics`), so a bootstrap can recompute corpus BLEU on any resample.
* ``bertscore_f1``: ``bert-score`` F1 with a configurable model (:class:`BertScoreConfig`).
* ``ce_*``: clinical efficacy: :mod:`data.labeler` applied to generated and reference reports,
  precision / recall / F1 micro (``ce_precision``, ``ce_recall``, ``ce_f1``), macro over the
  five findings (``ce_*_macro``) and example-based (``ce_*_example``). Only positive mentions
  count as 1 (uncertain, negative and unmentioned are 0).

Classification (threshold configurable, default 0.5):

* multi-label: ``ml_precision``/``ml_recall``/``ml_f1`` (micro), ``ml_*_macro``, ``ml_hamming``
  (Hamming loss) and ``ml_exact_match`` (subset accuracy: all five right). The paper's
  exact-match values equal 1 - Hamming loss, which suggests it computed label-wise accuracy; this tool
  reports subset accuracy.
* ordinal: ``oc_accuracy``, ``oc_mae``, ``oc_mse`` and ``oc_acc_corr``, the accuracy-correlation
  hybrid, defined here (the paper does not) as the mean of accuracy and Spearman's rank
  correlation between true and predicted levels (correlation taken as 0 when either side is
  constant, where it is undefined).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data.schema import FINDINGS

from .bertscore import BertScoreConfig, bertscore_f1
from .faithfulness import faithfulness
from data.labeler import label_reports, positive_vectors
from .repetition import repetition
from .text import bleu, bleu_statistics, coco_rouge_and_cider, rouge_l


PER_REPORT = ("repeat_4gram", "repeat_sentence", "hallucinated", "missed")  # means over reports


# ---- classification -----------------------------------------------------------------------------
def _prf(true: np.ndarray, pred: np.ndarray, prefix: str) -> dict:
    from sklearn.metrics import precision_recall_fscore_support

    out = {}
    for avg, suffix in (("micro", ""), ("macro", "_macro"), ("samples", "_example")):
        if avg == "samples" and prefix == "ml":
            continue
        p, r, f, _ = precision_recall_fscore_support(true, pred, average=avg, zero_division=0)
        out.update({f"{prefix}_precision{suffix}": float(p), f"{prefix}_recall{suffix}": float(r),
                    f"{prefix}_f1{suffix}": float(f)})
    return out


def clinical_efficacy(reference_labels: list[dict], generated_labels: list[dict]) -> tuple[dict, np.ndarray, np.ndarray]:
    """CE metrics from the labeler's labels of references and generated reports
    (:func:`data.labeler.label_reports`), with their 0/1 positive-mention matrices."""
    true = np.array(positive_vectors(reference_labels)).reshape(-1, len(FINDINGS))
    pred = np.array(positive_vectors(generated_labels)).reshape(-1, len(FINDINGS))
    return _prf(true, pred, "ce"), true, pred


def multilabel_metrics(true, prob, threshold: float = 0.5) -> dict:
    from sklearn.metrics import accuracy_score, hamming_loss

    true = np.asarray(true).astype(int)
    pred = (np.asarray(prob) > threshold).astype(int)
    return {**_prf(true, pred, "ml"), "ml_hamming": float(hamming_loss(true, pred)),
            "ml_exact_match": float(accuracy_score(true, pred))}


def ordinal_metrics(true_levels, pred_levels) -> dict:
    from scipy.stats import spearmanr

    t, p = np.asarray(true_levels, float), np.asarray(pred_levels, float)
    acc = float(np.mean(t == p))
    rho = 0.0 if np.ptp(t) == 0 or np.ptp(p) == 0 else float(spearmanr(t, p).statistic)
    return {"oc_accuracy": acc, "oc_mae": float(np.mean(np.abs(t - p))),
            "oc_mse": float(np.mean((t - p) ** 2)), "oc_acc_corr": (acc + rho) / 2}


# ---- one entry point ----------------------------------------------------------------------------
def compute_metrics(*, sample_ids=None, references=None, generated=None, oc_true=None, oc_pred=None,
             ml_true=None, ml_prob=None, threshold: float = 0.5,
             bertscore: BertScoreConfig | None = BertScoreConfig(), learned: tuple = ()) -> tuple[dict, pd.DataFrame]:
    """All metrics of the tasks given (a task left as ``None`` is left out, never zero).

    Returns the flat metric dict named as the Parquet contract (``bleu1``, ``rouge_l``, ``ce_f1``,
    ``oc_accuracy``, ``ml_f1``, ...) and a per-sample table for ``predictions.parquet``.
    ``bertscore=None`` skips BERTScore; ``learned`` names :mod:`study.scorers` to add (their
    weights must be on this machine: check with :func:`study.scorers.usable` first).
    """
    n = next(len(x) for x in (generated, oc_true, ml_true) if x is not None)
    per = pd.DataFrame({"sample_id": sample_ids if sample_ids is not None else np.arange(n)})
    metrics = {}
    if generated is not None:
        bleus, bleu4 = bleu(references, generated)
        rl = rouge_l(references, generated)
        reference_labels, generated_labels = label_reports(references), label_reports(generated)
        ce, ce_true, ce_pred = clinical_efficacy(reference_labels, generated_labels)
        per_report = {**repetition(generated), **faithfulness(reference_labels, generated_labels)}
        metrics.update({m: float(per_report[m].mean()) for m in PER_REPORT})
        coco, cider = coco_rouge_and_cider(references, generated)
        metrics.update(bleus, rouge_l=float(rl.mean()), **coco, **ce)
        per = per.assign(reference=list(references), generated=list(generated), bleu4=bleu4, rouge_l=rl,
                         cider=cider)
        per = pd.concat([per, bleu_statistics(references, generated).set_index(per.index)], axis=1)
        if bertscore is not None:
            bs = bertscore_f1(references, generated, bertscore)
            metrics["bertscore_f1"] = float(bs.mean())
            per["bertscore_f1"] = bs
        for j, f in enumerate(FINDINGS):
            per[f"ce_pred_{f}"] = ce_pred[:, j]
        per = per.assign(**per_report)
        if learned:
            from . import scorers

            for name in learned:
                metrics.update(scorers.score(name, references, generated))
    if oc_true is not None:
        metrics.update(ordinal_metrics(oc_true, oc_pred))
        per = per.assign(acuity_true=np.asarray(oc_true, int), acuity_pred=np.asarray(oc_pred, int))
    if ml_true is not None:
        metrics.update(multilabel_metrics(ml_true, ml_prob, threshold))
        for j, f in enumerate(FINDINGS):
            per[f"true_{f}"] = np.asarray(ml_true)[:, j].astype(int)
            per[f"prob_{f}"] = np.asarray(ml_prob)[:, j].astype(float)
            per[f"pred_{f}"] = (per[f"prob_{f}"] > threshold).astype(int)
    return metrics, per
