"""Analysis of an experiment's Parquet files (no Ray): Pareto fronts, hypervolume, overfitting,
group comparisons and parameter importance. Plots (:mod:`study.plots`) draw only what these
functions return, so every plotted number is tested here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from model.config import TASKS

from .significance import holm, paired_test


# ---- Pareto front -------------------------------------------------------------------------------
def pareto_mask(values: np.ndarray, directions) -> np.ndarray:
    """True for rows not dominated by any other row.

    ``values`` (n, k); ``directions`` k of ``"max"``/``"min"``. A row with any missing value is
    never on the front (a trial without a task's metric cannot trade it off). Equal rows do not
    dominate each other, so ties are all on the front.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(directions):
        raise ValueError(f"values must be (n, {len(directions)}), got shape {v.shape}")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', got {bad}")
    signed = v * np.array([1.0 if d == "max" else -1.0 for d in directions])  # larger is better
    valid = ~np.isnan(signed).any(axis=1)
    mask = np.zeros(len(v), bool)
    idx = np.flatnonzero(valid)
    s = signed[idx]
    for j, row in enumerate(s):
        dominated = np.any(np.all(s >= row, axis=1) & np.any(s > row, axis=1))
        mask[idx[j]] = not dominated
    return mask


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["status"] == "TERMINATED"] if "status" in trials else trials


def pareto_front(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The finished trials on the front of ``objectives`` ({column: "max"|"min"})."""
    missing = [c for c in objectives if c not in trials]
    if missing:
        raise KeyError(f"objective column(s) {missing} not in the trial table; "
                       f"available: {sorted(c for c in trials if c.startswith('val_'))}")
    done = finished(trials)
    return done[pareto_mask(done[list(objectives)].to_numpy(float), list(objectives.values()))]


def with_pareto_column(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    out = trials.copy()
    out["pareto"] = out["trial_id"].isin(pareto_front(trials, objectives)["trial_id"])
    return out


# ---- hypervolume --------------------------------------------------------------------------------
def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume dominated by ``points`` (minimisation) up to ``ref``, by slicing."""
    points = points[np.all(points < ref, axis=1)]
    if len(points) == 0:
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    order = np.argsort(points[:, -1])
    pts = points[order]
    volume = 0.0
    for i, p in enumerate(pts):
        upper = pts[i + 1, -1] if i + 1 < len(pts) else ref[-1]
        if upper > p[-1]:
            volume += (upper - p[-1]) * _hv_min(pts[: i + 1, :-1], ref[:-1])
    return volume


def normalise(values: np.ndarray, directions, bounds=None):
    """Turn objectives into minimisation on [0, 1]: 0 = best, 1 = worst of ``bounds``.

    ``bounds`` (k, 2) of (worst, best) per objective; default: observed over ``values``. With
    constant objectives the span is taken as 1.
    """
    v = np.asarray(values, float)
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    losses = v * sign
    if bounds is None:
        lo, hi = np.nanmin(losses, axis=0), np.nanmax(losses, axis=0)
    else:
        b = np.asarray(bounds, float) * sign[:, None]
        lo, hi = b.min(axis=1), b.max(axis=1)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return (losses - lo) / span, (lo, span)


REFERENCE = 1.1  # reference point in normalised space: 10 % beyond the worst observed value


def hypervolume(values: np.ndarray, directions, *, bounds=None, reference: float = REFERENCE) -> float:
    """Hypervolume of the non-dominated rows, after :func:`normalise`, with reference point
    ``reference`` in every coordinate (so the maximum is ``reference ** k``). Rows with missing
    values are ignored."""
    norm, _ = normalise(values, directions, bounds)
    norm = norm[~np.isnan(norm).any(axis=1)]
    return _hv_min(norm, np.full(norm.shape[1], reference)) if len(norm) else 0.0


def hypervolume_history(trials: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """Hypervolume after each finished trial, in completion order (how fast the search improves).
    Normalisation bounds come from all finished trials, so the curve is comparable along itself."""
    done = finished(trials).sort_values("finished_at") if "finished_at" in trials else finished(trials)
    values = done[list(objectives)].to_numpy(float)
    directions = list(objectives.values())
    valid = values[~np.isnan(values).any(axis=1)]
    if len(valid) == 0:
        return pd.DataFrame(columns=["n_trials", "trial_id", "hypervolume"])
    bounds = np.stack([valid.min(0), valid.max(0)], axis=1)
    bounds = np.where(np.array([d == "max" for d in directions])[:, None], bounds, bounds[:, ::-1])
    rows = [{"n_trials": i + 1, "trial_id": tid,
             "hypervolume": hypervolume(values[: i + 1], directions, bounds=bounds)}
            for i, tid in enumerate(done["trial_id"])]
    return pd.DataFrame(rows)


# ---- overfitting --------------------------------------------------------------------------------
def overfitting_point(val_loss, *, tolerance: float = 0.0) -> dict:
    """For one validation-loss curve (epochs 1..n): ``best_epoch`` (its minimum) and
    ``overfit_epoch``, the first epoch after which the loss stayed above the minimum by more
    than ``tolerance`` (relative) until the end; ``None`` when the last epoch is still within it
    (no overfitting yet). ``epochs_before_overfitting`` = ``best_epoch`` when it overfits."""
    v = np.asarray(val_loss, float)
    if len(v) == 0 or np.isnan(v).all():
        return {"best_epoch": None, "overfit_epoch": None, "epochs_before_overfitting": None}
    best = int(np.nanargmin(v))
    above = v[best + 1:] > v[best] * (1 + tolerance)
    overfit = best + 2 if len(above) and above.all() else None
    return {"best_epoch": best + 1, "overfit_epoch": overfit,
            "epochs_before_overfitting": best + 1 if overfit else None}


def overfitting_table(epochs: pd.DataFrame, trials: pd.DataFrame | None = None, *,
                      group_col: str | None = None, tolerance: float = 0.0) -> pd.DataFrame:
    """One row per (trial, task) with an active validation loss: best epoch, overfitting onset,
    and the final train-validation gap. ``group_col`` (a trial column) labels the rows."""
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
    table = pd.DataFrame(rows)
    if group_col and trials is not None and len(table):
        table = table.merge(trials[["trial_id", group_col]], on="trial_id", how="left")
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


def stl_vs_mtl_overfitting(overfit: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean epochs before overfitting (and share of trials that overfit) for STL vs MTL."""
    if overfit.empty:
        return pd.DataFrame()
    setting = task_setting(trials).rename("setting")
    table = overfit.merge(pd.concat([trials["trial_id"], setting], axis=1), on="trial_id")
    table["setting"] = np.where(table["setting"] == "MTL", "MTL", "STL")
    return (table.groupby(["task", "setting"])
            .agg(trials=("trial_id", "nunique"), best_epoch=("best_epoch", "mean"),
                 epochs_before_overfitting=("epochs_before_overfitting", "mean"),
                 overfit_share=("overfit_epoch", lambda s: s.notna().mean()))
            .reset_index())


# ---- comparisons --------------------------------------------------------------------------------
PER_SAMPLE = {"bleu4": "bleu4", "rouge_l": "rouge_l", "bertscore_f1": "bertscore_f1"}


def per_sample_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per (trial, sample) scores usable in paired tests, incl. OC absolute error and ML accuracy."""
    out = predictions[["trial_id", "sample_id"]].copy()
    for name, col in PER_SAMPLE.items():
        if col in predictions:
            out[name] = predictions[col]
    if {"acuity_true", "acuity_pred"} <= set(predictions):
        out["oc_correct"] = (predictions["acuity_true"] == predictions["acuity_pred"]).astype(float)
        out["oc_abs_error"] = (predictions["acuity_true"] - predictions["acuity_pred"]).abs()
    true_cols = [c for c in predictions if c.startswith("true_")]
    if true_cols:
        pred = predictions[[c.replace("true_", "pred_") for c in true_cols]].to_numpy()
        out["ml_label_accuracy"] = (predictions[true_cols].to_numpy() == pred).mean(axis=1)
    return out


def compare_groups(trials: pd.DataFrame, predictions: pd.DataFrame, *, group_col: str,
                   groups: list[str] | None = None, baseline: str | None = None) -> pd.DataFrame:
    """Per-sample metrics per group (mean over the group's trials), and a paired t-test of each
    group against ``baseline`` on every metric both have, with Holm-adjusted p-values.

    For STL vs MTL, STL trials are single-task, so each metric's STL value comes from the STL
    trial of that task (e.g. ``rouge_l`` from STL-text): a group is every trial whose
    ``group_col`` value starts with the group name.
    """
    scores = per_sample_scores(predictions).merge(trials[["trial_id", group_col]], on="trial_id")
    labels = trials[group_col].dropna().astype(str)
    groups = groups or sorted({g.split("-")[0] if g.startswith("STL") else g for g in labels})
    baseline = baseline or groups[0]
    metrics = [c for c in scores if c not in ("trial_id", "sample_id", group_col)]
    means, rows = {}, []
    for g in groups:
        part = scores[scores[group_col].astype(str).str.startswith(g)]
        means[g] = part.groupby("sample_id")[metrics].mean()  # NaN-skipping: STL tasks combine
    for metric in metrics:
        row = {"metric": metric, **{g: means[g][metric].mean() for g in groups}}
        for g in groups:
            if g == baseline:
                continue
            pair = pd.concat([means[g][metric], means[baseline][metric]], axis=1, keys=["a", "b"]).dropna()
            p = paired_test(pair["a"], pair["b"]).p_value if len(pair) >= 2 else np.nan
            row[f"p_{g}_vs_{baseline}"] = p
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in [c for c in table if c.startswith("p_")]:
        ok = table[col].notna()
        table.loc[ok, col.replace("p_", "p_holm_", 1)] = holm(table.loc[ok, col])
    return table


# ---- parameter importance -----------------------------------------------------------------------
def parameter_importance(trials: pd.DataFrame, space, *, seed: int = 0) -> pd.DataFrame:
    """Optuna's fANOVA importance of each searched parameter for each objective (long table).

    Built from the trial table alone: each finished trial becomes an Optuna ``FrozenTrial``
    with the search space's distributions. Needs at least two trials with varied parameters.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = space.distributions()
    done = finished(trials)
    rows = []
    for metric, mode in zip(space.metrics, space.modes):
        if metric not in done:
            continue
        study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
        for _, t in done.iterrows():
            params = {k: t.get(f"param_{k}") for k in dists}
            if pd.isna(t[metric]) or any(v is None or (isinstance(v, float) and np.isnan(v)) for v in params.values()):
                continue
            params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(t[metric])))
        if len(study.trials) < 2:
            continue
        try:
            importance = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
        except (RuntimeError, ValueError):  # e.g. every trial identical
            continue
        rows += [{"objective": metric, "param": k, "importance": v} for k, v in importance.items()]
    return pd.DataFrame(rows, columns=["objective", "param", "importance"])


def study_objectives(experiment_dir: str | Path) -> dict[str, str]:
    """Objectives and directions recorded in ``study.json``."""
    record = json.loads((Path(experiment_dir) / "study.json").read_text())
    return {o["metric"]: o["mode"] for o in record["search_space"]["objectives"]}
