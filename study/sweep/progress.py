"""What a user watching a sweep sees: one line per event, in the study's terms.

Each trial that starts, finishes, fails or is stopped by the scheduler prints one line: what it
trains (the weighting and its options, the loss weights as a, b, c, the other sampled settings,
the seed), its objectives when it has them, and the state of the study: trials done / running /
failed / stopped, the best configuration mean per objective, the size of the front of
configuration means, its hypervolume (fixed bounds, as in the report) and the time left at the
pace so far. Ray's own table of raw sampler variables appears only with ``--verbose``.
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ray import tune

import study.analysis as A
from study.results.layout import RESULT, TRIALS_DIR

log = logging.getLogger(__name__)

HIDDEN = ("config", "alpha", "beta", "gamma", "weighting")  # shown in their own words


def describe(params: dict, seed_index: int | None = None, weighting: str = "static", *, short: bool = False) -> str:
    """``static a=0.33 b=0.48 c=0.19, num_heads=3 (seed 1)`` from a trial's recorded params and the
    weighting it trains with (searched, or fixed by the space). ``short``: the method, the weights
    and the seed only (what a finished trial's line has room for)."""
    parts = [str(params.get("config") or params.get("weighting") or weighting)]
    if "alpha" in params:
        parts[0] += " " + " ".join(f"{k}={params[v]:.2f}" for k, v in (("a", "alpha"), ("b", "beta"), ("c", "gamma")))
    rest = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
            if k not in HIDDEN and not k.endswith(("_u1", "_u2"))]
    text = ", ".join(parts + ([] if short else rest))
    return text + (f" (seed {seed_index})" if seed_index is not None else "")


def study_state(trials: pd.DataFrame, objectives: dict[str, str], expected: int) -> dict:
    """Counts, the best configuration mean per objective with its seed count, front size and
    hypervolume of the front of configuration means (bounds as :func:`study.analysis.hypervolume_summary`).
    Only the objectives are grouped (a few milliseconds at a thousand configurations)."""
    status = trials["status"].value_counts() if len(trials) else pd.Series(dtype=int)
    state = {"done": int(status.get("TERMINATED", 0)), "failed": int(status.get("ERROR", 0)),
             "stopped": int(status.get("STOPPED", 0)), "expected": expected, "best": {},
             "front": 0, "hypervolume": np.nan}
    done = A.finished(trials) if len(trials) else trials
    if done.empty or not set(objectives) <= set(done):
        return state
    by_config = done[list(objectives)].groupby(A.config_key(done).to_numpy(), sort=False)
    means, seeds = by_config.mean(), by_config.count()
    for metric, mode in objectives.items():
        column = means[metric].dropna()
        if len(column):
            best = column.idxmax() if mode == "max" else column.idxmin()
            state["best"][metric] = (float(column[best]), int(seeds.loc[best, metric]))
    values = means.to_numpy(float)
    values = values[~np.isnan(values).any(axis=1)]
    if len(values):
        state["front"] = int(A.pareto_mask(values, list(objectives.values())).sum())
        bounds, _ = A.objective_bounds(objectives, values)
        state["hypervolume"] = A.fixed_hypervolume(values, objectives, bounds)
    return state


def time_left(durations: list[float], left: int, running: int) -> str:
    """Minutes left from the trials timed so far in this run, with the range of the middle half of
    their times; a rough figure until three trials are timed."""
    if left <= 0:
        return "finishing"
    if not durations:
        return "time left: after a trial"
    at_once = max(1, running)
    minutes = [np.quantile(durations, q) * left / at_once / 60 for q in (0.5, 0.25, 0.75)]
    if len(durations) < 3:
        return f"~{max(1, round(minutes[0]))} min left (rough)"
    if minutes[2] < 2:  # the last minutes in seconds: "1-1 min" says nothing of how sure it is
        low, mid, high = (max(5, 5 * round(m * 12)) for m in (minutes[1], minutes[0], minutes[2]))
        return f"~{mid} s left ({low}-{high} s)"
    return f"~{max(1, round(minutes[0]))} min left ({max(1, round(minutes[1]))}-{max(1, round(minutes[2]))})"


def shorten(description: str, room: int) -> str:
    """``description`` in ``room`` characters: whole settings then "...", or the method and
    the weights alone (the first part), or, when not even those fit, cut with "..."."""
    if len(description) <= room:
        return description
    parts = description.split(", ")
    for n in range(len(parts) - 1, 0, -1):
        text = ", ".join(parts[:n]) + ", ..."
        if len(text) <= room:
            return text
    return parts[0] if len(parts[0]) <= room else description[:max(room - 3, 8)] + "..."


def progress_line(event: str, what: str, state: dict, elapsed: float, durations: list[float],
                  scores: dict | None = None, width: int = 100) -> tuple[str, str]:
    """``(console line, log line)``. The console line fits ``width`` columns:
    ``[mm:ss] done/expected event what: scores | front N, HV x | time left`` (``what`` is
    shortened with ... when it must be); the log line adds the counts and the best means."""
    minutes, seconds = divmod(int(elapsed), 60)
    final = state["done"] + state["failed"] + state["stopped"]
    said = (": " + " ".join(f"{m.removeprefix('val_').replace('_accuracy', '_acc')} {v:.3f}"
                            for m, v in scores.items() if np.isfinite(v)) if scores else "")
    front = f"front {state['front']}, HV {state['hypervolume']:.3f}" if state["front"] else "no front yet"
    eta = time_left(durations, state["expected"] - final, state["running"])
    head = f"[{minutes:3d}:{seconds:02d}] {final}/{state['expected']} {event} "
    # what goes first when the line is too long: the time left, then the front (a started line,
    # which has no scores, carries both), then the end of the description
    for tail in (f" | {front} | {eta}", f" | {front}", "") if said else (f" | {front} | {eta}",):
        if len(head) + len(what) + len(said) + len(tail) <= width:
            break
    seed = re.search(r" \(seed \d+\)$", what)  # kept when the description is shortened
    seed = seed.group(0) if seed else ""
    short = shorten(what[:len(what) - len(seed)], width - len(head) - len(said) - len(tail) - len(seed)) + seed
    counts = (f"{state['done']} done, {state['running']} running, {state['failed']} failed, "
              f"{state['stopped']} stopped")
    best = ("best " + ", ".join(f"{m.removeprefix('val_')} {v:.3f} ({n} seed{'s' * (n != 1)})"
                                for m, (v, n) in state["best"].items()) if state["best"] else "no result yet")
    return head + short + said + tail, f"{event} {what}{said} | {counts} | {best} | {front} | {eta}"


class ProgressLines(tune.Callback):
    """Prints :func:`progress_line` for every trial event. The study's state is computed from
    ``records`` (:class:`study.results.tables.Records`, kept by
    :class:`study.sweep.tuner.ResultsCallback`, which runs first) when a trial ends, and kept for
    the start events in between, which change nothing in them."""

    def __init__(self, context, expected: int, records, out=print):
        self.context, self.expected, self.records, self.out = context, expected, records, out
        self.objectives = dict(zip(context.space.metrics, context.space.modes))

    def setup(self, **info):
        # the command's start (set by study/run.py): preparation and Ray's start count
        self.started = float(os.environ.get("MTL_STUDY_STARTED", time.time()))
        self.durations, self.running, self.begun, self.replayed = [], set(), {}, set()
        self._read_records()  # a resumed sweep starts from what is recorded
        recorded = self.state["done"] + self.state["failed"] + self.state["stopped"]
        if recorded:
            self.out(f"continuing: {recorded} of {self.expected} trials are recorded, "
                     f"{self.expected - recorded} to go", flush=True)

    def _read_records(self) -> None:
        self.state = study_state(self.records.trials, self.objectives, self.expected)

    def _line(self, event: str, trial, scores: dict | None = None) -> None:
        if event != "started":
            self._read_records()
        state = {**self.state, "running": len(self.running)}
        request = self.context.request(trial.trial_id, trial.config)
        weighting = request.settings.get("weighting", "static")
        what = describe(request.params, request.repeat, weighting, short=event != "started")
        line, _ = progress_line(event, what, state, time.time() - self.started, self.durations, scores)
        self.out(line, flush=True)  # the full description and the best means go to study.log
        full = describe(request.params, request.repeat, weighting)
        log.info("%s", progress_line(event, full, state, time.time() - self.started, self.durations, scores)[1])

    def _recorded(self, trial) -> bool:
        """A trial that Tune's lagging state restarts although its result is recorded: it returns
        that result without training, and the console does not announce it again."""
        return (Path(self.context.experiment_dir) / TRIALS_DIR / trial.trial_id / RESULT).exists()

    def on_trial_start(self, iteration, trials, trial, **info):
        if self._recorded(trial):
            self.replayed.add(trial.trial_id)
            return
        self.running.add(trial.trial_id)
        self.begun[trial.trial_id] = time.time()
        self._line("started", trial)

    def _ended(self, trial) -> bool:
        self.running.discard(trial.trial_id)
        if trial.trial_id in self.replayed:
            return False
        if trial.trial_id in self.begun:
            self.durations.append(time.time() - self.begun.pop(trial.trial_id))
        return True

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self._ended(trial):
            return
        result = trial.last_result or {}
        if result.get("evaluated"):
            self._line("finished", trial, {m: float(result.get(m, np.nan)) for m in self.objectives})
        else:
            self._line("stopped", trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        if self._ended(trial):
            self._line("failed", trial)
