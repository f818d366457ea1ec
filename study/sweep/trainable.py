"""What runs in a trial process: one Tune function per trial.

With one worker per trial it trains *inside* that function: a Ray Train run costs 15-30 s of
worker start-up on a 2-core machine (``python -m benchmarks.sweep``), more than a whole smoke
trial. With ``workers_per_trial > 1`` (or ``force_ray_train``) it launches a
``TensorflowTrainer`` whose workers run the same :func:`study.trial.runner.run_trial` under
``MultiWorkerMirroredStrategy``; Ray Train's reports reach Tune through ``TuneReportCallback``.

The dataset reaches trials as a *path* to the prepared dataset (memory-mapped features): on one
machine every trial shares the page cache, on a cluster the path lives on shared storage.
"""
from __future__ import annotations

import json
import logging
import socket
from dataclasses import asdict
from pathlib import Path

import ray
from ray import tune

from study.results.layout import RAY_STATE
from study.spec.request import StudyContext, TrialRequest

log = logging.getLogger(__name__)


def _configure_threads(n: float) -> None:
    """Keep TensorFlow inside the trial's CPU share (threads must be set before first TF use)."""
    import tensorflow as tf

    threads = max(1, int(n))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TF already initialised in this process (reused actor): keep its setting


def _configure_devices(cpus: float, gpu_share: float) -> dict:
    """Threads and GPU memory of this trial process, before TensorFlow initialises its devices;
    returns the memory setting for the trial's records (``model.device.configure_memory``)."""
    from model.device import configure_memory

    _configure_threads(cpus)
    return configure_memory(gpu_share)


def _record_devices(trial_dir: Path, rank: int, memory: dict) -> None:
    """Where this process ran and what it saw: Ray's GPU ids, TensorFlow's GPUs, the memory setting."""
    import tensorflow as tf

    placement = trial_dir / "workers"  # for users and tests
    placement.mkdir(parents=True, exist_ok=True)
    record = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "host": socket.gethostname(),
              "gpus": {"ray": [str(g) for g in ray.get_gpu_ids()],
                       "tensorflow": [d.name for d in tf.config.list_physical_devices("GPU")]},
              "gpu_memory": memory}
    (placement / f"rank-{rank}.json").write_text(json.dumps(record))
    if record["gpus"]["ray"] and not record["gpus"]["tensorflow"]:
        log.warning("Ray gave worker %d GPU %s, but TensorFlow sees no GPU: it trains on the CPU "
                    "(install tensorflow[and-cuda] on GPU nodes; docs: the cluster guide)", rank, ",".join(record["gpus"]["ray"]))


def train_worker(config: dict) -> None:
    """Ray Train worker loop: the same trial code under MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    from study.trial.runner import run_trial  # TensorFlow is imported by trial processes, never by the driver

    request = TrialRequest(**config["request"])
    memory = _configure_devices(config["cpus_per_worker"], config["gpus_per_worker"] or 1.0)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rank = ray.train.get_context().get_world_rank()
    _record_devices(Path(request.trial_dir), rank, memory)
    run_trial(request, strategy=strategy, is_chief=rank == 0, report=ray.train.report)


def trainable(config: dict, context: StudyContext) -> None:
    """One Tune trial (a function trainable)."""
    trial_id = tune.get_context().get_trial_id()
    request = context.request(trial_id, config)
    if not context.uses_ray_train:
        from study.trial.runner import run_trial  # TensorFlow is imported by trial processes, never by the driver

        memory = _configure_devices(context.cpus_per_worker, context.gpus_per_worker or 1.0)
        _record_devices(Path(request.trial_dir), 0, memory)
        run_trial(request, report=tune.report)
        return
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    gpus = context.gpus_per_worker
    trainer = TensorflowTrainer(
        train_worker,
        train_loop_config={"request": asdict(request), "cpus_per_worker": context.cpus_per_worker,
                           "gpus_per_worker": context.gpus_per_worker},
        scaling_config=ScalingConfig(num_workers=context.workers_per_trial, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": context.cpus_per_worker,
                                                           **({"GPU": gpus} if gpus else {})}),
        run_config=RunConfig(name=f"train-{trial_id}",  # deterministic: a restarted trial finds it
                             storage_path=str(Path(context.experiment_dir) / RAY_STATE / "train"),
                             failure_config=FailureConfig(max_failures=context.max_failures),
                             callbacks=[TuneReportCallback()]))
    trainer.fit()
