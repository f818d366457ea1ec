"""The study's searcher: Optuna through Tune's ``Searcher`` API, each configuration trained with
several seeds.

Each configuration Optuna proposes (``study.ask()``, then the space's define-by-run
:meth:`~study.spec.space.SearchSpace.suggest`) runs ``repeats`` times: Tune's config carries the
repeat index (:data:`~study.spec.request.REPEAT_KEY`), and when every seed has reported, Optuna
is told each objective's mean over the seeds that reported it (``study.tell``). A configuration
whose every seed failed is ``FAIL``; one whose every seed the scheduler stopped is ``PRUNED``.

The Optuna study lives in ``optuna.db`` (:func:`study.results.optuna_db.optuna_storage`): one
Optuna trial per configuration. Each epoch, the configuration's trial gets the mean validation
loss per task over the seeds that reached that epoch (user attributes ``val_loss_<task>``, one
value per epoch) and their sum as its intermediate value. Those writes are at most one per
configuration every :data:`CURVE_WRITE_SECONDS` while it trains, and every epoch is written when a
seed ends and before the searcher's state is saved: a Tune trial waits at each report until the
driver has handled it, and writing every epoch cost about 25 ms of each epoch of a trial.

Only public interfaces are used: Tune's ``Searcher`` methods (``suggest``, ``on_trial_result``,
``on_trial_complete``, ``save``, ``restore``), Optuna's ``create_study`` / ``load_study`` /
``ask`` / ``tell`` / ``enqueue_trial`` and the storage's methods (``BaseStorage``).
"""
from __future__ import annotations

import logging
import math
import pickle
import time
import warnings

import numpy as np
import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from ray.tune.search import Searcher

from study.spec.request import REPEAT_KEY
from study.spec.space import SearchSpace

log = logging.getLogger(__name__)
CURVE_WRITE_SECONDS = 10.0  # how far optuna-dashboard's live curves may lag behind the trials


class StudySearch(Searcher):
    """Optuna's multi-objective search, ``repeats`` seeds per configuration (see the module docs)."""

    def __init__(self, space: SearchSpace, *, repeats: int, seed: int, storage, study_name: str):
        super().__init__(metric=space.metrics, mode=space.modes)
        self.space, self.repeats, self.storage, self.study_name = space, repeats, storage, study_name
        self.study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=space.sampler(seed), load_if_exists=True,
            directions=["maximize" if m == "max" else "minimize" for m in space.modes])
        if not self.study.trials:  # a new study: name the objectives (for optuna-dashboard) and queue the turns
            with warnings.catch_warnings():  # experimental in Optuna
                warnings.simplefilter("ignore")
                self.study.set_metric_names(list(space.metrics))
            for point in space.enqueued():
                self.study.enqueue_trial(point)
        self.groups: dict[int, dict] = {}   # Optuna trial number -> {"config", "trials", "scores"}
        self.group_of: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self.open: int | None = None        # the configuration still handing out seeds
        self.curves: dict[int, dict] = {}   # number -> epoch -> Tune trial id -> {val_loss_<task>: value}
        self.written: dict[int, float] = {}  # number -> when its curve was last written (monotonic)
        self.pending: dict[int, set] = {}    # number -> epochs with values not yet written

    # ---- Tune's Searcher interface ------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict:
        if self.open is None or len(self.groups[self.open]["trials"]) >= self.repeats:
            trial = self.study.ask()
            self.space.suggest(trial)
            self.open = trial.number
            self.groups[trial.number] = {"config": dict(trial.params), "trials": [], "scores": {}}
        group = self.groups[self.open]
        group["trials"].append(trial_id)
        self.group_of[trial_id] = self.open
        return {**group["config"], REPEAT_KEY: len(group["trials"]) - 1}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._record_curve(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if result and not error:  # a scheduler's stop arrives here with the epoch it judged
            self._record_curve(trial_id, result)
        number = self.group_of.get(trial_id)
        if number is None:
            log.warning("trial %s is not in any configuration group; its result is not told to "
                        "the searcher", trial_id)
            return
        self._flush_curve(number)  # this seed's last epochs, before a tell closes the trial
        group = self.groups[number]
        if trial_id in group["scores"]:  # Tune reports some trials twice (an error after a completion)
            return
        ok = bool(result) and not error
        group["scores"][trial_id] = [float(result.get(m, math.nan)) if ok else math.nan for m in self.metric]
        group["failed"] = group.get("failed", 0) + (not ok)
        if len(group["scores"]) < self.repeats:
            return
        scores = np.array(list(group["scores"].values()), dtype=float)          # (repeats, objectives)
        if np.isnan(scores).all():  # every seed stopped by the scheduler (PRUNED) or failed (FAIL)
            self._tell(number, state=TrialState.FAIL if group["failed"] == self.repeats else TrialState.PRUNED)
            return
        with warnings.catch_warnings():  # a single-task configuration has all-NaN objectives
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(scores, axis=0)
        self._tell(number, values=means.tolist())

    def _tell(self, number: int, *, values=None, state=None) -> None:
        """``study.tell``; the trial is stored whatever the sampler does afterwards. Optuna's grid
        sampler calls ``study.stop()`` after the last point, which works only inside
        ``study.optimize``: here Tune's ``num_samples`` ends the sweep, so that stop is not needed."""
        try:
            self.study.tell(number, values, state=state)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                raise
        except ValueError as exc:  # e.g. a NaN objective: Optuna records the trial as failed
            log.warning("configuration %d: %s", number, exc)

    def save(self, checkpoint_path: str) -> None:
        for number in list(self.pending):  # optuna.db holds at least what the checkpoint holds
            self._flush_curve(number)
        state = {k: getattr(self, k) for k in ("groups", "group_of", "open", "curves")}
        with open(checkpoint_path, "wb") as f:
            pickle.dump({**state, "sampler": self.study.sampler}, f)

    def restore(self, checkpoint_path: str) -> None:
        """Back to the last checkpoint. A configuration drawn after it (the sweep was killed before
        Ray saved its state) is in the Optuna storage as RUNNING, unknown to the checkpoint: it
        goes back to WAITING, so the next draw takes it, with its parameters, instead of leaving
        it behind and drawing another (nothing lost, nothing twice)."""
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.study = optuna.load_study(study_name=self.study_name, storage=self.storage,
                                       sampler=state.pop("sampler"))
        for key, value in state.items():
            setattr(self, key, value)
        for orphan in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if orphan.number not in self.groups:
                self.storage.set_trial_state_values(self._storage_id(orphan.number), TrialState.WAITING)

    # ---- the per-epoch record -----------------------------------------------------------------
    def _storage_id(self, number: int) -> int:
        study_id = self.storage.get_study_id_from_name(self.study_name)
        return self.storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def _record_curve(self, trial_id: str, result: dict) -> None:
        number = self.group_of.get(trial_id)
        if number is None or result.get("evaluated") or "epoch" not in result:
            return
        losses = {k: float(v) for k, v in result.items() if k.startswith("val_loss_") and np.isfinite(v)}
        epoch = int(result["epoch"])
        self.curves.setdefault(number, {}).setdefault(epoch, {})[trial_id] = losses
        self.pending.setdefault(number, set()).add(epoch)
        if time.monotonic() - self.written.get(number, -math.inf) >= CURVE_WRITE_SECONDS:
            self._flush_curve(number)

    def _flush_curve(self, number: int) -> None:
        """Write configuration ``number``'s curve as it stands: per task, the mean over the seeds
        that reached each epoch; as the intermediate value of each epoch with new values, the sum
        of that epoch's task means."""
        epochs = self.pending.pop(number, None)
        if not epochs:
            return
        curves = self.curves[number]
        means = {epoch: {key: float(np.mean([seed[key] for seed in curves[epoch].values() if key in seed]))
                         for key in {k for seed in curves[epoch].values() for k in seed}}
                 for epoch in sorted(curves)}
        storage_id = self._storage_id(number)
        try:
            for key in sorted({k for m in means.values() for k in m}):
                self.storage.set_trial_user_attr(storage_id, key, [m[key] for m in means.values() if key in m])
            for epoch in sorted(epochs):
                self.storage.set_trial_intermediate_value(storage_id, epoch, float(sum(means[epoch].values())))
        except UpdateFinishedTrialError:  # a seed re-run after a resume reports to a told configuration
            pass
        self.written[number] = time.monotonic()
