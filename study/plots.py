"""Seaborn figures drawn from the tables of :mod:`study.analysis` (PNG, titled, labelled)."""
from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(style="whitegrid", context="notebook")
LABELS = {"val_rouge_l": "validation ROUGE-L (F, 0-1)", "val_oc_accuracy": "validation OC accuracy (0-1)",
          "val_ml_f1": "validation ML F1, micro (0-1)", "val_bleu4": "validation BLEU-4 (0-1)",
          "val_bertscore_f1": "validation BERTScore F1", "val_ce_f1": "validation CE F1 (0-1)",
          "val_oc_mae": "validation OC MAE (levels)"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_scatter(trials: pd.DataFrame, objectives: dict, path: Path) -> Path:
    """Every pair of objectives; Pareto-optimal trials (``pareto`` column) highlighted."""
    pairs = list(itertools.combinations(objectives, 2)) or [(next(iter(objectives)),) * 2]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.4), squeeze=False)
    data = trials.assign(front=np.where(trials["pareto"], "Pareto-optimal", "dominated"))
    for ax, (x, y) in zip(axes[0], pairs):
        sns.scatterplot(data=data, x=x, y=y, hue="front", style="front", ax=ax, s=60,
                        hue_order=["dominated", "Pareto-optimal"], palette=["#9aa5b1", "#d1495b"])
        ax.set(xlabel=label(x), ylabel=label(y))
    fig.suptitle(f"Task trade-offs: {len(data)} trials, {int(data['pareto'].sum())} on the front "
                 f"({', '.join(f'{m} {d}' for m, d in objectives.items())})")
    return _save(fig, path)


def simplex_xy(alpha, beta, gamma):
    """Ternary layout: corners text (0, 0), OC (1, 0), ML (0.5, sqrt(3)/2)."""
    total = np.asarray(alpha) + np.asarray(beta) + np.asarray(gamma)
    b, c = np.asarray(beta) / total, np.asarray(gamma) / total
    return b + c / 2, c * np.sqrt(3) / 2


def weight_simplex(trials: pd.DataFrame, objectives: dict, path: Path) -> Path:
    """Loss weights (a, b, c) on the simplex, one panel per objective, coloured by its value."""
    data = trials.dropna(subset=["param_alpha", "param_beta", "param_gamma"])
    fig, axes = plt.subplots(1, len(objectives), figsize=(4.6 * len(objectives), 4.3), squeeze=False)
    x, y = simplex_xy(data["param_alpha"], data["param_beta"], data["param_gamma"])
    for ax, metric in zip(axes[0], objectives):
        ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="black", lw=1)
        points = ax.scatter(x, y, c=data[metric], cmap="viridis", s=70, edgecolor="white")
        fig.colorbar(points, ax=ax, shrink=0.8, label=label(metric))
        for (cx, cy), name in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], ["a (text)", "b (OC)", "c (ML)"]):
            ax.annotate(name, (cx, cy), textcoords="offset points", xytext=(0, -14 if cy == 0 else 6),
                        ha="center", fontsize=9)
        ax.set(xlim=(-0.08, 1.08), ylim=(-0.12, 0.95), aspect="equal", xticks=[], yticks=[],
               title=label(metric))
        ax.grid(False)
    fig.suptitle("Loss weights on the simplex (a corner = all weight on that task)")
    return _save(fig, path)


def learning_curves(curves: pd.DataFrame, overfit: pd.DataFrame, trial_labels: dict, path: Path) -> Path:
    """Train vs validation loss per task for chosen trials; best epoch (dot) and early stop (x)."""
    chosen = curves[curves["trial_id"].isin(trial_labels)]
    tasks = [t for t in ("text", "oc", "ml") if t in set(chosen["task"])]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 4.2), squeeze=False)
    palette = dict(zip(trial_labels, sns.color_palette("tab10", len(trial_labels))))
    for ax, task in zip(axes[0], tasks):
        for trial_id, name in trial_labels.items():
            c = chosen[(chosen["trial_id"] == trial_id) & (chosen["task"] == task)]
            if c.empty:
                continue
            color = palette[trial_id]
            ax.plot(c["epoch"], c["train"], ls="--", color=color, alpha=0.7)
            ax.plot(c["epoch"], c["validation"], color=color, label=name)
            point = overfit[(overfit["trial_id"] == trial_id) & (overfit["task"] == task)]
            if len(point) and point["best_epoch"].notna().all():
                best = int(point["best_epoch"].iloc[0])
                ax.scatter(best, c.loc[c["epoch"] == best, "validation"], color=color, zorder=3)
                ax.scatter(c["epoch"].max(), c["validation"].iloc[-1], marker="x", color=color, zorder=3)
        ax.set(title=f"{task} loss (solid: validation, dashed: train)", xlabel="epoch",
               ylabel="cross-entropy (nats)")
        ax.legend(fontsize=8)
    fig.suptitle("Learning curves: dot = best validation epoch, x = last epoch (early stop)")
    return _save(fig, path)


def hypervolume_curve(history: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=history, x="n_trials", y="hypervolume", marker="o", ax=ax)
    ax.set(title="Hypervolume of the Pareto front as trials finish",
           xlabel="finished trials (completion order)",
           ylabel="hypervolume (normalised objectives, ref. 1.1)")
    return _save(fig, path)


def importance_bars(importance: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, max(3.0, 1.0 + 0.5 * importance["param"].nunique())))
    if importance.empty:
        ax.text(0.5, 0.5, "not enough varied trials for importance", ha="center", va="center")
        ax.set_axis_off()
    else:
        sns.barplot(data=importance, y="param", x="importance", hue="objective", ax=ax, orient="h")
        ax.set(xlabel="fANOVA importance (share of variance, 0-1)", ylabel="searched parameter")
    ax.set_title("Which parameters matter for each objective")
    return _save(fig, path)


def stl_mtl_overfitting(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4))
    if table.empty or table["best_epoch"].isna().all():
        ax.text(0.5, 0.5, "no single-task trials to compare", ha="center", va="center")
        ax.set_axis_off()
    else:
        sns.barplot(data=table, x="task", y="best_epoch", hue="setting", ax=ax)
        ax.set(xlabel="task", ylabel="mean epoch of best validation loss")
    ax.set_title("When does each task stop improving? (STL vs MTL)")
    return _save(fig, path)
