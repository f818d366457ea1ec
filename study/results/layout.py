"""The results contract in one place: file names of an experiment directory and the columns of
its tables. Everything that reads or writes them names them from here.

    <storage>/<name>/
        study.json, optuna.db, trials.parquet, configs.parquet, epochs.parquet, predictions.parquet,
        summary.md, comparison.csv, methods.csv, plots/, study.log, driver.lock (while it runs)
        trials/<trial_id>/   result.json | error.json | stopped.json, epochs.parquet,
                             predictions.parquet, trial.log, and either checkpoint/ (while it
                             trains, or stopped or failed) or weights.npz + model.json (finished)
"""
from __future__ import annotations

from model.config import TASKS
from study.evaluation.names import REPORTED

# ---- experiment directory ----
STUDY = "study.json"
TRIALS, CONFIGS, EPOCHS, PREDICTIONS = ("trials.parquet", "configs.parquet", "epochs.parquet",
                                        "predictions.parquet")
RECORD_TABLES = (TRIALS, CONFIGS, EPOCHS, PREDICTIONS)
OPTUNA_DB = "optuna.db"  # the searcher's Optuna study, beside the tables
REPORT_FILES = ("summary.md", "comparison.csv", "quality.csv", "methods.csv", "overfitting.csv", "plots")
STUDY_LOG = "study.log"
DRIVER_LOCK = "driver.lock"  # the running driver (host, pid, since): one driver per study
TRIALS_DIR = "trials"
RAY_STATE = "ray"  # Ray Tune's experiment state and Ray Train's runs: machinery, not results

# ---- one trial's directory (trials/<trial_id>/) ----
RESULT, ERROR, STOPPED = "result.json", "error.json", "stopped.json"  # the final record, one of them
CHECKPOINT = "checkpoint"  # the resume checkpoint: dropped once the trial has finished
WEIGHTS, MODEL_CONFIG = "weights.npz", "model.json"  # what a finished trial keeps of its model
TRIAL_LOG = "trial.log"

# ---- columns ----
TRAIN_LOSSES = tuple(f"train_loss_{t}" for t in TASKS)
VAL_LOSSES = tuple(f"val_loss_{t}" for t in TASKS)   # what every epoch reports, lower is better
CONTRACT_COLUMNS = (["trial_id", "config_id", "repeat", "seed", "status", "error", "best_epoch",
                     "epochs_run", "train_seconds"]
                    + [f"{s}_{m}" for s in ("val", "test") for m in REPORTED])
EPOCH_COLUMNS = ["trial_id", "epoch", *TRAIN_LOSSES, *VAL_LOSSES, "val_monitor", "lr",
                 *(f"weight_{t}" for t in TASKS), "seconds"]
FINAL_STATUSES = ("TERMINATED", "ERROR", "STOPPED")  # a trial with one of these owes nothing
FINAL_RECORDS = (RESULT, ERROR, STOPPED)
