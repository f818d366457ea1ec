"""One trial, without Ray: settings -> model and training configs -> fit -> evaluate -> record.

The sweep layer (:mod:`study.sweep`) calls :func:`run_trial` inside a Tune function (one process) or
inside each Ray Train worker (several processes under ``MultiWorkerMirroredStrategy``), passing
a ``report`` callable. Everything a trial produces lands in its own directory
``<experiment>/trials/<trial_id>/``:

* ``checkpoint/``: the training checkpoint, written every epoch (a restarted trial resumes here),
  dropped when the trial finishes;
* ``weights.npz``, ``model.json``: a finished trial's evaluated weights and the configs that
  rebuild its model (:func:`keep_model`);
* ``epochs.parquet``, ``predictions.parquet``: per-epoch losses and per-sample test predictions;
* ``result.json``: written last and atomically; its presence means "finished". A restarted trial
  that finds it returns the recorded result without training, which makes trials exactly-once
  even when Tune's own experiment state lags behind;
* ``error.json``: the error of a failed attempt (a later successful attempt supersedes it);
* ``trial.log``: the trial's log.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from data.dataset import PreparedDataset
from model.train import Trainer
from study.results.files import write_json_atomic, write_parquet_atomic
from study.results.layout import (CHECKPOINT, EPOCHS, ERROR, MODEL_CONFIG, PREDICTIONS, RESULT, TRAIN_LOSSES,
                                  TRIAL_LOG, VAL_LOSSES, WEIGHTS)
from study.results.remote import local_dataset
from study.spec.request import TrialRequest
from study.spec.settings import build_configs

from .predict import score_split
from .sync import TrialSync

log = logging.getLogger(__name__)


def epoch_report(row: dict, objectives: list) -> dict:
    """What Tune sees after each epoch: losses (for schedulers) and not-yet-known objectives."""
    return {"epoch": row["epoch"], **{k: row.get(k, math.nan) for k in (*TRAIN_LOSSES, *VAL_LOSSES)},
            **{m: math.nan for m in objectives}, "evaluated": False}


def run_trial(request: TrialRequest, *, strategy=None, is_chief: bool = True,
              report: Callable[[dict], None] | None = None) -> dict:
    """Train, evaluate and record one trial; return the final result (also reported)."""
    report = report or (lambda metrics: None)
    trial_dir = Path(request.trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    sync = TrialSync(request, trial_dir) if request.remote_uri else None
    if sync:
        sync.pull()  # a trial restarted on another node continues from the pushed checkpoint
    result_path = trial_dir / RESULT
    if result_path.exists():  # finished before a restart: exactly once
        result = json.loads(result_path.read_text())
        log.info("trial %s already finished; returning its recorded result", request.trial_id)
        report(_final_report(result, request.objectives))
        return result
    handler = logging.FileHandler(trial_dir / TRIAL_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # the project's own loggers at INFO (epochs, resumes), whatever the host process's root level
    ours = {name: logging.getLogger(name) for name in ("data", "model", "study")}
    levels = {name: lg.level for name, lg in ours.items()}
    for lg in ours.values():
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    try:
        return _train_and_record(request, trial_dir, strategy, is_chief, report, sync)
    except Exception as exc:
        if is_chief:
            write_json_atomic(trial_dir / ERROR, {
                "trial_id": request.trial_id, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "params": request.params, "settings": request.settings,
                "config_id": request.config_id, "repeat": request.repeat, "seed": request.seed,
                "time": time.time()})
            if sync:
                sync.push(ERROR, TRIAL_LOG)
        raise
    finally:
        for name, lg in ours.items():
            lg.removeHandler(handler)
            lg.setLevel(levels[name])
        handler.close()


def _train_and_record(request, trial_dir, strategy, is_chief, report, sync) -> dict:
    started, clock = time.time(), time.perf_counter()
    dataset = PreparedDataset.load(local_dataset(request.dataset_dir))
    model_cfg, train_cfg, eval_opts = build_configs(request.settings, dataset, request.seed)
    trainer = Trainer(model_cfg, train_cfg, dataset, strategy=strategy,
                      checkpoint_dir=trial_dir / CHECKPOINT, save_checkpoints=is_chief)
    setup_seconds = time.perf_counter() - clock  # dataset fetch/open and model build

    def on_epoch_end(row, _):
        if sync and is_chief:
            sync.push_checkpoint()
        report(epoch_report(row, request.objectives))

    fit = trainer.fit(on_epoch_end)
    result = {"trial_id": request.trial_id, "status": "TERMINATED", "error": None,
              "params": request.params, "settings": request.settings,
              "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
              "stopped_early": fit.stopped_early, "seed": request.seed, "config_id": request.config_id,
              "device_policy": trainer.policy.to_dict(),
              "repeat": request.repeat, "started": started,
              "setup_seconds": setup_seconds, "train_seconds": fit.train_seconds}
    if not is_chief:
        report(_final_report(result, request.objectives))
        return result
    start = time.perf_counter()
    metrics, test_rows = {}, None
    for split in ("validate", "test"):  # test is never used for selection: only recorded
        split_metrics, per = score_split(trainer.model, dataset, split, eval_opts)
        metrics.update(split_metrics)
        if split == "test":
            test_rows = per
    result.update(metrics=metrics, eval_seconds=time.perf_counter() - start, finished=time.time())
    epochs = pd.DataFrame(fit.history).assign(trial_id=request.trial_id)
    write_parquet_atomic(trial_dir / EPOCHS, epochs)
    write_parquet_atomic(trial_dir / PREDICTIONS, test_rows.assign(trial_id=request.trial_id))
    keep_model(trainer, trial_dir)
    write_json_atomic(trial_dir / RESULT, result)  # last: marks the trial finished
    (trial_dir / ERROR).unlink(missing_ok=True)
    shutil.rmtree(trial_dir / CHECKPOINT, ignore_errors=True)  # finished: nothing to resume
    if sync:
        sync.push(EPOCHS, PREDICTIONS, WEIGHTS, MODEL_CONFIG, TRIAL_LOG, RESULT)
        sync.remove(ERROR)  # an earlier failed attempt is superseded
        sync.remove_checkpoint()
    report(_final_report(result, request.objectives))
    return result


def keep_model(trainer: Trainer, trial_dir: Path) -> None:
    """What a finished trial keeps of its model: the weights it was evaluated with (its best
    epoch's, ``weights.npz`` in ``get_weights()`` order) and the configs that rebuild it
    (``model.json``), about a quarter of the resume checkpoint, which also holds the last epoch's
    weights and the optimizer's state."""
    tmp = trial_dir / f".tmp-{WEIGHTS}"
    with open(tmp, "wb") as f:
        np.savez(f, *trainer.model.get_weights())
    tmp.replace(trial_dir / WEIGHTS)
    write_json_atomic(trial_dir / MODEL_CONFIG, {"model_config": trainer.model_cfg.to_dict(),
                                                 "train_config": asdict(trainer.cfg)})


def _final_report(result: dict, objectives: list) -> dict:
    # The flag is "evaluated", not Tune's reserved "done": done=True makes Tune kill the trial
    # actor at once, before a Ray Train run inside it has shut down, which leaks the run's
    # placement group and starves every later trial (ray-project/ray#54305).
    metrics = result.get("metrics", {})
    return {"epoch": result["epochs_run"], **metrics,
            **{m: metrics.get(m, math.nan) for m in objectives},  # switched-off task: NaN
            "best_epoch": result["best_epoch"], "train_seconds": result["train_seconds"],
            "evaluated": True}
