"""An experiment's plots and Markdown summary, from its Parquet files alone (no Ray).

:func:`render` writes into the experiment directory ``plots/*.png``, ``summary.md``,
``examples.md`` (:mod:`.examples`), ``comparison.csv`` and ``quality.csv`` for a space with a
``baseline`` and ``methods.csv`` for a study of several weighting methods; with the study's own objectives it also writes ``configs.parquet`` and the
``pareto`` column of ``trials.parquet`` (:func:`study.analysis.configs.write_front`), unless the
caller hands it the configurations it already wrote. ``study/run.py`` calls it at the end of
every sweep; ``python -m study.report`` redoes it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import study.analysis as A
from study.results.layout import STUDY
from study.results.tables import load

from study.spec.space import group_of

from . import plots as P
from .examples import write_examples
from .summary import PARAM_LABELS, summary_markdown


def _space(experiment_dir: Path):
    from study.spec.space_file import load_space

    record = json.loads((experiment_dir / STUDY).read_text())["search_space"]
    return load_space(record.get("path", experiment_dir / STUDY), text=record["text"])


def chosen_configs(configs: pd.DataFrame, objectives: dict) -> dict:
    """Configurations whose curves are drawn: the best mean on each objective, labelled by its id,
    its loss weights (when it has them) and what it is best at."""
    done = A.finished(configs)
    chosen = {}
    for metric, mode in objectives.items():
        col = done[f"{metric}_mean"].dropna() if f"{metric}_mean" in done else pd.Series(dtype=float)
        if len(col):
            row = done.loc[col.idxmax() if mode == "max" else col.idxmin()]
            if row["config_id"] in chosen:
                chosen[row["config_id"]] += f", {metric.removeprefix('val_')}"
                continue
            weights = " ".join(f"{k}={row[c]:.2f}" for c, k in PARAM_LABELS.items() if pd.notna(row.get(c)))
            chosen[row["config_id"]] = f"{row['config_id']} {weights + ' ' if weights else ''}(best {metric.removeprefix('val_')})"
    return chosen


# what the console calls a sampled parameter (the paper's a, b, c for the loss weights)
def render(experiment_dir: str | Path, objectives: dict | None = None, *,
           configs: pd.DataFrame | None = None) -> dict[str, Path]:
    """Plots and summary for ``objectives`` (default: the study's own). ``configs``: the
    configuration table with its front, when the caller has just written it."""
    experiment_dir = Path(experiment_dir)
    tables = load(experiment_dir)
    own = A.study_objectives(experiment_dir)
    objectives = objectives or own
    if configs is None:  # the study's own front is the one recorded; another one is only shown
        configs = (A.write_front(experiment_dir, tables["trials"], objectives) if objectives == own
                   else A.configs_with_front(tables["trials"], objectives))
    try:
        space = _space(experiment_dir)
    except (FileNotFoundError, KeyError):
        space = None
    found = analyse(tables, configs, objectives, space)
    for name in ("methods", "comparison", "quality", "overfit"):
        if found[name] is not None:
            found[name].to_csv(experiment_dir / f"{'overfitting' if name == 'overfit' else name}.csv", index=False)
    (experiment_dir / "plots").mkdir(exist_ok=True)
    for old in (experiment_dir / "plots").glob("**/*.png"):  # the report's own: a plot with nothing to show now goes
        old.unlink()
    out = draw(found, objectives, experiment_dir / "plots")
    found["examples"] = write_examples(experiment_dir, tables["trials"], tables["predictions"], found["groups"])
    (experiment_dir / "summary.md").write_text(summary_markdown(experiment_dir.name, found, objectives, out, experiment_dir))
    out["summary"] = experiment_dir / "summary.md"
    return {**out, **({"examples": found["examples"]} if found["examples"] else {})}


def analyse(tables: dict, configs: pd.DataFrame, objectives: dict, space) -> dict:
    """Everything the report shows, computed once from the tables (no file written)."""
    trials, epochs, predictions = tables["trials"], tables["epochs"], tables["predictions"]
    done_configs = A.finished(configs)
    config_of = dict(zip(trials["trial_id"], A.config_key(trials)))
    names = (dict(zip(A.config_key(trials), trials["param_config"].astype(str)))
             if "param_config" in trials and trials["param_config"].notna().any() else {})
    done_trials = A.finished(trials)
    setting_of = dict(zip(A.config_key(done_trials), A.task_setting(done_trials)))
    stl = [cid for cid, setting in setting_of.items() if setting.startswith("STL")]
    stl_labels = {}
    if stl:  # each single-task configuration beside the best multi-task one
        mtl_best = chosen_configs(done_configs[done_configs["config_id"].map(setting_of) == "MTL"], objectives)
        stl_labels = {cid: names.get(cid, f"{setting_of[cid]} {cid}") for cid in stl}
        stl_labels.update({cid: names.get(cid, f"MTL ({why})") for cid, why in list(mtl_best.items())[:1]})
    hv = A.hypervolume_summary(trials, objectives)
    methods = A.method_comparison(trials, objectives)
    baseline = space.baseline if space is not None else None
    overfit = A.overfitting_table(epochs, trials)
    return {
        "trials": trials, "configs": configs, "done_configs": done_configs, "hv": hv,
        "history": hv["history"],
        "curves": A.gap_curves(epochs).assign(config_id=lambda d: d["trial_id"].map(config_of)),
        "chosen": chosen_configs(configs, objectives), "stl_labels": stl_labels,
        "overfit": overfit, "stl_mtl": A.stl_vs_mtl_overfitting(overfit),
        "methods": methods if len(methods) > 1 else None,
        "importance": (A.parameter_importance(configs, space) if space is not None
                       else pd.DataFrame(columns=["method", "objective", "param", "importance"])),
        "baseline": baseline,
        "groups": ({group: [c for c, n in names.items() if group_of(n, baseline) == group]
                    for group in dict.fromkeys(group_of(n, baseline) for n in names.values())} if names
                   else {why: [cid] for cid, why in chosen_configs(configs, objectives).items()}),
        "comparison": (A.compare_to_baseline(trials, predictions, baseline=baseline)
                       if baseline and "param_config" in trials else None),
        "quality": (A.quality_comparison(trials, predictions, baseline=baseline)
                    if baseline and "param_config" in trials else None),
    }


def draw(found: dict, objectives: dict, plots: Path) -> dict[str, Path]:
    """The plots of :func:`analyse`'s results, one file each."""
    done = found["done_configs"]
    out = {"pareto": P.pareto_scatter(done, objectives, plots / "pareto.png")}
    if {"param_alpha", "param_beta", "param_gamma"} <= set(done) and done["param_alpha"].notna().any():
        out["simplex"] = P.weight_simplex(done, objectives, plots / "weight_simplex.png")
    out["learning_curves"] = P.learning_curves(found["curves"], found["chosen"], plots / "learning_curves.png")
    if found["stl_labels"]:
        out["stl_vs_mtl_curves"] = P.learning_curves(found["curves"], found["stl_labels"],
                                                     plots / "stl_vs_mtl_curves.png")
    if len(found["stl_mtl"]):
        out["stl_vs_mtl_overfitting"] = P.stl_mtl_overfitting(found["overfit"], plots / "stl_vs_mtl_overfitting.png")
    out["hypervolume"] = P.hypervolume_curve(found["history"], found["hv"], plots / "hypervolume.png")
    if found["methods"] is not None:
        out["methods"] = P.methods_on_front(A.beyond_reference(done, objectives), objectives,
                                            plots / "methods_on_front.png")
    if len(found["importance"]):
        out["importance"] = P.importance_bars(found["importance"], plots / "importance.png")
    return out

