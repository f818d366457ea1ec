"""The record tables: Parquet files consolidated from the trial directories.

``consolidate(experiment_dir)`` rebuilds ``trials.parquet`` (one row per trained model),
``epochs.parquet`` and ``predictions.parquet`` from ``trials/<trial_id>/`` (see
:mod:`study.trial.runner`), each written to a temporary file and renamed, so a crash at any
instant leaves the previous complete files. It is idempotent and keyed by trial directory, so
every trial appears exactly once however often it runs (when a sweep starts or resumes, and when
it ends). In between, :class:`Records` adds each finished trial's row to ``trials.parquet``, and
:func:`load` reads the epochs and predictions of trials finished since from their directories.
Reading needs only pandas/pyarrow.

Row status: ``TERMINATED`` (finished, ``result.json``), ``ERROR`` (failed for good: ``error.json``
and no result), ``STOPPED`` (stopped by a scheduler before finishing: ``stopped.json``;
``last_val_loss_<task>`` holds the validation losses it was stopped on).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .files import write_parquet_atomic
from .layout import (CHECKPOINT, CONTRACT_COLUMNS, EPOCH_COLUMNS, EPOCHS, ERROR, PREDICTIONS, RESULT,
                     STOPPED, TRIALS, TRIALS_DIR)


def _history_from_checkpoint(trial_dir: Path) -> list:
    pointer = trial_dir / CHECKPOINT / "checkpoint.json"
    if not pointer.exists():
        return []
    latest = trial_dir / CHECKPOINT / json.loads(pointer.read_text())["latest"] / "state.json"
    return json.loads(latest.read_text())["history"] if latest.exists() else []


def read_trial(trial_dir: Path, *, tables: bool = True) -> tuple[dict, list, list] | None:
    """One trial directory's row of the trial table, with (``tables``) its epochs and predictions
    as lists of zero or one frames; None while the trial is pending or running."""
    result_path, error_path, stopped_path = (trial_dir / f for f in (RESULT, ERROR, STOPPED))
    epochs, predictions = [], []
    if result_path.exists():
        result = json.loads(result_path.read_text())
        row = {k: result[k] for k in ("trial_id", "status", "error", "best_epoch", "epochs_run",
                                      "train_seconds")}
        row.update(result.get("metrics", {}), config_id=result.get("config_id"),
                   repeat=result.get("repeat"), seed=result.get("seed"),
                   setup_seconds=result.get("setup_seconds"), eval_seconds=result.get("eval_seconds"),
                   started_at=result.get("started"),
                   **{k: result.get("device_policy", {}).get(k) for k in ("device", "precision", "jit_compile")},
                   # the trial's own clock: a copy (a pull from object storage) keeps it
                   finished_at=result.get("finished", result_path.stat().st_mtime))
        params, settings = result["params"], result.get("settings", {})
        if tables and (trial_dir / EPOCHS).exists():
            epochs.append(pd.read_parquet(trial_dir / EPOCHS))
        if tables and (trial_dir / PREDICTIONS).exists():
            predictions.append(pd.read_parquet(trial_dir / PREDICTIONS))
    elif error_path.exists() or stopped_path.exists():
        info = json.loads((error_path if error_path.exists() else stopped_path).read_text())
        history = _history_from_checkpoint(trial_dir)
        row = {"trial_id": info["trial_id"], "status": "ERROR" if error_path.exists() else "STOPPED",
               "error": info.get("error"), "config_id": info.get("config_id"),
               "repeat": info.get("repeat"), "seed": info.get("seed"), "epochs_run": len(history) or None,
               "train_seconds": sum(h["seconds"] for h in history) if history else None,
               "finished_at": info.get("time", (error_path if error_path.exists() else stopped_path).stat().st_mtime)}
        row.update({f"last_{k}": v for k, v in info.get("last", {}).items() if k != "epoch"})
        params, settings = info.get("params", {}), info.get("settings", {})
        if tables and history:
            epochs.append(pd.DataFrame(history).assign(trial_id=info["trial_id"]))
    else:
        return None  # pending or running
    row.update({f"param_{k}": v for k, v in params.items()})
    row.update({f"setting_{k}": _cell(v) for k, v in settings.items()})
    return row, epochs, predictions


def trial_table(rows: list[dict]) -> pd.DataFrame:
    """The trial table of rows from :func:`read_trial`: the contract's columns first (a task
    switched off in every trial still has its null column), then parameters and settings; one
    row per trial, the first recorded."""
    trials = pd.DataFrame(rows)
    for col in CONTRACT_COLUMNS:
        if col not in trials:
            trials[col] = np.nan if col not in ("trial_id", "status", "error") else None
    lead = ([c for c in CONTRACT_COLUMNS if c in trials] + sorted(c for c in trials if c.startswith("param_"))
            + sorted(c for c in trials if c.startswith("setting_")))
    trials = trials[lead + [c for c in trials if c not in lead]]
    if len(trials):
        trials = trials.sort_values("finished_at").drop_duplicates("trial_id", keep="first")
    return trials.reset_index(drop=True)


def epoch_table(parts: list) -> pd.DataFrame:
    """Per-trial epoch frames as one table with the contract's columns first."""
    epochs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=EPOCH_COLUMNS)
    for col in EPOCH_COLUMNS:
        if col not in epochs:
            epochs[col] = np.nan
    return epochs[EPOCH_COLUMNS + [c for c in epochs if c not in EPOCH_COLUMNS]]


def prediction_table(parts: list) -> pd.DataFrame:
    preds = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["trial_id", "sample_id"])
    return preds[["trial_id"] + [c for c in preds if c != "trial_id"]]


def collect(experiment_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read every trial directory into the three tables (no files written)."""
    rows, epochs, predictions = [], [], []
    for trial_dir in sorted(Path(experiment_dir, TRIALS_DIR).glob("*/")):
        read = read_trial(trial_dir)
        if read is not None:
            rows.append(read[0])
            epochs += read[1]
            predictions += read[2]
    return trial_table(rows), epoch_table(epochs), prediction_table(predictions)


def _cell(value):
    """A setting as one table cell: a list (``tasks: [text, oc]``) as ``"text,oc"``."""
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def consolidate(experiment_dir: str | Path) -> pd.DataFrame:
    """Rewrite the record tables (trials, epochs, predictions) from the trial directories; return
    the trial table. The configuration table and the front (``configs.parquet``, the ``pareto``
    column) are the analysis layer's (:func:`study.analysis.configs.write_front`)."""
    experiment_dir = Path(experiment_dir)
    trials, epochs, predictions = collect(experiment_dir)
    write_parquet_atomic(experiment_dir / TRIALS, trials)
    write_parquet_atomic(experiment_dir / EPOCHS, epochs)
    write_parquet_atomic(experiment_dir / PREDICTIONS, predictions)
    return trials


class Records:
    """The record tables kept current one finished trial at a time (what the driver does while a
    sweep runs): :meth:`open` consolidates once (a resumed sweep starts from every trial
    directory), then :meth:`add` reads only the trial that ended and rewrites ``trials.parquet``,
    one row per trial, from memory. The per-trial epochs and predictions stay in their trial
    directories until :func:`consolidate` at the end of the sweep; :func:`load` adds the parts of
    trials finished since, so every reader sees every finished trial. The cost of a finished trial
    is one small file written, whatever the number of trials before it."""

    def __init__(self, experiment_dir: str | Path):
        self.experiment_dir = Path(experiment_dir)
        self.rows: dict[str, dict] = {}
        self.trials = pd.DataFrame()

    def __getstate__(self):  # pickled with Tune's callbacks: the rows are read again on open()
        return {"experiment_dir": self.experiment_dir, "rows": {}, "trials": pd.DataFrame()}

    def open(self) -> pd.DataFrame:
        self.trials = consolidate(self.experiment_dir)
        self.rows = {r["trial_id"]: r for r in self.trials.to_dict("records")}
        return self.trials

    def add(self, trial_id: str) -> pd.DataFrame:
        """Record trial ``trial_id`` from its directory (a no-op while it has no final record)."""
        read = read_trial(self.experiment_dir / TRIALS_DIR / trial_id, tables=False)
        if read is not None:
            self.rows[trial_id] = read[0]  # what its directory holds now, as collect would read it
            self.trials = trial_table(list(self.rows.values()))
            write_parquet_atomic(self.experiment_dir / TRIALS, self.trials)
        return self.trials


def load(experiment_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The three tables of an experiment directory, with a clear error if one is missing. While a
    sweep runs (:class:`Records`), the epochs and predictions of trials finished since the last
    consolidation are read from their trial directories."""
    experiment_dir = Path(experiment_dir)
    out = {}
    for name, file in (("trials", TRIALS), ("epochs", EPOCHS), ("predictions", PREDICTIONS)):
        path = experiment_dir / file
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; is {experiment_dir} a study experiment directory?")
        try:
            out[name] = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a torn file
            raise ValueError(f"{path}: unreadable ({str(exc).splitlines()[0]}); it is rebuilt from the trial "
                             f"directories by `python study/run.py --storage STORAGE --name NAME --resume`") from None
    known = set(out["epochs"]["trial_id"]) | set(out["predictions"]["trial_id"])
    since = [read_trial(experiment_dir / TRIALS_DIR / tid) for tid in out["trials"]["trial_id"] if tid not in known]
    since = [r for r in since if r is not None and (r[1] or r[2])]
    if since:
        out["epochs"] = epoch_table([t for t in (out["epochs"],) if len(t)] + [e for r in since for e in r[1]])
        out["predictions"] = prediction_table([t for t in (out["predictions"],) if len(t)]
                                              + [p for r in since for p in r[2]])
    return out
