"""Text metrics, each the field's reference implementation (all take :func:`normalize_text`).

* ``bleu1``..``bleu4``: corpus BLEU of ``pycocoevalcap`` ``Bleu(4)`` ("closest" reference length),
  as R2Gen and later report-generation papers compute it; per-sample BLEU-4 from the same scorer;
  BLEU's sufficient statistics per sample (:func:`bleu_statistics`) so a bootstrap can recompute
  corpus BLEU on any resample (:func:`corpus_bleu`).
* ``rouge_l``: Google's ``rouge-score`` ROUGE-L F-measure (mean over samples); ``rouge_l_coco``:
  ``pycocoevalcap`` ``Rouge`` (LCS F-score with beta = 1.2), the other family.
* ``cider``: ``pycocoevalcap`` ``Cider`` (corpus IDF from the evaluated references).
"""
from __future__ import annotations

import re
import string

import numpy as np
import pandas as pd

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
