"""One trial, without Ray: settings -> model and training configs -> fit -> evaluate -> record.

The Ray layer (:mod:`study.tune`) calls :func:`run_trial` inside a Tune function (one process) or
inside each Ray Train worker (several processes under ``MultiWorkerMirroredStrategy``), passing
a ``report`` callable. Everything a trial produces lands in its own directory
``<experiment>/trials/<trial_id>/``:

* ``checkpoint/``: the training checkpoint, written every epoch (a restarted trial resumes here);
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
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow.fs as pafs

from data.dataset import PreparedDataset
from data.preprocess import decode_ordinal
from data.text import join_words
from model.decoding import beam_search, greedy_decode
from model.train import TrainConfig, Trainer

from .metrics import BertScoreConfig, evaluate
from .request import TrialRequest
from .settings import build_configs
from .storage import Remote, local_dataset
from .store import EPOCHS, PREDICTIONS, write_json_atomic, write_parquet_atomic

log = logging.getLogger(__name__)
INPUT_KEYS = ("image_features", "vitals", "categoricals", "chief_complaint", "icd_title", "report_ids")
LOSS_KEYS = ("train_loss_text", "train_loss_oc", "train_loss_ml",
             "val_loss_text", "val_loss_oc", "val_loss_ml")


def predict_split(model, dataset: PreparedDataset, split: str, beam_width: int = 1,
                  batch_size: int = 64) -> dict:
    """Decoded reports and head outputs for one split (active tasks only)."""
    arrays = dataset.split(split)
    tasks = model.cfg.tasks
    tok = dataset.preprocessor.tokenizers["report"]
    out = {"generated": [], "oc": [], "ml": []}
    for start in range(0, len(arrays["sample_id"]), batch_size):
        inputs = {k: arrays[k][start:start + batch_size] for k in INPUT_KEYS}
        encoded = model.encode(inputs)
        if "oc" in tasks:
            out["oc"].append(model.oc_head(encoded).numpy())
        if "ml" in tasks:
            out["ml"].append(model.ml_head(encoded).numpy())
        if "text" in tasks:
            ids = (greedy_decode(model, inputs) if beam_width == 1
                   else beam_search(model, inputs, beam_width=beam_width))
            out["generated"].extend(join_words(tok.decode(row)) for row in ids)
    out = {k: (np.concatenate(v) if k != "generated" and v else v) for k, v in out.items()}
    return {**out, "findings": arrays["findings"]}


SPLIT_PREFIX = {"validate": "val", "test": "test"}  # metric names of the Parquet contract


def evaluate_split(model, dataset: PreparedDataset, split: str, eval_opts: dict):
    """``(metrics prefixed val_/test_, per-sample table)`` for one split."""
    pred = predict_split(model, dataset, split, eval_opts["beam_width"])
    cohort = dataset.cohort.iloc[dataset.indices(split)]
    tasks = model.cfg.tasks
    metrics, per = evaluate(
        sample_ids=cohort["sample_id"].tolist(),
        references=cohort["report"].tolist() if "text" in tasks else None,
        generated=pred["generated"] if "text" in tasks else None,
        oc_true=cohort["acuity"].to_numpy() if "oc" in tasks else None,
        oc_pred=decode_ordinal(pred["oc"]) if "oc" in tasks else None,
        ml_true=pred["findings"] if "ml" in tasks else None,
        ml_prob=pred["ml"] if "ml" in tasks else None,
        bertscore=BertScoreConfig(eval_opts["bertscore_model"], eval_opts["bertscore_layers"],
                                  eval_opts["bertscore_rescale"]) if eval_opts["bertscore"] else None,
        learned=tuple(eval_opts["learned_scorers"]))
    return {f"{SPLIT_PREFIX[split]}_{k}": v for k, v in metrics.items()}, per


def epoch_report(row: dict, objectives: list) -> dict:
    """What Tune sees after each epoch: losses (for schedulers) and not-yet-known objectives."""
    return {"epoch": row["epoch"], **{k: row.get(k, math.nan) for k in LOSS_KEYS},
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
    result_path = trial_dir / "result.json"
    if result_path.exists():  # finished before a restart: exactly once
        result = json.loads(result_path.read_text())
        log.info("trial %s already finished; returning its recorded result", request.trial_id)
        report(_final_report(result, request.objectives))
        return result
    handler = logging.FileHandler(trial_dir / "trial.log")
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
            write_json_atomic(trial_dir / "error.json", {
                "trial_id": request.trial_id, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "params": request.params,
                "config_id": request.config_id, "repeat": request.repeat, "seed": request.seed,
                "time": time.time()})
            if sync:
                sync.push("error.json", "trial.log")
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
                      checkpoint_dir=trial_dir / "checkpoint", save_checkpoints=is_chief)
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
              "repeat": request.repeat, "started": started,
              "setup_seconds": setup_seconds, "train_seconds": fit.train_seconds}
    if not is_chief:
        report(_final_report(result, request.objectives))
        return result
    start = time.perf_counter()
    metrics, test_rows = {}, None
    for split in ("validate", "test"):  # test is never used for selection: only recorded
        split_metrics, per = evaluate_split(trainer.model, dataset, split, eval_opts)
        metrics.update(split_metrics)
        if split == "test":
            test_rows = per
    result.update(metrics=metrics, eval_seconds=time.perf_counter() - start, finished=time.time())
    epochs = pd.DataFrame(fit.history).assign(trial_id=request.trial_id)
    write_parquet_atomic(trial_dir / EPOCHS, epochs)
    write_parquet_atomic(trial_dir / PREDICTIONS, test_rows.assign(trial_id=request.trial_id))
    write_json_atomic(trial_dir / "result.json", result)  # last: marks the trial finished
    (trial_dir / "error.json").unlink(missing_ok=True)
    if sync:
        sync.push(EPOCHS, PREDICTIONS, "trial.log", "result.json")
        sync.remove("error.json")  # an earlier failed attempt is superseded
    report(_final_report(result, request.objectives))
    return result


class TrialSync:
    """Mirror of a trial directory on remote storage (see :mod:`study.storage`)."""

    def __init__(self, request: TrialRequest, trial_dir: Path):
        self.remote = Remote(request.remote_uri)
        self.rel = f"trials/{request.trial_id}"
        self.trial_dir = trial_dir

    def pull(self) -> None:
        self.remote.download(self.rel, self.trial_dir)

    def push(self, *names: str) -> None:
        """Upload files in order (so ``result.json`` given last becomes visible last)."""
        for name in names:
            if (self.trial_dir / name).exists():
                self.remote.upload(self.trial_dir / name, f"{self.rel}/{name}")

    def remove(self, name: str) -> None:
        if self.remote.exists(f"{self.rel}/{name}"):
            self.remote.fs.delete_file(self.remote.path(f"{self.rel}/{name}"))

    def push_checkpoint(self) -> None:
        """Upload the newest checkpoint, then its pointer, then drop older remote checkpoints."""
        local = self.trial_dir / "checkpoint"
        latest = json.loads((local / "checkpoint.json").read_text())["latest"]
        self.remote.upload(local / latest, f"{self.rel}/checkpoint/{latest}")
        self.remote.upload(local / "checkpoint.json", f"{self.rel}/checkpoint/checkpoint.json")
        listing = self.remote.fs.get_file_info(pafs.FileSelector(self.remote.path(f"{self.rel}/checkpoint")))
        for info in listing:
            name = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.Directory and name.startswith("epoch-") and name != latest:
                self.remote.fs.delete_dir(info.path)


def _final_report(result: dict, objectives: list) -> dict:
    # The flag is "evaluated", not Tune's reserved "done": done=True makes Tune kill the trial
    # actor at once, before a Ray Train run inside it has shut down, which leaks the run's
    # placement group and starves every later trial (ray-project/ray#54305).
    metrics = result.get("metrics", {})
    return {"epoch": result["epochs_run"], **metrics,
            **{m: metrics.get(m, math.nan) for m in objectives},  # switched-off task: NaN
            "best_epoch": result["best_epoch"], "train_seconds": result["train_seconds"],
            "evaluated": True}
