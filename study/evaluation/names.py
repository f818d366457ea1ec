"""The names of every metric a trial reports, by the task it needs (no scorer is imported here).

``val_<name>`` and ``test_<name>`` are the columns of ``trials.parquet``; ``loss_<task>`` is the
validation loss every epoch reports (``val_loss_text``, ...). The learned scorers' metrics exist
only when their weights are on the machine (:mod:`study.evaluation.scorers`).
"""
from __future__ import annotations

_PRF = tuple(f"{m}{avg}" for avg in ("", "_macro", "_example") for m in ("precision", "recall", "f1"))
LEARNED = ("chexbert_f1", "radgraph_f1")  # only with --learned-scorers
TASK_METRICS = {
    "text": ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "rouge_l_coco", "cider", "bertscore_f1",
             *LEARNED, *(f"ce_{m}" for m in _PRF), "repeat_4gram", "repeat_sentence", "hallucinated", "missed",
             "loss_text"),
    "oc": ("oc_accuracy", "oc_mae", "oc_mse", "oc_acc_corr", "loss_oc"),
    "ml": (*(f"ml_{m}" for m in _PRF if not m.endswith("_example")), "ml_hamming", "ml_exact_match", "loss_ml"),
}
# every metric a finished trial of that task always reports (the results contract's columns)
REPORTED = tuple(m for names in TASK_METRICS.values() for m in names
                 if m not in LEARNED and not m.startswith("loss_"))


def bare_metric(name: str) -> str:
    """``val_oc_mae`` or ``test_oc_mae`` -> ``oc_mae``; a bare name stays as it is."""
    return name.split("_", 1)[1] if name.startswith(("val_", "test_")) else name


def task_of_metric(name: str) -> str | None:
    """The task a metric (``rouge_l``, ``val_oc_mae``, ...) needs; None for an unknown name."""
    bare = bare_metric(name)
    return next((task for task, names in TASK_METRICS.items() if bare in names), None)


# (worst, best) each metric can reach, whatever the study: bounds that make hypervolumes of
# different studies comparable, and that no interval may leave. Metrics not listed have none.
NATURAL_RANGES = {
    **{m: (0.0, 1.0) for m in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "rouge_l_coco",
                               "bertscore_f1", "ce_precision", "ce_recall", "ce_f1", "oc_accuracy",
                               "ml_precision", "ml_recall", "ml_f1", "ml_exact_match")},
    "oc_acc_corr": (-0.5, 1.0),    # (accuracy + Spearman rho) / 2
    "oc_mae": (4.0, 0.0),          # acuity levels 1..5
    "oc_mse": (16.0, 0.0),
    "ml_hamming": (1.0, 0.0),
    "repeat_4gram": (1.0, 0.0),    # share of a report's 4-grams / sentences repeating earlier ones
    "repeat_sentence": (1.0, 0.0),
    "hallucinated": (5.0, 0.0),    # findings per report (of five)
    "missed": (5.0, 0.0),
}
