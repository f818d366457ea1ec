"""Multi-objective asynchronous successive halving (MO-ASHA; Schmucker et al. 2021, "Multi-objective
asynchronous successive halving", as in Syne Tune): a Ray Tune scheduler that stops poor trials
early by comparing *all* the tasks' validation losses, not one.

Rungs sit at ``grace_period * reduction_factor**k`` epochs below ``max_t``. When a trial reaches
a rung, its validation losses are recorded there and compared with every trial recorded at that
rung so far (asynchronously: trials never wait for each other). It goes on only if it is in the
best ``1 / reduction_factor`` of them by non-dominated sorting, ties within a front broken by
crowding distance (:func:`study.analysis.fronts.promotion_order`). A trial is compared on the tasks it
trains: a single-task trial only with trials that have that task's loss, and on that loss alone.
The first trials at a rung always go on, as in ASHA. A stopped trial is recorded ``STOPPED`` with
its last metrics (:class:`study.sweep.tuner.ResultsCallback`) and is never on a front.
"""
from __future__ import annotations

import math

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from study.analysis.fronts import promotion_order
from study.results.layout import VAL_LOSSES


class MultiObjectiveASHA(FIFOScheduler):
    def __init__(self, *, max_t: int, grace_period: int = 1, reduction_factor: int = 3,
                 metrics: tuple[str, ...] = VAL_LOSSES, time_attr: str = "epoch"):
        if grace_period < 1 or max_t <= grace_period or reduction_factor < 2:
            raise ValueError(f"MO-ASHA needs 1 <= grace_period < max_t and reduction_factor >= 2, got "
                             f"grace_period={grace_period}, max_t={max_t}, reduction_factor={reduction_factor}")
        super().__init__()
        self.metrics, self.time_attr, self.reduction_factor = tuple(metrics), time_attr, reduction_factor
        self.milestones = []
        m = grace_period
        while m < max_t:
            self.milestones.append(m)
            m *= reduction_factor
        self.rungs: dict[int, dict[str, np.ndarray]] = {m: {} for m in self.milestones}
        self.stopped: dict[str, int] = {}  # trial id -> the rung it stopped at

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("evaluated") or self.time_attr not in result:
            return TrialScheduler.CONTINUE  # the final evaluation report: never stop it
        t = result[self.time_attr]
        for milestone in self.milestones:
            if t < milestone or trial.trial_id in self.rungs[milestone]:
                continue
            losses = np.array([float(result.get(k, math.nan)) for k in self.metrics])
            self.rungs[milestone][trial.trial_id] = losses
            if not self.goes_on(trial.trial_id, milestone):
                self.stopped[trial.trial_id] = milestone
                return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def goes_on(self, trial_id: str, milestone: int) -> bool:
        """Whether ``trial_id`` is in the best 1 / reduction_factor of its peers at ``milestone``."""
        rung = self.rungs[milestone]
        mine = ~np.isnan(rung[trial_id])
        if not mine.any():
            return True  # nothing to compare on
        peers = [tid for tid, v in rung.items() if not np.isnan(v[mine]).any()]
        values = np.stack([rung[tid][mine] for tid in peers])            # (peers, tasks of this trial)
        order = promotion_order(values, ["min"] * int(mine.sum()))
        position = int(np.flatnonzero(np.array(peers)[order] == trial_id)[0])
        return position < math.ceil(len(peers) / self.reduction_factor)

    def debug_string(self) -> str:
        return "MO-ASHA: " + ", ".join(f"epoch {m}: {len(r)} recorded" for m, r in self.rungs.items())
