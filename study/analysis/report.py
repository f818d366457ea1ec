"""An experiment's plots and Markdown summary, from its Parquet files alone (no Ray).

:func:`render` writes into the experiment directory ``plots/*.png``, ``summary.md``,
``comparison.csv`` for a space with a ``baseline`` and ``methods.csv`` for a study of several
weighting methods; with the study's own objectives it also writes ``configs.parquet`` and the
``pareto`` column of ``trials.parquet`` (:func:`study.analysis.configs.write_front`), unless the
caller hands it the configurations it already wrote. ``study/run.py`` calls it at the end of
every sweep; ``python -m study.report`` redoes it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import study.analysis as A
from study.results.layout import STUDY
from study.results.tables import load

from . import plots as P


def _markdown(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    if df is None or df.empty:
        return "_(none)_\n"
    shown = df.copy()
    for col in shown.select_dtypes("number"):
        values = shown[col].dropna()
        fmt = "d" if len(values) and (values == values.round()).all() and "p" not in col.split("_") else floatfmt
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else format(int(v) if fmt == "d" else v, fmt)
                                    if isinstance(v, float) else v)
    head = "| " + " | ".join(map(str, shown.columns)) + " |"
    rule = "|" + "---|" * len(shown.columns)
    body = ["| " + " | ".join(map(str, row)) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


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


def _interval(row, metric: str) -> str:
    mean, low, high = row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if pd.isna(mean):
        return ""
    return f"{mean:.3f}" + (f" [{low:.3f}, {high:.3f}]" if pd.notna(low) else " (one seed: no interval)")


# what the console calls a sampled parameter (the paper's a, b, c for the loss weights)
PARAM_LABELS = {"param_alpha": "a", "param_beta": "b", "param_gamma": "c"}


def front_table(configs: pd.DataFrame, objectives: dict, *, split: str = "val") -> pd.DataFrame:
    """The front of configuration means, as printed and written to summary.md: its parameters in
    the study's terms (a, b, c), the seeds, each objective's mean with its interval (on ``split``:
    ``val``, where the front was chosen, or ``test``, recorded and never used for selection)."""
    front = configs[configs["pareto"]] if "pareto" in configs else configs.iloc[:0]
    params = [c for c in configs if c.startswith("param_") and not c.endswith(("_u1", "_u2"))]
    out = front[["config_id", *params, "repeats_finished"]].rename(
        columns={"repeats_finished": "seeds", **{c: PARAM_LABELS.get(c, c.removeprefix("param_")) for c in params}})
    for m in objectives:
        metric = f"{split}_{m.split('_', 1)[1]}"
        out[f"{metric} (95 % CI)"] = [_interval(r, metric) if f"{metric}_mean" in r else "" for _, r in front.iterrows()]
    p = front.get("p_pareto", pd.Series(dtype=float))
    out["P(on front)"] = p
    out = out.sort_values("P(on front)", ascending=False) if len(out) else out
    out["P(on front)"] = out["P(on front)"].map(lambda v: "one seed: no interval" if pd.isna(v) else f"{v:.2f}")
    return out


def comparison_sentences(comparison: pd.DataFrame) -> list[str]:
    """One line per task and group: does the group beat the baseline, by how much, how sure."""
    lines = []
    for (task, group), part in comparison.groupby(["task", "group"], sort=False):
        facts = []
        for r in part.itertuples():
            facts.append(f"{r.metric} {r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], "
                         f"p_holm {r.p_holm:.3g}: {r.verdict}")
        better = (part["verdict"] == "better").sum()
        worse = (part["verdict"] == "worse").sum()
        head = (f"beats {part['baseline'].iloc[0]} on {better} of {len(part)} metrics" if better and not worse else
                f"is worse than {part['baseline'].iloc[0]} on {worse} of {len(part)} metrics" if worse and not better else
                f"is better on {better} and worse on {worse} of {len(part)} metrics" if better else
                f"does not differ significantly from {part['baseline'].iloc[0]} on any of {len(part)} metrics")
        lines.append(f"- **{task}, {group}** {head} (group - baseline, 95 % CI): " + "; ".join(facts) + ".")
    return lines


def methods_answer(methods: pd.DataFrame) -> str:
    """Two sentences: does any method beat static weights at equal budget, and tuned static weights?"""
    others = methods[methods["method"] != "static"]
    if (others["verdict"] == "too few seeds").all():
        return ("**No answer**: every configuration needs at least two seeds for an interval "
                "(run with --repeats 2 or more).")

    def named(column, value):
        return ", ".join(others.loc[others[column] == value, "method"]) or "none"

    tuned = named("tuned_verdict", "beyond")
    lead = (f"**Beyond tuned static weights: {tuned}**" if tuned != "none" else
            "**No method reaches beyond tuned static weights by more than the noise of seeds**")
    parts = [f"{lead} (what its configurations add past the front of all static configurations, "
             f"against what as many more static configurations add; 95 % intervals). Short of it: "
             f"{named('tuned_verdict', 'short')}.",
             f"At equal budget (a static search of as many configurations): better {named('verdict', 'better')}; "
             f"worse {named('verdict', 'worse')}; within seed noise {named('verdict', 'within seed noise')}."]
    few = named("verdict", "too few seeds")
    if few != "none":
        parts.append(f"Too few seeds to say: {few}.")
    return " ".join(parts)


def methods_table(methods: pd.DataFrame) -> pd.DataFrame:
    """:func:`study.analysis.method_comparison` as printed: each value with its interval."""
    def cell(row, name, low=None, high=None):
        low, high = row[low or f"{name}_low"], row[high or f"{name}_high"]
        return "" if pd.isna(row[name]) else f"{row[name]:+.4f} [{low:+.4f}, {high:+.4f}]"

    rows = list(methods.iterrows())
    return pd.DataFrame({
        "method": methods["method"], "configs": methods["configs"], "models": methods["models"],
        "hypervolume": methods["hv"], "static, as many configs": methods["hv_static_k"],
        "difference [95 % CI]": [cell(r, "hv_diff") for _, r in rows], "verdict": methods["verdict"],
        "beyond tuned static front": methods["contribution"], "as many more static configs": methods["static_k_beyond"],
        "difference [95 % CI] ": [cell(r, "beyond_diff") for _, r in rows], "vs tuned": methods["tuned_verdict"]})


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
    for name in ("methods", "comparison", "overfit"):
        if found[name] is not None:
            found[name].to_csv(experiment_dir / f"{'overfitting' if name == 'overfit' else name}.csv", index=False)
    (experiment_dir / "plots").mkdir(exist_ok=True)
    for old in (experiment_dir / "plots").glob("*.png"):  # the report's own: a plot with nothing to show now goes
        old.unlink()
    out = draw(found, objectives, experiment_dir / "plots")
    (experiment_dir / "summary.md").write_text(summary(experiment_dir.name, found, objectives, out, experiment_dir))
    out["summary"] = experiment_dir / "summary.md"
    return out


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
        "comparison": (A.compare_to_baseline(trials, predictions, baseline=baseline)
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


CAPTIONS = {  # what to look for in each plot
    "pareto": "Task trade-offs: each point a configuration's mean over seeds with its 95 % interval; "
              "ringed points are on the front, the colour is P(on front).",
    "simplex": "Loss weights a, b, c on the simplex, coloured by each objective's mean; ringed points are on the front.",
    "learning_curves": "Validation (solid) and training (dashed) losses of the best configuration per objective, "
                       "mean over seeds with a band of one standard deviation.",
    "stl_vs_mtl_curves": "Each single-task configuration beside the best multi-task one: where validation loss turns up.",
    "stl_vs_mtl_overfitting": "Epoch of the best validation loss per task, single-task against multi-task runs.",
    "hypervolume": "How the front's hypervolume grew as configurations completed; the bars are its 95 % "
                   "bootstrap interval along the way, the last one the summary's (none from one seed).",
    "methods": "Each weighting method's configurations on the tuned static front (filled: no static mean dominates it).",
    "importance": "Which settings matter for each objective, over configuration means: fANOVA (Optuna's default; "
                  "share of variance) beside PED-ANOVA (what optuna-dashboard shows; what sets the best 10 % "
                  "apart); the loss weights as a, b, c where the dashboard shows the sampler's u1, u2.",
}


def warnings_section(experiment_dir: Path, found: dict) -> str:
    """What changes how every number below reads, said before any of them."""
    lines = []
    record = json.loads((experiment_dir / STUDY).read_text()) if (experiment_dir / STUDY).exists() else {}
    data = record.get("data", {})
    if data.get("warning"):
        lines.append(f"- **The image encoder ran on random weights**: {data['warning']}")
    if data.get("source") == "synthetic":
        lines.append("- **Synthetic cohort**: the embedded synthetic cohort, built so that no modality gives "
                     "the answer away; findings describe this tool's setting, not patients.")
    seeds = int(found["configs"]["repeats_finished"].max()) if len(found["configs"]) else 0
    if seeds < 2:
        lines.append("- **One seed per configuration**: no interval and no P(on front) can be given; "
                     "every difference below may be the luck of a seed (run with --repeats 3).")
    elif seeds < 3:
        lines.append("- **Two seeds per configuration**: intervals are wide (a Student-t factor of 12.7), "
                     "clipped to each metric's range; treat differences as tentative.")
    return "\n".join(["## Read this first\n", *lines, ""]) if lines else ""


def summary(name: str, found: dict, objectives: dict, plots: dict, experiment_dir: Path) -> str:
    """``summary.md``: what to bear in mind, the front and its hypervolume, then each comparison
    the study has, overfitting, and the plots with what to look for in each."""
    sections = [_front_section(name, found, objectives)]
    warnings = warnings_section(experiment_dir, found)
    if warnings:
        sections[0] = sections[0].replace("\n## Pareto front", "\n" + warnings + "\n## Pareto front", 1)
    if found["methods"] is not None:
        sections.append(_methods_section(found["methods"]))
    if found["comparison"] is not None:
        sections.append(_comparison_section(found["comparison"], found["baseline"]))
    sections.append(_overfitting_section(found))
    sections.append("\n".join(["## Plots\n", *[f"{CAPTIONS.get(k, k)}\n\n![{k}]({p.relative_to(experiment_dir)})\n"
                                                for k, p in plots.items()]]))
    return "\n".join(sections)


def _front_section(name: str, found: dict, objectives: dict) -> str:
    trials, configs, hv = found["trials"], found["configs"], found["hv"]
    counts = trials["status"].value_counts().to_dict()
    bounds = ", ".join(f"`{m}` {lo:g} to {hi:g} ({hv['bound_sources'][m]})" for m, (lo, hi) in hv["bounds"].items())
    interval = (f"(95 % bootstrap interval over seeds {hv['ci_low']:.4f} to {hv['ci_high']:.4f}); "
                if np.isfinite(hv["ci_low"]) else "(one seed: no interval); ")
    above = (". The interval lies above the estimate: a front's hypervolume is a maximum over noisy means, "
             "which resampling seeds tends to raise.\n" if hv["ci_low"] > hv["hypervolume"] else ".\n")
    return "\n".join([
        f"# Study summary: {name}\n",
        f"{len(configs)} configurations, {len(trials)} trained models ({counts}); objectives: "
        + ", ".join(f"`{m}` ({d})" for m, d in objectives.items()) + ". Every number below is a mean "
        "over a configuration's seeds with its 95 % Student-t interval, clipped to the metric's range "
        "(an F1 or an accuracy never leaves 0 to 1); one seed gives no interval.\n",
        f"Hypervolume of the front of configuration means: **{hv['hypervolume']:.4f}** {interval}bounds, "
        f"worst to best: {bounds}; reference point at the worst bound, so 1 is the whole box{above}",
        "## Pareto front of configuration means\n",
        "P(on front): share of bootstrap resamples of each configuration's seeds in which it is "
        "Pareto-optimal; well below 1 means its place on the front is within the noise of seeds.\n",
        _markdown(front_table(configs, objectives)),
        "### The same configurations on the test split\n",
        "Recorded, never used to choose the front.\n",
        _markdown(front_table(configs, objectives, split="test").drop(columns=["P(on front)"]))])


def _methods_section(methods: pd.DataFrame) -> str:
    return "\n".join([
        "## Weighting methods against tuned static weights\n",
        "Every model is trained with the same budget. Two questions per method with k "
        "configurations. *At equal budget*: the hypervolume of its configuration means against "
        "what a static search of k configurations reaches (mean over every k of the static "
        "configurations). *Against tuned static weights*: what its configurations add beyond "
        "the front of all static configurations, hv(static + method) - hv(static), against what "
        "k more static configurations add (mean over k of them, beyond the front of the "
        "others): any extra configurations add some volume, so only the difference speaks. "
        "Intervals: 95 %, one bootstrap over each configuration's seeds, paired across "
        "methods. Plot: `plots/methods_on_front.png`; all columns in `methods.csv`.\n",
        methods_answer(methods), "", _markdown(methods_table(methods), ".4f")])


def _comparison_section(comparison: pd.DataFrame, baseline: str) -> str:
    return "\n".join([
        f"## {', '.join(g for g in dict.fromkeys(comparison['group']))} against {baseline}\n",
        "Recipes compared on the test split: a paired hierarchical bootstrap resamples test "
        "samples (the same for both sides) and each side's seeds; p-values are Holm-adjusted "
        "over the whole table; `p_seed` is a Welch t-test over per-seed values (three seeds "
        "or more a side). BLEU is corpus-level on every resample.\n",
        *comparison_sentences(comparison), "",
        _markdown(comparison.drop(columns=["baseline", "samples"]), ".3g")])


def _overfitting_section(found: dict) -> str:
    """How many runs overfit per task, then single- against multi-task where the study has both;
    the per-trial table is ``overfitting.csv``."""
    overfit = found["overfit"]
    counts = [f"- **{task}**: {int(part['overfit'].sum())} of {len(part)} runs overfit"
              + (f" (onset at epoch {part['onset'].astype(float).mean():.1f} on average, best epoch "
                 f"{part['best_epoch'].mean():.1f})" if part["overfit"].any() else "")
              for task, part in overfit.groupby("task", sort=False)]
    lines = [f"## Overfitting (tolerance {A.OVERFIT_TOLERANCE:.0%} above the minimum)\n",
             "A run overfits when its validation loss stays more than the tolerance above its minimum "
             "until the last epoch. Every run (seed) counts; the per-trial table is `overfitting.csv`.\n",
             *(counts or ["- no epochs recorded"]), ""]
    if len(found["stl_mtl"]):
        lines += ["Single- against multi-task runs, per task: how many overfit, when the validation loss was "
                  "lowest, the onset among runs that overfit, the minimum reached, and Welch p-values of MTL vs STL.\n",
                  _markdown(found["stl_mtl"], ".3g")]
    return "\n".join(lines)
