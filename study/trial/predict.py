"""A trained model's outputs on a split, and their metrics: what a trial records and what an
exported model predicts."""
from __future__ import annotations

import numpy as np

from data.dataset import PreparedDataset
from data.preprocess import decode_ordinal
from data.text import join_words
from study.evaluation.bertscore import BertScoreConfig
from study.evaluation.metrics import compute_metrics

INPUT_KEYS = ("image_features", "vitals", "categoricals", "chief_complaint", "icd_title")


def predict_split(model, dataset: PreparedDataset, split: str, beam_width: int = 1,
                  batch_size: int = 64) -> dict:
    """Decoded reports and head outputs for one split (active tasks only)."""
    arrays = dataset.split(split)
    out = predict_arrays(model, arrays, dataset.preprocessor.tokenizers["report"], beam_width, batch_size)
    return {**out, "findings": arrays["findings"]}


def predict_arrays(model, arrays: dict, tokenizer, beam_width: int = 1, batch_size: int = 64) -> dict:
    """``generated`` (list of reports), ``oc`` (N, 4) and ``ml`` (N, 5) probabilities for the
    active tasks, from the model inputs of :data:`INPUT_KEYS`, in batches of ``batch_size`` (the
    same batches give the same numbers: an exported model reproduces its trial's predictions)."""
    from model.decoding import beam_search, greedy_decode  # TensorFlow: loaded when predicting, not before

    tasks = model.cfg.tasks
    out = {"generated": [], "oc": [], "ml": []}
    for start in range(0, len(arrays["image_features"]), batch_size):
        inputs = {k: arrays[k][start:start + batch_size] for k in INPUT_KEYS}
        encoded = model.encode(inputs)
        if "oc" in tasks:
            out["oc"].append(model.oc_head(encoded).numpy())
        if "ml" in tasks:
            out["ml"].append(model.ml_head(encoded).numpy())
        if "text" in tasks:
            ids = (greedy_decode(model, inputs) if beam_width == 1
                   else beam_search(model, inputs, beam_width=beam_width))
            out["generated"].extend(join_words(tokenizer.decode(row)) for row in ids)
    return {k: (np.concatenate(v) if k != "generated" and v else v) for k, v in out.items()}


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
