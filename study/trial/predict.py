"""A trained model's outputs on a split, and their metrics: what a trial records and what an
exported model predicts."""
from __future__ import annotations

import numpy as np

from data.dataset import PreparedDataset
from data.preprocess import decode_ordinal
from data.text import join_words
from model.decoding import beam_search, greedy_decode
from study.evaluation.bertscore import BertScoreConfig
from study.evaluation.metrics import compute_metrics

INPUT_KEYS = ("image_features", "vitals", "categoricals", "chief_complaint", "icd_title", "report_ids")


def predict_split(model, dataset: PreparedDataset, split: str, beam_width: int = 1,
                  batch_size: int = 64) -> dict:
    """Decoded reports and head outputs for one split (active tasks only)."""
    arrays = dataset.split(split)
    tasks = model.cfg.tasks
    tok = dataset.preprocessor.tokenizers["report"]
    out = {"generated": [], "oc": [], "ml": []}
    for start in range(0, len(arrays["sample_id"]), batch_size):
        inputs = {k: arrays[k][start:start + batch_size] for k in INPUT_KEYS}
        encoded = model.encode(inputs)
        if "oc" in tasks:
            out["oc"].append(model.oc_head(encoded).numpy())
        if "ml" in tasks:
            out["ml"].append(model.ml_head(encoded).numpy())
        if "text" in tasks:
            ids = (greedy_decode(model, inputs) if beam_width == 1
                   else beam_search(model, inputs, beam_width=beam_width))
            out["generated"].extend(join_words(tok.decode(row)) for row in ids)
    out = {k: (np.concatenate(v) if k != "generated" and v else v) for k, v in out.items()}
    return {**out, "findings": arrays["findings"]}

SPLIT_PREFIX = {"validate": "val", "test": "test"}  # metric names of the Parquet contract


def score_split(model, dataset: PreparedDataset, split: str, eval_opts: dict):
    """``(metrics prefixed val_/test_, per-sample table)`` for one split."""
    pred = predict_split(model, dataset, split, eval_opts["beam_width"])
    cohort = dataset.cohort.iloc[dataset.indices(split)]
    tasks = model.cfg.tasks
    metrics, per = compute_metrics(
        sample_ids=cohort["sample_id"].tolist(),
        references=cohort["report"].tolist() if "text" in tasks else None,
        generated=pred["generated"] if "text" in tasks else None,
        oc_true=cohort["acuity"].to_numpy() if "oc" in tasks else None,
        oc_pred=decode_ordinal(pred["oc"]) if "oc" in tasks else None,
        ml_true=pred["findings"] if "ml" in tasks else None,
        ml_prob=pred["ml"] if "ml" in tasks else None,
        bertscore=BertScoreConfig(eval_opts["bertscore_model"], eval_opts["bertscore_layers"],
                                  eval_opts["bertscore_rescale"]) if eval_opts["bertscore"] else None,
        learned=tuple(eval_opts["learned_scorers"]))
    return {f"{SPLIT_PREFIX[split]}_{k}": v for k, v in metrics.items()}, per
