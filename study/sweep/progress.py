"""What a user watching a sweep sees: one line per event, in the study's terms.

Each trial that starts, finishes, fails or is stopped by the scheduler prints one line: what it
trains (the weighting and its options, the loss weights as a, b, c, the other sampled settings,
the seed), its objectives when it has them, and the state of the study: trials done / running /
failed / stopped, the best configuration mean per objective, the size of the front of
configuration means, its hypervolume (fixed bounds, as in the report) and the time left at the
pace so far. Ray's own table of raw sampler variables appears only with ``--verbose``.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune

import study.analysis as A
from study.results.layout import TRIALS

HIDDEN = ("config", "alpha", "beta", "gamma", "weighting")  # shown in their own words


def describe(params: dict, seed_index: int | None = None, weighting: str = "static") -> str:
    """``static a=0.33 b=0.48 c=0.19, num_heads=3 (seed 1)`` from a trial's recorded params and the
    weighting it trains with (searched, or fixed by the space)."""
    parts = [str(params.get("config") or params.get("weighting") or weighting)]
    if "alpha" in params:
        parts[0] += " " + " ".join(f"{k}={params[v]:.2f}" for k, v in (("a", "alpha"), ("b", "beta"), ("c", "gamma")))
    rest = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
            if k not in HIDDEN and not k.endswith(("_u1", "_u2"))]
    text = ", ".join(parts + rest)
    return text + (f" (seed {seed_index})" if seed_index is not None else "")


def study_state(trials: pd.DataFrame, objectives: dict[str, str], expected: int) -> dict:
    """Counts, best configuration mean per objective, front size and hypervolume of the front
    of configuration means (bounds as :func:`study.analysis.hypervolume_summary`)."""
    status = trials["status"].value_counts() if len(trials) else pd.Series(dtype=int)
    state = {"done": int(status.get("TERMINATED", 0)), "failed": int(status.get("ERROR", 0)),
             "stopped": int(status.get("STOPPED", 0)), "expected": expected, "best": {},
             "front": 0, "hypervolume": np.nan}
    configs = A.finished(A.config_table(trials)) if len(trials) else pd.DataFrame()
    cols = [f"{m}_mean" for m in objectives]
    if configs.empty or not set(cols) <= set(configs):
        return state
    for metric, mode in objectives.items():
        column = configs[f"{metric}_mean"].dropna()
        if len(column):
            state["best"][metric] = float(column.max() if mode == "max" else column.min())
    values = configs[cols].to_numpy(float)
    values = values[~np.isnan(values).any(axis=1)]
    if len(values):
        state["front"] = int(A.pareto_mask(values, list(objectives.values())).sum())
        bounds, _ = A.objective_bounds(objectives, values)
        state["hypervolume"] = A.fixed_hypervolume(values, objectives, bounds)
    return state


def progress_line(event: str, what: str, state: dict, elapsed: float, finished_here: int,
                  scores: dict | None = None) -> str:
    """One line: ``[mm:ss] event what: scores | counts | best | front, HV | time left``."""
    minutes, seconds = divmod(int(elapsed), 60)
    head = f"[{minutes:3d}:{seconds:02d}] {event:8s} {what}"
    if scores:
        head += ": " + " ".join(f"{m.removeprefix('val_')} {v:.3f}" for m, v in scores.items() if np.isfinite(v))
    final = state["done"] + state["failed"] + state["stopped"]
    counts = (f"{state['done']}/{state['expected']} done, {state['running']} running, "
              f"{state['failed']} failed, {state['stopped']} stopped")
    best = "best " + " ".join(f"{m.removeprefix('val_')} {v:.3f}" for m, v in state["best"].items()) if state["best"] else "no result yet"
    front = f"front {state['front']}, HV {state['hypervolume']:.3f}" if state["front"] else "no front yet"
    left = state["expected"] - final
    eta = (f"~{max(1, round(elapsed / finished_here * left / 60))} min left" if finished_here and left > 0 else
           "finishing" if left <= 0 else "time left: after the first trial")
    return " | ".join([head, counts, best, front, eta])


class ProgressLines(tune.Callback):
    """Prints :func:`progress_line` for every trial event. The study's state is read from the
    records when a trial ends (after :class:`study.sweep.tuner.ResultsCallback` has written them) and
    kept for the start events in between, which change nothing in them."""

    def __init__(self, context, expected: int, out=print):
        self.context, self.expected, self.out = context, expected, out
        self.objectives = dict(zip(context.space.metrics, context.space.modes))

    def setup(self, **info):
        self.start, self.finished_here, self.running = time.time(), 0, set()
        self._read_records()  # a resumed sweep starts from what is recorded

    def _read_records(self) -> None:
        path = Path(self.context.experiment_dir) / TRIALS
        trials = pd.read_parquet(path) if path.exists() else pd.DataFrame()
        self.state = study_state(trials, self.objectives, self.expected)

    def _line(self, event: str, trial, scores: dict | None = None) -> None:
        if event != "started":
            self._read_records()
        state = {**self.state, "running": len(self.running)}
        request = self.context.request(trial.trial_id, trial.config)
        self.out(progress_line(event, describe(request.params, request.repeat, request.settings.get("weighting", "static")), state,
                               time.time() - self.start, self.finished_here, scores), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(trial.trial_id)
        self._line("started", trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.finished_here += 1
        result = trial.last_result or {}
        if result.get("evaluated"):
            self._line("finished", trial, {m: float(result.get(m, np.nan)) for m in self.objectives})
        else:
            self._line("stopped", trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)
        self.finished_here += 1
        self._line("failed", trial)
