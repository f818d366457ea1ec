"""Render an experiment's plots and a Markdown summary from its Parquet files alone (no Ray).

    python -m study.report EXPERIMENT_DIR [--objectives val_rouge_l:max val_ml_f1:max ...]

Writes ``plots/*.png`` and ``summary.md`` into the experiment directory and adds the ``pareto``
column to ``trials.parquet``. ``study/run.py`` calls it at the end of every sweep.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from . import analysis as A
from . import plots as P
from .store import TRIALS, load, write_parquet_atomic


def _markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    if df is None or df.empty:
        return "_(none)_\n"
    shown = df.copy()
    for col in shown.select_dtypes("number"):
        fmt = "d" if ("epoch" in col or col == "trials") else floatfmt  # counts stay integers
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else format(int(v) if fmt == "d" else v, fmt)
                                    if isinstance(v, float) else v)
    head = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


def _space(experiment_dir: Path):
    from .space import load_space

    record = json.loads((experiment_dir / "study.json").read_text())["search_space"]
    return load_space(record.get("path", experiment_dir / "study.json"), text=record["text"])


def chosen_trials(trials: pd.DataFrame, objectives: dict) -> dict:
    """Trials whose curves are drawn: the best on each objective, labelled by it."""
    done = A.finished(trials)
    chosen = {}
    for metric, mode in objectives.items():
        col = done[metric].dropna()
        if len(col):
            best = col.idxmax() if mode == "max" else col.idxmin()
            chosen.setdefault(done.loc[best, "trial_id"], f"best {metric}")
    return chosen


def render(experiment_dir: str | Path, objectives: dict | None = None) -> dict[str, Path]:
    experiment_dir = Path(experiment_dir)
    tables = load(experiment_dir)
    trials, epochs, predictions = tables["trials"], tables["epochs"], tables["predictions"]
    objectives = objectives or A.study_objectives(experiment_dir)
    trials = A.with_pareto_column(trials, objectives)
    write_parquet_atomic(experiment_dir / TRIALS, trials)

    plots = experiment_dir / "plots"
    plots.mkdir(exist_ok=True)
    done = A.finished(trials)
    out = {"pareto": P.pareto_scatter(done, objectives, plots / "pareto.png")}
    if {"param_alpha", "param_beta", "param_gamma"} <= set(done) and done["param_alpha"].notna().any():
        out["simplex"] = P.weight_simplex(done, objectives, plots / "weight_simplex.png")
    curves = A.gap_curves(epochs)
    overfit = A.overfitting_table(epochs, trials)
    out["learning_curves"] = P.learning_curves(curves, overfit, chosen_trials(trials, objectives),
                                               plots / "learning_curves.png")
    settings = A.task_setting(done)
    stl = {t: s for t, s in zip(done["trial_id"], settings) if s.startswith("STL")}
    mtl_best = chosen_trials(done[settings == "MTL"], objectives)
    stl_mtl = A.stl_vs_mtl_overfitting(overfit, done)
    if stl:
        first_mtl = dict(list(mtl_best.items())[:1])
        out["stl_vs_mtl_curves"] = P.learning_curves(
            curves, overfit, {**stl, **{k: f"MTL ({v})" for k, v in first_mtl.items()}},
            plots / "stl_vs_mtl_curves.png")
    out["stl_vs_mtl_overfitting"] = P.stl_mtl_overfitting(stl_mtl, plots / "stl_vs_mtl_overfitting.png")
    history = A.hypervolume_history(trials, objectives)
    out["hypervolume"] = P.hypervolume_curve(history, plots / "hypervolume.png")
    try:
        importance = A.parameter_importance(trials, _space(experiment_dir))
    except (FileNotFoundError, KeyError):
        importance = pd.DataFrame(columns=["objective", "param", "importance"])
    out["importance"] = P.importance_bars(importance, plots / "importance.png")

    group_col = "param_config" if "param_config" in trials and trials["param_config"].notna().any() else None
    comparison = A.compare_groups(done, predictions, group_col=group_col) if group_col else None
    front = A.pareto_front(trials, objectives)
    params = [c for c in trials if c.startswith("param_") and not c.endswith(("_u1", "_u2"))]
    summary = [
        f"# Study summary: {experiment_dir.name}\n",
        f"{len(trials)} trials ({trials['status'].value_counts().to_dict()}); objectives: "
        + ", ".join(f"`{m}` ({d})" for m, d in objectives.items()) + ".\n",
        f"Final hypervolume: {history['hypervolume'].iloc[-1]:.4f} (objectives min-max normalised over "
        f"finished trials, reference point 1.1)\n" if len(history) else "",
        "## Pareto front\n", _markdown(front[["trial_id", *params, *objectives]]),
        "## Group comparison (per-sample means; paired t-tests vs the first group, Holm-adjusted)\n",
        _markdown(comparison) if comparison is not None else "_(no named configurations: run the paper grid)_\n",
        "## Overfitting: epochs before validation loss rose for good\n", _markdown(stl_mtl),
        "### Per trial and task\n", _markdown(overfit),
        "## Plots\n", *[f"- `{p.relative_to(experiment_dir)}`\n" for p in out.values()],
    ]
    (experiment_dir / "summary.md").write_text("\n".join(summary))
    out["summary"] = experiment_dir / "summary.md"
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m study.report", description=__doc__.split("\n")[0])
    parser.add_argument("experiment_dir")
    parser.add_argument("--objectives", nargs="+", default=None,
                        help="metric:max|min pairs (default: the study's objectives)")
    args = parser.parse_args(argv)
    objectives = None
    if args.objectives:
        objectives = {}
        for item in args.objectives:
            metric, _, mode = item.partition(":")
            if mode not in ("max", "min"):
                parser.error(f"--objectives {item!r}: expected METRIC:max or METRIC:min")
            objectives[metric] = mode
    for name, path in render(args.experiment_dir, objectives).items():
        print(f"{name:24s} {path}")


if __name__ == "__main__":
    main()
