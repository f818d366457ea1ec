"""A small experiment directory written by hand (no training): the paper grid's five configs plus
one failed trial, with U-shaped validation curves whose turning points are known."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

FINDINGS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
CONFIGS = {  # name: (tasks, alpha, beta, gamma, epoch of best validation loss)
    "STL-text": ("text", 1.0, 0.0, 0.0, 6),
    "STL-oc": ("oc", 0.0, 1.0, 0.0, 3),
    "STL-ml": ("ml", 0.0, 0.0, 1.0, 4),
    "MTL-EQ": ("text oc ml", 1 / 3, 1 / 3, 1 / 3, 8),
    "MTL-TP": ("text oc ml", 0.6, 0.3, 0.1, 9),
}
EPOCHS = 12


def make_experiment(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    space_text = (Path(__file__).resolve().parent.parent / "search_spaces" / "paper.yaml").read_text()
    (root / "study.json").write_text(json.dumps({"search_space": {"text": space_text, "objectives": [
        {"metric": "val_rouge_l", "mode": "max"}, {"metric": "val_oc_accuracy", "mode": "max"},
        {"metric": "val_ml_f1", "mode": "max"}]}, "config": {}}))
    trials, epochs, preds = [], [], []
    for i, (name, (tasks, a, b, c, best)) in enumerate(CONFIGS.items()):
        tid = f"t{i}"
        tasks = tasks.split()
        row = {"trial_id": tid, "status": "TERMINATED", "error": None, "best_epoch": best,
               "epochs_run": EPOCHS, "train_seconds": 10.0 + i, "finished_at": 1000.0 + i,
               "param_config": name, "param_alpha": a, "param_beta": b, "param_gamma": c}
        quality = 0.5 + 0.05 * i
        for split in ("val", "test"):
            row[f"{split}_rouge_l"] = quality if "text" in tasks else np.nan
            row[f"{split}_bleu4"] = quality / 3 if "text" in tasks else np.nan
            row[f"{split}_oc_accuracy"] = 1.1 - quality if "oc" in tasks else np.nan
            row[f"{split}_ml_f1"] = 0.4 + 0.1 * (i % 3) if "ml" in tasks else np.nan
        trials.append(row)
        e = np.arange(1, EPOCHS + 1)
        for task in ("text", "oc", "ml"):
            val = 1.0 + 0.02 * (e - best) ** 2 if task in tasks else np.full(EPOCHS, np.nan)
            train = 1.2 - 0.05 * e if task in tasks else np.full(EPOCHS, np.nan)
            epochs.append(pd.DataFrame({"trial_id": tid, "epoch": e, "task": task, "val": val, "train": train}))
        n = 20
        p = {"trial_id": tid, "sample_id": [f"s{j}" for j in range(n)]}
        if "text" in tasks:
            p.update(reference=["no pleural effusion."] * n, generated=["no effusion."] * n,
                     bleu4=rng.random(n) * quality, rouge_l=rng.random(n) * quality,
                     bertscore_f1=0.8 + rng.random(n) * 0.1 * quality)
        if "oc" in tasks:
            p.update(acuity_true=rng.integers(1, 6, n), acuity_pred=rng.integers(1, 6, n))
        if "ml" in tasks:
            for f in FINDINGS:
                p[f"true_{f}"] = rng.integers(0, 2, n)
                p[f"pred_{f}"] = rng.integers(0, 2, n)
        preds.append(pd.DataFrame(p))
    trials.append({"trial_id": "t9", "status": "ERROR", "error": "ValueError: boom",
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
