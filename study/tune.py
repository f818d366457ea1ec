"""The Ray layer, kept thin: resources -> Tuner (Optuna multi-objective search) -> trials -> store.

Each Tune trial is a function. With one worker per trial it trains *inside* that function: a Ray
Train run costs 20-30 s of start-up on a 2-core machine (measured for DESIGN.md), more than a whole
smoke trial. With ``workers_per_trial > 1`` (or ``force_ray_train``) it launches a
``TensorflowTrainer`` whose workers run the same :func:`study.trial.run_trial` under
``MultiWorkerMirroredStrategy``; Ray Train's reports reach Tune through ``TuneReportCallback``.

The dataset reaches trials as a *path* to the prepared dataset (memory-mapped features): on one
machine every trial shares the page cache, on a cluster the path lives on shared storage. Nothing
is copied through the driver per trial.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pickle
import socket
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import ray
from ray import tune
from ray.tune.search import Repeater
from ray.tune.search.repeater import TRIAL_INDEX

from .cluster import ClusterShape
from .progress import ProgressLines
from .space import SearchSpace
from .storage import RECORD_TABLES, Remote, pull_records, push_files
from .store import OPTUNA_DB, consolidate, optuna_storage, write_json_atomic
from .request import TrialRequest, config_id_of, trial_seed

log = logging.getLogger(__name__)
DRIVER_CPU_SHARE = 0.01  # a Tune function that only launches Train workers holds almost nothing


@dataclass
class StudyContext:
    """What every trial needs besides its sampled parameters (shipped once via the object store)."""

    space: SearchSpace
    dataset_dir: str
    experiment_dir: str
    seed: int
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 1
    force_ray_train: bool = False
    remote_uri: str | None = None   # experiment URI when storage is remote (study.storage)

    @property
    def uses_ray_train(self) -> bool:
        return self.workers_per_trial > 1 or self.force_ray_train

    def request(self, trial_id: str, config: dict) -> TrialRequest:
        """What trial ``trial_id`` trains: Tune's ``config`` is the sampler's values plus the
        repeat index that :class:`RepeatedSearch` adds."""
        sampled = {k: v for k, v in config.items() if k != TRIAL_INDEX}
        repeat = int(config.get(TRIAL_INDEX, 0))
        settings, params = self.space.materialize(sampled)
        return TrialRequest(trial_id, settings, params, self.dataset_dir,
                            str(Path(self.experiment_dir) / "trials" / trial_id),
                            self.space.metrics, trial_seed(self.seed, sampled, repeat), self.remote_uri,
                            config_id_of(sampled), repeat)


@dataclass
class ResourcePlan:
    trial_resources: dict     # what the Tune function itself reserves
    worker_resources: dict    # per Ray Train worker (empty when training in the function)
    max_concurrent: int
    sized_by: str = ""        # what the concurrency was sized by, in words


def plan_resources(ctx: StudyContext, available: dict, requested_concurrency: int | None,
                   shape: ClusterShape | None = None) -> ResourcePlan:
    """Size each trial and the concurrency so every admitted trial can place all its workers.

    With an autoscaler (``shape``: its node types), the concurrency is what the cluster can hold
    once fully grown: trials beyond what is up now pend, and their resource requests are what make
    the autoscaler add nodes. Without one, it is what ``available`` (the nodes up now) holds.
    (Two 1-worker Train trials on 2 CPUs, each trial holding a whole CPU while its worker waits
    for one, hang for good: the Tune function of a Train trial therefore reserves only 0.01 CPU.)
    """
    worker = {"CPU": ctx.cpus_per_worker, **({"GPU": ctx.gpus_per_worker} if ctx.gpus_per_worker else {})}
    workers = ctx.workers_per_trial if ctx.uses_ray_train else 1
    trial = {"cpu": DRIVER_CPU_SHARE} if ctx.uses_ray_train else {k.lower(): v for k, v in worker.items()}
    asked = f"{workers} worker(s) x {_describe(worker)}"
    if shape is not None:
        if not any(t.holds(worker) for t in shape.types):
            raise ValueError(f"no node type can hold one worker ({_describe(worker)}); node types in "
                             f"{shape.source}: {shape.describe()}. Lower --cpus-per-worker or "
                             f"--gpus-per-worker, or add a node type that offers them")
        fit = shape.slots(worker) // workers
        where = f"the cluster fully grown ({shape.describe()})"
    else:
        per_trial = {k: v * workers for k, v in worker.items()}
        if ctx.uses_ray_train:
            per_trial["CPU"] += DRIVER_CPU_SHARE
        fit = min(int(available.get(k, 0.0) // v) for k, v in per_trial.items())
        where = f"the cluster ({_describe({k: available.get(k, 0.0) for k in ('CPU', 'GPU')})})"
    if fit < 1:
        raise ValueError(f"one trial needs {asked}, more than {where} holds: lower --workers-per-trial, "
                         f"--cpus-per-worker or --gpus-per-worker, or add nodes")
    if requested_concurrency and requested_concurrency > fit:
        log.warning("--max-concurrent %d lowered to %d: more trials could not place their workers "
                    "on %s", requested_concurrency, fit, where)
    concurrency = min(requested_concurrency or fit, fit)
    return ResourcePlan(trial, worker if ctx.uses_ray_train else {}, concurrency, where)


def _describe(resources: dict) -> str:
    return ", ".join(f"{v:g} {k}" for k, v in resources.items())


def _configure_threads(n: float) -> None:
    """Keep TensorFlow inside the trial's CPU share (threads must be set before first TF use)."""
    import tensorflow as tf

    threads = max(1, int(n))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TF already initialised in this process (reused actor): keep its setting


def train_worker(config: dict) -> None:
    """Ray Train worker loop: the same trial code under MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    from .trial import run_trial  # TensorFlow is imported by trial processes, never by the driver

    request = TrialRequest(**config["request"])
    _configure_threads(config["cpus_per_worker"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rank = ray.train.get_context().get_world_rank()
    placement = Path(request.trial_dir) / "workers"  # where each worker ran (for users and tests)
    placement.mkdir(parents=True, exist_ok=True)
    gpus = {"ray": [str(g) for g in ray.get_gpu_ids()],
            "tensorflow": [d.name for d in tf.config.list_physical_devices("GPU")]}
    (placement / f"rank-{rank}.json").write_text(json.dumps(
        {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
         "gpus": gpus}))
    if gpus["ray"] and not gpus["tensorflow"]:
        log.warning("Ray gave worker %d GPU %s, but TensorFlow sees no GPU: it trains on the CPU "
                    "(install tensorflow[and-cuda] on GPU nodes; README, Cluster)", rank, ",".join(gpus["ray"]))
    run_trial(request, strategy=strategy, is_chief=rank == 0, report=ray.train.report)


def trainable(config: dict, context: StudyContext) -> None:
    """One Tune trial (a function trainable)."""
    trial_id = tune.get_context().get_trial_id()
    request = context.request(trial_id, config)
    if not context.uses_ray_train:
        from .trial import run_trial  # TensorFlow is imported by trial processes, never by the driver

        _configure_threads(context.cpus_per_worker)
        run_trial(request, report=tune.report)
        return
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    gpus = context.gpus_per_worker
    trainer = TensorflowTrainer(
        train_worker,
        train_loop_config={"request": asdict(request), "cpus_per_worker": context.cpus_per_worker},
        scaling_config=ScalingConfig(num_workers=context.workers_per_trial, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": context.cpus_per_worker,
                                                           **({"GPU": gpus} if gpus else {})}),
        run_config=RunConfig(name=f"train-{trial_id}",  # deterministic: a restarted trial finds it
                             storage_path=str(Path(context.experiment_dir) / "ray_train"),
                             failure_config=FailureConfig(max_failures=context.max_failures),
                             callbacks=[TuneReportCallback()]))
    trainer.fit()


class ResultsCallback(tune.Callback):
    """Driver side: record how each trial ended and rewrite the Parquet files as trials finish."""

    def __init__(self, context: StudyContext):
        self.context = context

    def _trial_dir(self, trial) -> Path:
        return Path(self.context.experiment_dir) / "trials" / trial.trial_id

    def _refresh(self):
        local = Path(self.context.experiment_dir)
        remote = Remote(self.context.remote_uri) if self.context.remote_uri else None
        if remote:  # trials pushed their records from wherever they ran
            pull_records(remote, local)
        consolidate(local)
        if remote:
            push_files(remote, local, *RECORD_TABLES, OPTUNA_DB)

    def _record(self, trial, name: str, payload: dict) -> None:
        d = self._trial_dir(trial)
        d.mkdir(parents=True, exist_ok=True)
        write_json_atomic(d / name, payload)
        if self.context.remote_uri:
            Remote(self.context.remote_uri).upload(d / name, f"trials/{trial.trial_id}/{name}")

    def _finished_somewhere(self, trial, name: str) -> bool:
        if (self._trial_dir(trial) / name).exists():
            return True
        return bool(self.context.remote_uri) and Remote(self.context.remote_uri).exists(
            f"trials/{trial.trial_id}/{name}")

    def _identity(self, trial) -> dict:
        request = self.context.request(trial.trial_id, trial.config)
        return {"trial_id": trial.trial_id, "params": request.params, "config_id": request.config_id,
                "repeat": request.repeat, "seed": request.seed}

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self._finished_somewhere(trial, "result.json"):  # stopped by a scheduler
            last = {k: v for k, v in (trial.last_result or {}).items()
                    if k == "epoch" or k.startswith("val_loss_")}  # what the scheduler judged
            self._record(trial, "stopped.json", {**self._identity(trial), "last": last, "time": time.time(),
                                                 "error": f"stopped by the scheduler after epoch {last.get('epoch')}"})
        self._refresh()

    def on_trial_error(self, iteration, trials, trial, **info):
        if not self._finished_somewhere(trial, "error.json"):  # the process died before writing it
            message = str(trial.get_error() or "trial failed").strip().splitlines()
            self._record(trial, "error.json", {**self._identity(trial), "time": time.time(),
                                               "error": message[-1] if message else "trial failed"})
        self._refresh()


class RepeatedSearch(Repeater):
    """Ray's ``Repeater`` for several objectives: each configuration the wrapped searcher proposes
    runs ``repeat`` times (Tune's config carries the repeat index), and the searcher is told each
    objective's mean over the repeats that reported it. Ray's own class averages one metric only
    and does not save its groups with the experiment, so a resumed sweep would lose track of
    half-finished configurations; this one saves them with the searcher's state.

    The Optuna study (one Optuna trial per configuration) lives in :func:`optuna_storage`: each
    epoch, the configuration's trial gets the mean validation loss per task over the seeds that
    reached that epoch (user attributes ``val_loss_<task>``, one value per epoch) and their sum as
    its intermediate value; at the end, the objectives' means over seeds. A configuration whose
    every seed the scheduler stopped is ``PRUNED``; one whose every seed failed, ``FAIL``."""

    def __init__(self, searcher, repeat: int = 1):
        super().__init__(searcher, repeat=repeat)
        self._curves = {}  # primary trial id -> epoch -> trial id -> {val_loss_<task>: value}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._record_curve(trial_id, result)

    def _record_curve(self, trial_id: str, result: dict) -> None:
        group = self._trial_id_to_group.get(trial_id)
        ot_trial = getattr(self.searcher, "_ot_trials", {}).get(group.primary_trial_id) if group else None
        if ot_trial is None or result.get("evaluated") or "epoch" not in result:
            return
        curves = self._curves.setdefault(group.primary_trial_id, {})
        losses = {k: float(v) for k, v in result.items() if k.startswith("val_loss_") and np.isfinite(v)}
        curves.setdefault(int(result["epoch"]), {})[trial_id] = losses
        by_task: dict[str, list] = {}
        for epoch in sorted(curves):
            seeds = curves[epoch].values()
            for key in {k for seed in seeds for k in seed}:
                by_task.setdefault(key, []).append(float(np.mean([seed[key] for seed in seeds if key in seed])))
        from optuna.exceptions import UpdateFinishedTrialError

        storage, tid = ot_trial.storage, ot_trial._trial_id
        try:
            for key, values in by_task.items():
                storage.set_trial_user_attr(tid, key, values)
            storage.set_trial_intermediate_value(tid, int(result["epoch"]), float(sum(v[-1] for v in by_task.values())))
        except UpdateFinishedTrialError:  # a seed re-run after a resume reports to a told configuration
            pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False, **kw):
        if result and not error:  # a scheduler's stop arrives here with the epoch it judged
            self._record_curve(trial_id, result)
        group = self._trial_id_to_group.get(trial_id)
        if group is None:
            log.warning("trial %s is not in any configuration group; its result is not told to "
                        "the searcher", trial_id)
            return
        metrics = self.searcher.metric
        ok = bool(result) and not error
        group.report(trial_id, [float(result.get(m, math.nan)) if ok else math.nan for m in metrics])
        if not group.finished_reporting():
            return
        scores = np.array(group.scores(), dtype=float)                     # (repeats, objectives)
        if np.isnan(scores).all():  # stopped by the scheduler (PRUNED) or failed (FAIL)
            self.searcher.on_trial_complete(group.primary_trial_id, result=None, error=bool(error or not result))
            return
        with warnings.catch_warnings():  # a single-task configuration has all-NaN objectives
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(scores, axis=0)
        self.searcher.on_trial_complete(group.primary_trial_id, result=dict(zip(metrics, means.tolist())))

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"searcher": self.searcher.__dict__.copy(), "groups": self.get_state()}, f)

    def restore(self, checkpoint_path: str) -> None:
        """Back to the last checkpoint. A configuration the searcher drew after it (the sweep was
        killed before Ray saved its state) is in the Optuna storage as RUNNING, unknown to Ray:
        it goes back to WAITING, so the next draw takes it, with its parameters, instead of
        leaving it behind and drawing another (nothing lost, nothing twice)."""
        from optuna.trial import TrialState

        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.searcher.__dict__.update(state["searcher"])
        self.set_state(state["groups"])
        study = getattr(self.searcher, "_ot_study", None)  # None: a searcher without Optuna (tests)
        if study is None:
            return
        known = {t._trial_id for t in self.searcher._ot_trials.values()}
        for orphan in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if orphan._trial_id not in known:
                study._storage.set_trial_state_values(orphan._trial_id, TrialState.WAITING)


def build_tuner(context: StudyContext, plan: ResourcePlan, *, num_configs: int, repeats: int,
                name: str, storage: str, asha: bool = False, verbose: bool = False):
    """A new Tuner for the study: ``num_configs`` configurations, each trained ``repeats`` times.
    The console shows one line per trial event (:mod:`study.progress`); ``verbose`` adds Ray's table."""
    from ray.tune.search.optuna import OptunaSearch

    space = context.space
    searcher = OptunaSearch(space.suggest, metric=space.metrics, mode=space.modes, sampler=space.sampler(context.seed),
                            study_name=name, storage=optuna_storage(context.experiment_dir),
                            points_to_evaluate=space.enqueued() or None)
    with warnings.catch_warnings():  # experimental in Optuna; names the objectives in optuna-dashboard
        warnings.simplefilter("ignore")
        searcher._ot_study.set_metric_names(list(space.metrics))
    search = RepeatedSearch(searcher, repeat=repeats)
    num_samples = num_configs * repeats
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
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=2 if verbose else 0,
                                  progress_reporter=progress_reporter(space, num_samples) if verbose else None,
                                  failure_config=tune.FailureConfig(max_failures=context.max_failures),
                                  # in this order: the progress line reads the records just written
                                  callbacks=[ResultsCallback(context), ProgressLines(context, num_samples)]))


def progress_reporter(space: SearchSpace, num_samples: int):
    """Ray's live table (``--verbose``): epoch, losses while training, the objectives once evaluated."""
    params = {**{n: n.replace("loss_weights_", "w_") for n in space.distributions()}, TRIAL_INDEX: "repeat"}
    metrics = {"epoch": "epoch", "val_loss_text": "val text loss",
               **{m: m.replace("val_", "") for m in space.metrics}}
    return tune.CLIReporter(metric_columns=metrics, parameter_columns=params,
                            total_samples=num_samples, max_report_frequency=30,
                            print_intermediate_tables=True)


def restore_tuner(context: StudyContext, plan: ResourcePlan, experiment_dir: str):
    """Continue an interrupted sweep: finished trials stay, unfinished ones resume, errored ones
    stay failed (their error is recorded). Only experiment directories owned by the current user
    are restored, since restoring unpickles them."""
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

