"""A small experiment directory written by hand (no training): the paper grid's five configs, three
seeds each, plus one failed trial. Every value is chosen so that the analysis can be checked
against numbers worked out by hand:

* validation metrics of repeat r (0, 1, 2) are the configuration's base value - 0.01, +0, +0.01;
* test predictions on six samples: STL-oc gets 3 of 6 acuities right with every seed, MTL-EQ 4
  and MTL-TP 5; STL-ml gets 24 of 30 labels right, the MTL configs 27; single-task trials have no
  columns of the heads they lack;
* validation-loss curves are U-shaped with their minimum at a known epoch (base + repeat);
* repetition and faithfulness per report: the configuration's value in ``QUALITY`` plus 0.01 per
  sample index, the same for every seed (so every paired difference is the same on every sample).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from study.evaluation.text import bleu_statistics

FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
CONFIGS = {  # name: (tasks, alpha, beta, gamma, epoch of best validation loss for repeat 0)
    "STL-text": ("text", 1.0, 0.0, 0.0, 6),
    "STL-oc": ("oc", 0.0, 1.0, 0.0, 3),
    "STL-ml": ("ml", 0.0, 0.0, 1.0, 4),
    "MTL-EQ": ("text oc ml", 1 / 3, 1 / 3, 1 / 3, 8),
    "MTL-TP": ("text oc ml", 0.6, 0.3, 0.1, 9),
}
BASE = {  # validation metric base values per config (rouge_l, oc_accuracy, ml_f1)
    "STL-text": (0.50, None, None), "STL-oc": (None, 0.60, None), "STL-ml": (None, None, 0.70),
    "MTL-EQ": (0.55, 0.62, 0.66), "MTL-TP": (0.60, 0.55, 0.64),
}
OC_RIGHT = {"STL-oc": 3, "MTL-EQ": 4, "MTL-TP": 5}   # acuities right out of 6, every seed
ML_WRONG = {"STL-ml": 6, "MTL-EQ": 3, "MTL-TP": 3}   # wrong labels out of 30, every seed
EPOCHS, REPEATS, N = 12, 3, 6
ACUITY = np.array([1, 2, 3, 4, 5, 3])
REFERENCE = "no pleural effusion. the heart size is normal."
QUALITY = {  # repeat_4gram, repeat_sentence, hallucinated, missed per report (+ 0.01 x sample index)
    "STL-text": (0.20, 0.10, 1.5, 1.0), "MTL-EQ": (0.50, 0.40, 0.5, 1.0), "MTL-TP": (0.10, 0.10, 0.5, 0.5),
}
GENERATED = {"STL-text": "no effusion.", "MTL-EQ": "no pleural effusion.", "MTL-TP": "no pleural effusion. the heart is normal."}


def make_experiment(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    space_text = (Path(__file__).resolve().parent.parent / "search_spaces" / "paper.yaml").read_text()
    (root / "study.json").write_text(json.dumps({"search_space": {"text": space_text, "objectives": [
        {"metric": "val_rouge_l", "mode": "max"}, {"metric": "val_oc_accuracy", "mode": "max"},
        {"metric": "val_ml_f1", "mode": "max"}]}, "config": {},
        "data": {"source": "synthetic", "prepared_dir": str(root / "prepared")}}))
    truth = np.zeros((N, 5), int)
    truth[np.arange(N), np.arange(N) % 5] = 1
    _prepared_cohort(root / "prepared", truth)
    trials, epochs, preds = [], [], []
    for i, (name, (tasks, a, b, c, best)) in enumerate(CONFIGS.items()):
        tasks = tasks.split()
        for r in range(REPEATS):
            tid = f"t{i}{r}"
            row = {"trial_id": tid, "config_id": f"c{i}", "repeat": r, "seed": 100 * i + r,
                   "status": "TERMINATED", "error": None, "best_epoch": best + r, "epochs_run": EPOCHS,
                   "train_seconds": 10.0, "finished_at": 1000.0 + 10 * i + r, "param_config": name,
                   "param_alpha": a, "param_beta": b, "param_gamma": c}
            for split in ("val", "test"):
                for metric, base in zip(("rouge_l", "oc_accuracy", "ml_f1"), BASE[name]):
                    row[f"{split}_{metric}"] = np.nan if base is None else base + 0.01 * (r - 1)
            trials.append(row)
            e = np.arange(1, EPOCHS + 1)
            for task in ("text", "oc", "ml"):
                val = 1.0 + 0.02 * (e - best - r) ** 2 if task in tasks else np.full(EPOCHS, np.nan)
                train = 1.2 - 0.05 * e if task in tasks else np.full(EPOCHS, np.nan)
                epochs.append(pd.DataFrame({"trial_id": tid, "epoch": e, "task": task, "val": val, "train": train}))
            p = pd.DataFrame({"trial_id": tid, "sample_id": [f"s{j}" for j in range(N)]})
            if "text" in tasks:
                hyps = [GENERATED[name]] * N
                p = p.assign(reference=REFERENCE, generated=hyps, rouge_l=0.3 + 0.1 * i + 0.01 * r,
                             bleu4=0.1, cider=0.2 + 0.1 * i, bertscore_f1=0.8 + 0.01 * i)
                p = pd.concat([p, bleu_statistics([REFERENCE] * N, hyps)], axis=1)
                for measure, value in zip(("repeat_4gram", "repeat_sentence", "hallucinated", "missed"), QUALITY[name]):
                    p[measure] = value + 0.01 * np.arange(N)
            if "oc" in tasks:
                pred = ACUITY.copy()
                wrong = np.arange(OC_RIGHT[name], N)
                pred[wrong] = np.where(ACUITY[wrong] == 5, 4, ACUITY[wrong] + 1)
                p = p.assign(acuity_true=ACUITY, acuity_pred=pred)
            if "ml" in tasks:
                guess = truth.copy()
                flat = guess.reshape(-1)
                flat[np.arange(ML_WRONG[name]) * 5 % flat.size] ^= 1  # flip this many labels
                for j, f in enumerate(FINDINGS):
                    p[f"true_{f}"] = truth[:, j]
                    p[f"pred_{f}"] = guess[:, j]
            preds.append(p)
    trials.append({"trial_id": "t9", "config_id": "c4", "repeat": 3, "status": "ERROR", "error": "ValueError: boom",
                   "finished_at": 2000.0, "param_config": "MTL-TP"})
    long = pd.concat(epochs)
    wide = long.pivot_table(index=["trial_id", "epoch"], columns="task", values=["val", "train"], dropna=False)
    wide.columns = [f"{'val_loss' if k == 'val' else 'train_loss'}_{t}" for k, t in wide.columns]
    wide = wide.reset_index().assign(lr=1e-3, weight_text=1.0, weight_oc=1.0, weight_ml=1.0,
                                     val_monitor=1.0, seconds=1.0)
    pd.DataFrame(trials).to_parquet(root / "trials.parquet", index=False)
    wide.to_parquet(root / "epochs.parquet", index=False)
    pd.concat(preds, ignore_index=True).to_parquet(root / "predictions.parquet", index=False)
    return root


def _prepared_cohort(directory: Path, truth: np.ndarray) -> None:
    """What the examples page reads: the prepared cohort's ids, splits, labels and images."""
    from PIL import Image

    (directory / "images").mkdir(parents=True, exist_ok=True)
    paths = []
    for j in range(N):
        path = directory / "images" / f"s{j}.png"
        Image.fromarray(np.full((32, 32), 40 * j, np.uint8)).save(path)
        paths.append(str(path))
    cohort = pd.DataFrame({"sample_id": [f"s{j}" for j in range(N)], "split": "test", "image_path": paths})
    for j, f in enumerate(FINDINGS):
        cohort[f] = truth[:, j]
    cohort.to_parquet(directory / "cohort.parquet", index=False)
    (directory / "meta.json").write_text(json.dumps({"note": "hand-made: the cohort table only"}))
