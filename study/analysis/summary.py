"""``summary.md``: the words and tables of an experiment's report, from what
:func:`study.analysis.report.analyse` found (no computation of its own beyond formatting)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from study.results.layout import STUDY

from .overfitting import OVERFIT_TOLERANCE

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


def _interval(row, metric: str) -> str:
    mean, low, high = row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    if pd.isna(mean):
        return ""
    return f"{mean:.3f}" + (f" [{low:.3f}, {high:.3f}]" if pd.notna(low) else " (one seed: no interval)")


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
    """One line per task, group and baseline: does the group beat it, by how much, how sure."""
    lines = []
    for (task, group, _), part in comparison.groupby(["task", "group", "baseline"], sort=False):
        facts = []
        for r in part.itertuples():
            facts.append(f"{r.metric} {r.diff:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], "
                         f"p_holm {r.p_holm:.3g}: {r.verdict}")
        better = (part["verdict"] == "better").sum()
        worse = (part["verdict"] == "worse").sum()
        head = (f"beats {part['baseline'].iloc[0]} on {better} of {len(part)} metrics" if better and not worse else
                f"is worse than {part['baseline'].iloc[0]} on {worse} of {len(part)} metrics" if worse and not better else
                f"is better than {part['baseline'].iloc[0]} on {better} and worse on {worse} of {len(part)} metrics" if better else
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


def warnings_section(experiment_dir: Path, found: dict) -> str:
    """What changes how every number below reads, said before any of them."""
    lines = []
    record = json.loads((experiment_dir / STUDY).read_text()) if (experiment_dir / STUDY).exists() else {}
    data = record.get("data", {})
    if data.get("warning"):
        lines.append(f"- **The image encoder ran on random weights**: {data['warning']}")
    removed = record.get("search_space", {}).get("tasks_removed")
    if removed:
        lines.append(f"- **Tasks removed**: {removed}.")
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


def summary_markdown(name: str, found: dict, objectives: dict, plots: dict, experiment_dir: Path) -> str:
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
    if found["quality"] is not None and len(found["quality"]):
        sections.append(_quality_section(found["quality"]))
    if found.get("examples"):
        sections.append("## Examples\n\nWhat each group writes for a few test studies, repeats and unfaithful "
                        "findings marked: [examples.md](examples.md).\n")
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


def _quality_section(quality: pd.DataFrame) -> str:
    return "\n".join([
        "## Repetition and faithfulness: the paper's qualitative claims\n",
        "Per report on the test split, lower is better: the share of word 4-grams (`repeat_4gram`) "
        "and of sentences (`repeat_sentence`) that repeat an earlier one in the same report; findings "
        "the report asserts that the reference negates or leaves out (`hallucinated`), and findings "
        "the reference asserts that the report leaves out (`missed`), by the labeler. Each group "
        "against every group before it, the same bootstrap as above, Holm over this table; "
        "`quality.csv` holds it.\n",
        *comparison_sentences(quality), "",
        _markdown(quality.drop(columns=["task", "better", "samples"]), ".3g")])


def _overfitting_section(found: dict) -> str:
    """How many runs overfit per task, then single- against multi-task where the study has both;
    the per-trial table is ``overfitting.csv``."""
    overfit = found["overfit"]
    counts = [f"- **{task}**: {int(part['overfit'].sum())} of {len(part)} runs overfit"
              + (f" (onset at epoch {part['onset'].astype(float).mean():.1f} on average, best epoch "
                 f"{part['best_epoch'].mean():.1f})" if part["overfit"].any() else "")
              for task, part in overfit.groupby("task", sort=False)]
    lines = [f"## Overfitting (tolerance {OVERFIT_TOLERANCE:.0%} above the minimum)\n",
             "A run overfits when its validation loss stays more than the tolerance above its minimum "
             "until the last epoch. Every run (seed) counts; the per-trial table is `overfitting.csv`.\n",
             *(counts or ["- no epochs recorded"]), ""]
    if len(found["stl_mtl"]):
        lines += ["Single- against multi-task runs, per task: how many overfit, when the validation loss was "
                  "lowest, the onset among runs that overfit, the minimum reached, and Welch p-values of MTL vs STL.\n",
                  _markdown(found["stl_mtl"], ".3g")]
    return "\n".join(lines)
