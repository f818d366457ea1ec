"""The scale benchmark's measures (:mod:`benchmarks.scale`), run in a child process in either tree.

    python benchmarks/scale_measure.py '{"measure": "analysis", "n": 1000, "objectives": 3}'

Run by file path with ``PYTHONPATH`` set to the tree being measured, so its ``study`` package is
the one imported; this file needs only numpy, pandas and that package. Prints one JSON line:
``{"seconds": {...}, "answers": {...}}``.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEEDS = 3
EPOCHS = 10
METHODS = ("static", "pcgrad", "famo")
OBJECTIVES = {3: {"val_rouge_l": "max", "val_oc_accuracy": "max", "val_ml_f1": "max"},
              5: {"val_rouge_l": "max", "val_oc_accuracy": "max", "val_ml_f1": "max",
                  "val_bleu4": "max", "val_oc_mae": "min"}}
FINDINGS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


# ---- synthetic records (this part runs in either tree: numpy and pandas only) -------------------
def _metrics(weights: np.ndarray, rng: np.random.Generator) -> dict:
    """Validation and test metrics of configurations with loss weights ``weights`` (n, 3), each
    seed a draw around its configuration's level: text metrics rise with a, OC with b, ML with c."""
    a, b, c = weights.T
    level = {"rouge_l": 0.20 + 0.15 * a, "bleu4": 0.05 + 0.10 * a, "oc_accuracy": 0.35 + 0.30 * b,
             "oc_mae": 1.10 - 0.50 * b, "ml_f1": 0.45 + 0.35 * c}
    out = {}
    for split in ("val", "test"):
        for name, mean in level.items():
            value = mean + rng.normal(0, 0.02, len(mean))
            out[f"{split}_{name}"] = np.clip(value, 0.0, 4.0 if name == "oc_mae" else 1.0)
    return out


def synthetic_trials(n_configs: int, seed: int = 0):
    """``(trials, epochs)`` tables of a finished study of ``n_configs`` configurations x 3 seeds,
    shaped as ``trials.parquet`` and ``epochs.parquet``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(3), n_configs)
    method = rng.choice(METHODS, n_configs, p=[0.6, 0.2, 0.2])
    level = _metrics(weights, rng)
    rows = []
    for s in range(SEEDS):
        noise = _metrics(weights, rng)  # the seed's own draw: level + (draw - its mean)
        for c in range(n_configs):
            rows.append({"trial_id": f"t{c:05d}s{s}", "config_id": f"c{c:05d}", "repeat": s, "seed": s,
                         "param_loss_weights_u1": weights[c, 0], "param_loss_weights_u2": weights[c, 1],
                         "status": "TERMINATED", "error": None, "best_epoch": EPOCHS, "epochs_run": EPOCHS,
                         "train_seconds": 60.0, "finished_at": float(c * SEEDS + s),
                         **{m: float(np.clip(v[c] + 0.5 * (noise[m][c] - v[c]), 0, 4)) for m, v in level.items()},
                         "param_alpha": weights[c, 0], "param_beta": weights[c, 1], "param_gamma": weights[c, 2],
                         "setting_weighting": method[c]})
    trials = pd.DataFrame(rows).sort_values("finished_at", ignore_index=True)
    epoch = np.arange(1, EPOCHS + 1)
    parts = []
    for tid in trials["trial_id"]:
        curve = {"trial_id": tid, "epoch": epoch}
        for task in ("text", "oc", "ml"):
            train = 2.0 / epoch + rng.normal(0, 0.01, EPOCHS)
            curve[f"train_loss_{task}"] = train
            curve[f"val_loss_{task}"] = train + 0.02 * (epoch - rng.integers(3, EPOCHS)) ** 2 / EPOCHS
        parts.append(pd.DataFrame(curve))
    return trials, pd.concat(parts, ignore_index=True)


def recipe_study(n_samples: int = 1000, seed: int = 0):
    """``(trials, predictions)`` of 4 named recipes x 3 seeds scored on ``n_samples`` test studies."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = ("equal", "text-heavy", "oc-heavy", "ml-heavy")
    acuity = rng.integers(1, 6, n_samples)
    truth = rng.random((n_samples, len(FINDINGS))) < 0.3
    rows, preds = [], []
    for i, name in enumerate(names):
        for s in range(SEEDS):
            tid = f"r{i}s{s}"
            rows.append({"trial_id": tid, "config_id": f"r{i}", "repeat": s, "seed": s, "status": "TERMINATED",
                         "param_config": name, "finished_at": float(len(rows))})
            right = rng.random(n_samples) < 0.5 + 0.05 * i
            flip = rng.random((n_samples, len(FINDINGS))) < 0.2
            pred = np.where(flip, ~truth, truth)
            preds.append(pd.DataFrame({"trial_id": tid, "sample_id": np.arange(n_samples),
                                       "acuity_true": acuity,
                                       "acuity_pred": np.where(right, acuity, rng.integers(1, 6, n_samples)),
                                       "rouge_l": rng.beta(2 + i, 5, n_samples),
                                       **{f"true_{f}": truth[:, j].astype(float) for j, f in enumerate(FINDINGS)},
                                       **{f"pred_{f}": pred[:, j].astype(float) for j, f in enumerate(FINDINGS)}}))
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True)


# ---- measures (run in a child process, in either tree) -----------------------------------------
def measure_analysis(n_configs: int, n_objectives: int) -> dict:
    """Seconds of each part of the report's analysis, and its answers (for the comparison)."""
    import study.analysis as A
    from study.analysis.recipes import compare_to_baseline

    objectives = OBJECTIVES[n_objectives]
    trials, epochs = synthetic_trials(n_configs)
    seconds, answers = {}, {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - start
        return out

    configs = timed("front", lambda: A.configs_with_front(trials, objectives))
    answers["front"] = sorted(configs.loc[configs["pareto"], "config_id"])
    answers["p_pareto"] = configs.set_index("config_id")["p_pareto"].round(12).to_dict()

    def hypervolume():
        summary = A.hypervolume_summary(trials, objectives)
        # the baseline computed the history apart (its summary did not carry it)
        history = summary["history"] if "history" in summary else A.hypervolume_history(trials, objectives)
        return summary, history

    summary, history = timed("hypervolume", hypervolume)
    # the point only: the interval's draws changed with issue 24 (shared along the history)
    answers["hypervolume"] = summary["hypervolume"]
    answers["history"] = history["hypervolume"].tolist()
    methods = timed("methods", lambda: A.method_comparison(trials, objectives))
    answers["methods"] = methods[["method", "hv", "hv_low", "hv_high", "contribution"]].to_dict("list")
    overfit = timed("overfitting", lambda: A.overfitting_table(epochs, trials))
    answers["overfit"] = int(overfit["overfit"].sum())
    r_trials, r_predictions = recipe_study()
    recipes = timed("recipes", lambda: compare_to_baseline(r_trials, r_predictions, baseline="equal"))
    answers["recipes"] = recipes[["metric", "group", "diff", "p"]].round(12).to_dict("list")
    seconds["parts"] = sum(seconds.values())
    with tempfile.TemporaryDirectory() as tmp:  # the whole report, as `python -m study.report` makes it
        experiment = _experiment(Path(tmp) / "study", trials, epochs, objectives)
        from study.analysis.report import render

        timed("report", lambda: render(experiment))
    return {"seconds": seconds, "answers": answers}


def _experiment(experiment: Path, trials, epochs, objectives: dict) -> Path:
    """An experiment directory holding ``trials``' records, as a finished sweep leaves it."""
    import pandas as pd

    experiment.mkdir(parents=True)
    trials.to_parquet(experiment / "trials.parquet", index=False)
    epochs.to_parquet(experiment / "epochs.parquet", index=False)
    pd.DataFrame({"trial_id": pd.Series(dtype=str), "sample_id": pd.Series(dtype=int)}).to_parquet(
        experiment / "predictions.parquet", index=False)
    space = Path(__file__).resolve().parent / "spaces" / "scale.yaml"
    (experiment / "study.json").write_text(json.dumps({"search_space": {
        "path": str(space), "text": space.read_text(),
        "objectives": [{"metric": m, "mode": d} for m, d in objectives.items()]},
        "data": {"source": "synthetic"}}))
    return experiment


class _Context:
    """What the driver's callbacks read of a study's context (``StudyContext``)."""

    def __init__(self, experiment_dir: Path, objectives: dict):
        from types import SimpleNamespace

        self.experiment_dir = str(experiment_dir)
        self.remote_uri = None
        self.space = SimpleNamespace(metrics=list(objectives), modes=list(objectives.values()))
        self._request = lambda trial_id, config: SimpleNamespace(**config)

    def request(self, trial_id, config):
        return self._request(trial_id, config)


def _write_trial(trial_dir: Path, row: dict, curve, predictions) -> None:
    """One finished trial's directory as ``study.trial.runner`` writes it."""
    trial_dir.mkdir(parents=True)
    metrics = {k: v for k, v in row.items() if k.startswith(("val_", "test_"))}
    result = {"trial_id": row["trial_id"], "status": "TERMINATED", "error": None,
              "params": {"alpha": row["param_alpha"], "beta": row["param_beta"], "gamma": row["param_gamma"]},
              "settings": {"weighting": row["setting_weighting"], "epochs": EPOCHS},
              "best_epoch": EPOCHS, "epochs_run": EPOCHS, "seed": row["seed"], "config_id": row["config_id"],
              "repeat": row["repeat"], "started": row["finished_at"] - 60, "setup_seconds": 1.0,
              "train_seconds": 60.0, "metrics": metrics, "eval_seconds": 10.0, "finished": row["finished_at"]}
    curve.drop(columns="trial_id").to_parquet(trial_dir / "epochs.parquet", index=False)
    predictions.assign(trial_id=row["trial_id"]).to_parquet(trial_dir / "predictions.parquet", index=False)
    (trial_dir / "result.json").write_text(json.dumps(result))


def _predictions(n_samples: int, rng):
    """A trial's test predictions: the columns ``study.trial.predict`` writes, 40-word reports."""
    import pandas as pd

    words = np.array("no acute cardiopulmonary process heart size normal lungs clear effusion".split())
    text = [" ".join(rng.choice(words, 40)) for _ in range(n_samples)]
    table = {"sample_id": np.arange(n_samples), "reference": text, "generated": text[::-1],
             **{k: rng.random(n_samples) for k in ("bleu4", "rouge_l", "cider", "bertscore_f1")},
             "acuity_true": rng.integers(1, 6, n_samples), "acuity_pred": rng.integers(1, 6, n_samples)}
    for f in FINDINGS:
        table.update({f"true_{f}": rng.integers(0, 2, n_samples), f"prob_{f}": rng.random(n_samples),
                      f"pred_{f}": rng.integers(0, 2, n_samples)})
    return pd.DataFrame(table)


def measure_bookkeeping(n_finished: int, timed_trials: int = 5, test_samples: int = 200) -> dict:
    """Seconds the driver's callbacks (records, then the progress line) take when a trial
    finishes after ``n_finished`` finished trials (median of ``timed_trials`` trials)."""
    from types import SimpleNamespace

    from study.results import tables
    from study.sweep.progress import ProgressLines
    from study.sweep.tuner import ResultsCallback

    objectives = OBJECTIVES[3]
    trials, epochs = synthetic_trials((n_finished + timed_trials) // SEEDS + 1)
    trials = trials.head(n_finished + timed_trials)
    rng = np.random.default_rng(0)
    predictions = _predictions(test_samples, rng)
    curves = dict(tuple(epochs.groupby("trial_id")))
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Path(tmp) / "study"
        rows = trials.to_dict("records")
        for row in rows[:n_finished]:
            _write_trial(experiment / "trials" / row["trial_id"], row, curves[row["trial_id"]], predictions)
        tables.consolidate(experiment)  # the records as they stood after the last finished trial
        context = _Context(experiment, objectives)
        quiet = lambda *a, **k: None  # noqa: E731
        if hasattr(tables, "Records"):  # incremental records, shared by the two callbacks
            records = tables.Records(experiment)
            callbacks = [ResultsCallback(context, records), ProgressLines(context, len(rows), records, out=quiet)]
        else:  # the baseline: the callbacks read the trial directories and the tables themselves
            callbacks = [ResultsCallback(context), ProgressLines(context, len(rows), out=quiet)]
        for cb in callbacks:
            cb.setup()
        times = []
        for row in rows[n_finished:]:
            config = {"params": {"alpha": row["param_alpha"], "beta": row["param_beta"], "gamma": row["param_gamma"]},
                      "settings": {"weighting": row["setting_weighting"]}, "config_id": row["config_id"],
                      "repeat": row["repeat"], "seed": row["seed"]}
            trial = SimpleNamespace(trial_id=row["trial_id"], config=config,
                                    last_result={"evaluated": True, **{m: row[m] for m in objectives}})
            for cb in callbacks:
                cb.on_trial_start(0, [], trial)
            _write_trial(experiment / "trials" / row["trial_id"], row, curves[row["trial_id"]], predictions)
            start = time.perf_counter()
            for cb in callbacks:
                cb.on_trial_complete(0, [], trial)
            times.append(time.perf_counter() - start)
    return {"seconds": {"per_trial": float(np.median(times)), "max": float(np.max(times))}, "answers": {}}


if __name__ == "__main__":
    task = json.loads(sys.argv[1])
    out = (measure_analysis(task["n"], task["objectives"]) if task["measure"] == "analysis"
           else measure_bookkeeping(task["n"]))
    print(json.dumps(out, default=float))
