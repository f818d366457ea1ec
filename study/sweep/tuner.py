"""The Tune side of a sweep: the Tuner (new or restored) and the callback that records how trials end."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import ray
from ray import tune

from study.results.files import write_json_atomic
from study.results.layout import ERROR, OPTUNA_DB, RAY_STATE, RESULT, STOPPED, TRIALS, TRIALS_DIR
from study.results.optuna_db import optuna_storage
from study.results.remote import Remote, pull_records, push_files
from study.results.tables import Records
from study.spec.request import REPEAT_KEY, StudyContext
from study.spec.resources import ResourcePlan
from study.spec.space import SearchSpace

from .progress import ProgressLines
from .search import StudySearch
from .trainable import trainable

log = logging.getLogger(__name__)

# Tune adds CSV, JSON and TensorBoard loggers of its own unless told not to (Ray's documented
# switch). They write every epoch's result again into ray/tune_*/, which nothing reads (the study
# keeps its own records), and the TensorBoard one imports torch in the driver: about 3 s of every
# study's start. Set to 0 to have them back.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


class ResultsCallback(tune.Callback):
    """Driver side: record how each trial ended and add it to ``trials.parquet`` as trials finish
    (:class:`study.results.tables.Records`: one trial read and one small table written per
    finished trial, whatever the number before it)."""

    def __init__(self, context: StudyContext, records: Records):
        self.context, self.records = context, records

    def _trial_dir(self, trial) -> Path:
        return Path(self.context.experiment_dir) / TRIALS_DIR / trial.trial_id

    def setup(self, **info):
        local = Path(self.context.experiment_dir)
        if self.context.remote_uri:  # a resumed sweep: what trials pushed from wherever they ran
            pull_records(Remote(self.context.remote_uri), local)
        self.records.open()

    def _refresh(self, trial):
        local = Path(self.context.experiment_dir)
        remote = Remote(self.context.remote_uri) if self.context.remote_uri else None
        if remote:  # the trial pushed its records from wherever it ran (not its weights)
            remote.download(f"{TRIALS_DIR}/{trial.trial_id}", self._trial_dir(trial), skip_suffixes=(".npz",))
        self.records.add(trial.trial_id)
        if remote:
            push_files(remote, local, TRIALS, OPTUNA_DB)

    def _record(self, trial, name: str, payload: dict) -> None:
        d = self._trial_dir(trial)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(d / name, payload)
        if self.context.remote_uri:
            Remote(self.context.remote_uri).upload(d / name, f"{TRIALS_DIR}/{trial.trial_id}/{name}")

    def _finished_somewhere(self, trial, name: str) -> bool:
        if (self._trial_dir(trial) / name).exists():
            return True
        return bool(self.context.remote_uri) and Remote(self.context.remote_uri).exists(
            f"{TRIALS_DIR}/{trial.trial_id}/{name}")

    def _identity(self, trial) -> dict:
        request = self.context.request(trial.trial_id, trial.config)
        return {"trial_id": trial.trial_id, "params": request.params, "settings": request.settings,
                "config_id": request.config_id,
                "repeat": request.repeat, "seed": request.seed}

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self._finished_somewhere(trial, RESULT):  # stopped by a scheduler
            last = {k: v for k, v in (trial.last_result or {}).items()
                    if k == "epoch" or k.startswith("val_loss_")}  # what the scheduler judged
            self._record(trial, STOPPED, {**self._identity(trial), "last": last, "time": time.time(),
                                                 "error": f"stopped by the scheduler after epoch {last.get('epoch')}"})
        self._refresh(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        if not self._finished_somewhere(trial, ERROR):  # the process died before writing it
            message = str(trial.get_error() or "trial failed").strip().splitlines()
            self._record(trial, ERROR, {**self._identity(trial), "time": time.time(),
                                               "error": message[-1] if message else "trial failed"})
        self._refresh(trial)


def build_tuner(context: StudyContext, plan: ResourcePlan, *, num_configs: int, repeats: int,
                name: str, storage: str, asha: bool = False, verbose: bool = False):
    """A new Tuner for the study: ``num_configs`` configurations, each trained ``repeats`` times,
    Tune's own state in ``<storage>/ray/`` (``storage``: the experiment's directory or URI).
    The console shows one line per trial event (:mod:`study.progress`); ``verbose`` adds Ray's table."""
    space = context.space
    search = StudySearch(space, repeats=repeats, seed=context.seed, study_name=name,
                         storage=optuna_storage(context.experiment_dir))
    num_samples = num_configs * repeats
    records = Records(context.experiment_dir)  # shared: the progress lines read what it recorded
    scheduler = None
    if asha:
        from .moasha import MultiObjectiveASHA

        epochs = int(space.fixed.get("epochs", 10))
        scheduler = MultiObjectiveASHA(max_t=epochs, grace_period=max(1, epochs // 4))
    return tune.Tuner(
        _wrapped(context, plan),
        tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=num_samples,
                                    max_concurrent_trials=plan.max_concurrent,
                                    # a finished trial's process (TensorFlow already imported)
                                    # takes the next trial: saves ~5 s of start-up per trial
                                    reuse_actors=True,
                                    trial_name_creator=lambda t: f"trial_{t.trial_id}",
                                    trial_dirname_creator=lambda t: f"tune_{t.trial_id}"),
        run_config=tune.RunConfig(name=RAY_STATE, storage_path=storage, verbose=2 if verbose else 0,
                                  progress_reporter=progress_reporter(space, num_samples) if verbose else None,
                                  failure_config=tune.FailureConfig(max_failures=context.max_failures),
                                  # in this order: the progress line reads the records just written
                                  callbacks=[ResultsCallback(context, records),
                                             ProgressLines(context, num_samples, records)]))


def progress_reporter(space: SearchSpace, num_samples: int):
    """Ray's live table (``--verbose``): epoch, losses while training, the objectives once evaluated."""
    params = {**{n: n.replace("loss_weights_", "w_") for n in space.distributions()}, REPEAT_KEY: "repeat"}
    metrics = {"epoch": "epoch", "val_loss_text": "val text loss",
               **{m: m.replace("val_", "") for m in space.metrics}}
    return tune.CLIReporter(metric_columns=metrics, parameter_columns=params,
                            total_samples=num_samples, max_report_frequency=30,
                            print_intermediate_tables=True)


def restore_tuner(context: StudyContext, plan: ResourcePlan, experiment_dir: str):
    """Continue an interrupted sweep from Tune's state in ``experiment_dir`` (the experiment's
    ``ray/`` folder): finished trials stay, unfinished ones resume, errored ones stay failed
    (their error is recorded). Only directories owned by the current user are restored, since
    restoring unpickles them."""
    path = Path(experiment_dir)
    if "://" not in experiment_dir and path.exists() and path.stat().st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user; restoring it would unpickle code "
                              f"written by them. Copy the results you trust instead.")
    return tune.Tuner.restore(experiment_dir, _wrapped(context, plan), resume_unfinished=True,
                              resume_errored=False, restart_errored=False)


def _wrapped(context: StudyContext, plan: ResourcePlan):
    return tune.with_resources(tune.with_parameters(trainable, context=context), plan.trial_resources)


def cluster_resources() -> dict:
    return {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
