"""Overfitting, comparable across runs: per trial and task the epoch of the minimum validation loss,
the minimum and the onset of a lasting rise; single-task against multi-task runs."""
from __future__ import annotations

import numpy as np
import pandas as pd

from model.config import TASKS

from .configs import config_key


# ---- overfitting --------------------------------------------------------------------------------
OVERFIT_TOLERANCE = 0.01  # relative: a loss within 1 % of its minimum has not yet risen


def overfitting_point(val_loss, *, tolerance: float = OVERFIT_TOLERANCE) -> dict:
    """For one validation-loss curve (epochs 1..n): ``best_epoch`` (its minimum), ``min_loss``,
    and ``onset``: the first epoch after which the loss stays above ``min_loss * (1 + tolerance)``
    until the end (``None`` when the last epoch is still within the tolerance: no overfitting).
    ``overfit`` says whether it has an onset."""
    v = np.asarray(val_loss, float)
    if len(v) == 0 or np.isnan(v).all():
        return {"best_epoch": None, "min_loss": None, "onset": None, "overfit": False}
    best = int(np.nanargmin(v))
    above = v > v[best] * (1 + tolerance)
    onset = None
    if above[-1]:
        last_within = np.flatnonzero(~above)[-1]  # epoch index still within the tolerance
        onset = int(last_within) + 2              # the epoch after it, 1-based
    return {"best_epoch": best + 1, "min_loss": float(v[best]), "onset": onset, "overfit": onset is not None}


def overfitting_table(epochs: pd.DataFrame, trials: pd.DataFrame | None = None, *,
                      tolerance: float = OVERFIT_TOLERANCE) -> pd.DataFrame:
    """One row per (trial, task) with an active validation loss: best epoch, minimum loss,
    overfitting onset and the final train-validation gap; with ``trials``, the trial's
    configuration id and task setting (``STL`` or ``MTL``) are added."""
    rows = []
    for trial_id, e in epochs.sort_values("epoch").groupby("trial_id"):
        for task in TASKS:
            col = f"val_loss_{task}"
            if col not in e or e[col].isna().all():
                continue
            point = overfitting_point(e[col].to_numpy(), tolerance=tolerance)
            gap = (e[col] - e[f"train_loss_{task}"]).to_numpy()
            rows.append({"trial_id": trial_id, "task": task, "epochs_run": len(e), **point,
                         "final_gap": float(gap[-1])})
    table = pd.DataFrame(rows, columns=["trial_id", "task", "epochs_run", "best_epoch", "min_loss",
                                        "onset", "overfit", "final_gap"])
    if trials is not None and len(table):
        info = pd.DataFrame({"trial_id": trials["trial_id"], "config_id": config_key(trials),
                             "setting": np.where(task_setting(trials) == "MTL", "MTL", "STL")})
        table = table.merge(info, on="trial_id", how="left")
    return table


def gap_curves(epochs: pd.DataFrame) -> pd.DataFrame:
    """Long table of (trial_id, task, epoch, train, validation, gap) for plotting."""
    parts = []
    for task in TASKS:
        if f"val_loss_{task}" not in epochs or epochs[f"val_loss_{task}"].isna().all():
            continue
        part = epochs[["trial_id", "epoch", f"train_loss_{task}", f"val_loss_{task}"]].dropna()
        part = part.rename(columns={f"train_loss_{task}": "train", f"val_loss_{task}": "validation"})
        parts.append(part.assign(task=task, gap=part["validation"] - part["train"]))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["trial_id", "epoch", "train", "validation", "task", "gap"])


def task_setting(trials: pd.DataFrame) -> pd.Series:
    """``STL-<task>`` or ``MTL`` per trial, from which validation metrics it has."""
    has = pd.DataFrame({t: trials[c].notna() if c in trials else False for t, c in
                        (("text", "val_rouge_l"), ("oc", "val_oc_accuracy"), ("ml", "val_ml_f1"))})
    labels = np.where(has.sum(axis=1) > 1, "MTL", "STL-" + has.idxmax(axis=1))
    return pd.Series(labels, index=trials.index)


def stl_vs_mtl_overfitting(overfit: pd.DataFrame) -> pd.DataFrame:
    """Per task, STL runs against MTL runs (every seed a run): how many overfit, the mean epoch of
    the best validation loss, the mean onset among those that overfit, the mean minimum loss, and
    Welch t-tests (MTL vs STL) of the best epoch and the minimum loss over runs. Runs that never
    overfit stay in every count and in the best-epoch and minimum-loss means."""
    from scipy.stats import ttest_ind

    columns = ["task", "stl_runs", "mtl_runs", "stl_overfit", "mtl_overfit", "stl_best_epoch",
               "mtl_best_epoch", "p_best_epoch", "stl_onset", "mtl_onset", "stl_min_loss",
               "mtl_min_loss", "p_min_loss"]
    if overfit.empty or "setting" not in overfit:
        return pd.DataFrame(columns=columns)

    def welch(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        if len(a) < 2 or len(b) < 2:
            return np.nan
        if np.ptp(np.concatenate([a, b])) == 0:
            return 1.0
        return float(ttest_ind(b, a, equal_var=False).pvalue)

    rows = []
    for task, part in overfit.groupby("task", sort=False):
        stl, mtl = part[part["setting"] == "STL"], part[part["setting"] == "MTL"]
        if stl.empty or mtl.empty:
            continue
        rows.append({"task": task, "stl_runs": len(stl), "mtl_runs": len(mtl),
                     "stl_overfit": int(stl["overfit"].sum()), "mtl_overfit": int(mtl["overfit"].sum()),
                     "stl_best_epoch": stl["best_epoch"].mean(), "mtl_best_epoch": mtl["best_epoch"].mean(),
                     "p_best_epoch": welch(stl["best_epoch"], mtl["best_epoch"]),
                     "stl_onset": stl["onset"].astype(float).mean(), "mtl_onset": mtl["onset"].astype(float).mean(),
                     "stl_min_loss": stl["min_loss"].mean(), "mtl_min_loss": mtl["min_loss"].mean(),
                     "p_min_loss": welch(stl["min_loss"], mtl["min_loss"])})
    return pd.DataFrame(rows, columns=columns)
