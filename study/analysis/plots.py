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


def pareto_scatter(configs: pd.DataFrame, objectives: dict, path: Path) -> Path:
    """:func:`pareto_figure`, saved to ``path``."""
    fig = pareto_figure(configs, objectives)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pareto_figure(configs: pd.DataFrame, objectives: dict):
    """Every pair of objectives: configuration means with their 95 % intervals over seeds,
    coloured by the probability of being Pareto-optimal (bootstrap over seeds); configurations on
    the front of the means are ringed. In each panel, the error bars come first, then the points,
    then the rings."""
    pairs = list(itertools.combinations(objectives, 2)) or [(next(iter(objectives)),) * 2]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.4 * len(pairs), 4.8), squeeze=False, layout="constrained")
    data = configs.dropna(subset=[f"{m}_mean" for m in objectives])
    p = data["p_pareto"] if "p_pareto" in data else pd.Series(np.nan, index=data.index)
    points = None
    for ax, (x, y) in zip(axes[0], pairs):
        xerr = np.abs(np.stack([data[f"{x}_mean"] - data[f"{x}_ci_low"], data[f"{x}_ci_high"] - data[f"{x}_mean"]]))
        yerr = np.abs(np.stack([data[f"{y}_mean"] - data[f"{y}_ci_low"], data[f"{y}_ci_high"] - data[f"{y}_mean"]]))
        ax.errorbar(data[f"{x}_mean"], data[f"{y}_mean"], xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr),
                    fmt="none", ecolor="#9aa5b1", elinewidth=1, capsize=2, zorder=1)
        points = ax.scatter(data[f"{x}_mean"], data[f"{y}_mean"], c=p, cmap="viridis", vmin=0, vmax=1,
                            s=60, zorder=2, edgecolor="white")
        front = data[data["pareto"]] if "pareto" in data else data.iloc[:0]
        ax.scatter(front[f"{x}_mean"], front[f"{y}_mean"], s=150, facecolors="none", edgecolors="#d1495b",
                   linewidths=1.5, zorder=3, label="on the front of the means")
        for _, row in front.iterrows():  # the ids the summary's front table and the notebook use
            ax.annotate(str(row["config_id"]), (row[f"{x}_mean"], row[f"{y}_mean"]), textcoords="offset points",
                        xytext=(6, 6), fontsize=7, color="#7a1f2b")
        ax.set(xlabel=label(x), ylabel=label(y))
    axes[0][0].legend(fontsize=8, loc="best")
    if points is not None:
        fig.colorbar(points, ax=axes[0].tolist(), shrink=0.85, label="P(Pareto-optimal) over seeds")
    repeats = int(data["repeats_finished"].max()) if len(data) else 0
    fig.suptitle(f"Task trade-offs: {len(data)} configurations x up to {repeats} seeds "
                 f"(mean, 95 % interval); {int(data['pareto'].sum()) if 'pareto' in data else 0} on the front")
    return fig


def methods_on_front(configs: pd.DataFrame, objectives: dict, path: Path) -> Path:
    """Every pair of objectives: tuned static configurations (grey; those on the static front
    black) and each other method's configurations on top, filled where no static mean dominates
    them (:func:`study.analysis.beyond_reference` builds the columns)."""
    pairs = list(itertools.combinations(objectives, 2)) or [(next(iter(objectives)),) * 2]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.4 * len(pairs), 4.8), squeeze=False, layout="constrained")
    data = configs.dropna(subset=[f"{m}_mean" for m in objectives])
    static = data[data["method"] == "static"]
    others = sorted(set(data["method"]) - {"static"})
    colours = dict(zip(others, sns.color_palette("tab10", max(len(others), 1))))
    for ax, (x, y) in zip(axes[0], pairs):
        ax.scatter(static[f"{x}_mean"], static[f"{y}_mean"], color="#b0b7bf", s=40, label="static", zorder=1)
        front = static[static["reference_front"]]  # a 3-D front seen in 2-D: points, not a line
        ax.scatter(front[f"{x}_mean"], front[f"{y}_mean"], color="black", s=40,
                   label="static, on its front (all objectives)", zorder=2)
        for m in others:
            rows = data[data["method"] == m]
            ax.scatter(rows[f"{x}_mean"], rows[f"{y}_mean"], s=70, zorder=3, linewidths=1.5,
                       facecolors=[colours[m] if b else "none" for b in rows["beyond"]],
                       edgecolors=colours[m], label=m)
        ax.set(xlabel=label(x), ylabel=label(y))
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle("Weighting methods on the tuned static front (configuration means over seeds; "
                 "filled: no static configuration dominates it)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def simplex_xy(alpha, beta, gamma):
    """Ternary layout: corners text (0, 0), OC (1, 0), ML (0.5, sqrt(3)/2)."""
    total = np.asarray(alpha) + np.asarray(beta) + np.asarray(gamma)
    b, c = np.asarray(beta) / total, np.asarray(gamma) / total
    return b + c / 2, c * np.sqrt(3) / 2


def weight_simplex(configs: pd.DataFrame, objectives: dict, path: Path) -> Path:
    """Loss weights (a, b, c) on the simplex, one panel per objective, coloured by the
    configuration's mean over seeds (``<metric>_mean`` columns); configurations on the front of
    the means are ringed."""
    data = configs.dropna(subset=["param_alpha", "param_beta", "param_gamma"])
    fig, axes = plt.subplots(1, len(objectives), figsize=(4.6 * len(objectives), 4.3), squeeze=False)
    x, y = simplex_xy(data["param_alpha"], data["param_beta"], data["param_gamma"])
    for ax, metric in zip(axes[0], objectives):
        ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], color="black", lw=1)
        points = ax.scatter(x, y, c=data[f"{metric}_mean"], cmap="viridis", s=70, edgecolor="white")
        on_front = data["pareto"].to_numpy(bool) if "pareto" in data else np.zeros(len(data), bool)
        ax.scatter(np.asarray(x)[on_front], np.asarray(y)[on_front], s=150, facecolors="none",
                   edgecolors="#d1495b", linewidths=1.5, label="on the front")
        fig.colorbar(points, ax=ax, shrink=0.8, label=label(metric))
        for (cx, cy), name in zip([(0, 0), (1, 0), (0.5, np.sqrt(3) / 2)], ["a (text)", "b (OC)", "c (ML)"]):
            ax.annotate(name, (cx, cy), textcoords="offset points", xytext=(0, -14 if cy == 0 else 6),
                        ha="center", fontsize=9)
        ax.set(xlim=(-0.08, 1.08), ylim=(-0.12, 0.95), aspect="equal", xticks=[], yticks=[],
               title=label(metric))
        ax.grid(False)
    fig.suptitle("Loss weights on the simplex (a corner = all weight on that task)")
    return _save(fig, path)


def learning_curves(curves: pd.DataFrame, labels: dict, path: Path) -> Path:
    """:func:`learning_curves_figure`, saved to ``path``."""
    return _save(learning_curves_figure(curves, labels), path)


def learning_curves_figure(curves: pd.DataFrame, labels: dict):
    """Train (dashed) and validation (solid) loss per task for chosen configurations: the mean over
    their seeds with a band of +-1 standard deviation. ``curves`` is :func:`study.analysis.gap_curves`
    with a ``config_id`` column; ``labels`` maps config ids to legend labels."""
    chosen = curves[curves["config_id"].isin(labels)].assign(configuration=lambda d: d["config_id"].map(labels))
    tasks = [t for t in ("text", "oc", "ml") if t in set(chosen["task"])]
    fig, axes = plt.subplots(1, max(1, len(tasks)), figsize=(5 * max(1, len(tasks)), 4.2), squeeze=False)
    order = list(dict.fromkeys(labels.values()))
    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    for ax, task in zip(axes[0], tasks):
        part = chosen[chosen["task"] == task]
        present = [o for o in order if o in set(part["configuration"])]  # a task only its configs have
        sns.lineplot(data=part, x="epoch", y="validation", hue="configuration", hue_order=present,
                     palette=palette, errorbar="sd", ax=ax)
        sns.lineplot(data=part, x="epoch", y="train", hue="configuration", hue_order=present, palette=palette,
                     errorbar=None, ax=ax, linestyle="--", alpha=0.6, legend=False)
        ax.set(title=f"{task} loss (solid: validation, dashed: train)", xlabel="epoch",
               ylabel="cross-entropy (nats)")
        ax.legend(fontsize=8)
    seeds = int(chosen.groupby("config_id")["trial_id"].nunique().max()) if len(chosen) else 0
    fig.suptitle(f"Learning curves: mean over up to {seeds} seeds, band = +-1 sd")
    return fig


def hypervolume_curve(history: pd.DataFrame, summary: dict, path: Path) -> Path:
    """:func:`hypervolume_figure`, saved to ``path``."""
    return _save(hypervolume_figure(history, summary), path)


def hypervolume_figure(history: pd.DataFrame, summary: dict):
    """Hypervolume of the configuration means as configurations complete (fixed bounds, the axis
    from 0), with its bootstrap interval over seeds wherever :func:`study.analysis.hypervolume_history`
    computed one, drawn from the interval's own ends: a front's hypervolume is a maximum over
    noisy means, so resampled seeds tend to raise it and the interval can lie wholly above the
    estimate (an error bar measured from the estimate would then be negative)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(data=history, x="n_configs", y="hypervolume", marker="o", ax=ax)
    band = history.dropna(subset=["ci_low", "ci_high"]) if "ci_low" in history else history.iloc[:0]
    if len(band):
        ax.vlines(band["n_configs"], band["ci_low"], band["ci_high"], color="#d1495b", lw=2,
                  label="95 % bootstrap interval over seeds")
    elif len(history):
        ax.plot([], [], " ", label=f"{summary.get('seeds', 1)} seed per configuration: no interval")
    if len(history):
        ax.legend(fontsize=8, loc="lower right")
    top = np.nanmax([history["hypervolume"].max() if len(history) else 0.0,
                     band["ci_high"].max() if len(band) else 0.0])
    ax.set_ylim(0, min(1.0, 1.15 * top) if top > 0 else 1.0)
    ax.set(title="Hypervolume of the front of configuration means",
           xlabel="completed configurations (completion order)",
           ylabel="share of the objective box dominated (0-1)")
    return fig


def importance_figure(importance: pd.DataFrame):
    """One panel per method of :func:`study.analysis.parameter_importance` (fANOVA, PED-ANOVA),
    bars per parameter coloured by objective."""
    methods = list(dict.fromkeys(importance["method"]))
    fig, axes = plt.subplots(1, len(methods), sharey=True, squeeze=False,
                             figsize=(5.5 * len(methods), max(3.0, 1.0 + 0.5 * importance["param"].nunique())))
    order = sorted(importance["param"].unique())
    for ax, method in zip(axes[0], methods):
        sns.barplot(data=importance[importance["method"] == method], y="param", x="importance",
                    hue="objective", order=order, ax=ax, orient="h")
        ax.set(xlim=(0, 1), xlabel="importance (sums to 1 per objective)", ylabel="parameter (a, b, c: loss weights)",
               title={"fanova": "fANOVA: variance over all configurations",
                      "ped-anova": "PED-ANOVA: what sets the top 10 % apart"}.get(method, method))
    fig.suptitle("Which parameters matter for each objective (configuration means)")
    fig.tight_layout()
    return fig


def importance_bars(importance: pd.DataFrame, path: Path) -> Path:
    return _save(importance_figure(importance), path)


def stl_mtl_overfitting(overfit: pd.DataFrame, path: Path) -> Path:
    """Epoch of the best validation loss per task, STL runs vs MTL runs (every seed a run;
    bars are means, whiskers 95 % intervals). ``overfit`` is :func:`study.analysis.overfitting_table`."""
    fig, ax = plt.subplots(figsize=(6, 4))
    if overfit.empty or "setting" not in overfit or overfit["setting"].nunique() < 2:
        ax.text(0.5, 0.5, "no single-task trials to compare", ha="center", va="center")
        ax.set_axis_off()
    else:
        sns.barplot(data=overfit, x="task", y="best_epoch", hue="setting", hue_order=["STL", "MTL"],
                    errorbar=("ci", 95), ax=ax)
        ax.set(xlabel="task", ylabel="epoch of best validation loss")
    ax.set_title("When does each task stop improving? (STL vs MTL)")
    return _save(fig, path)

