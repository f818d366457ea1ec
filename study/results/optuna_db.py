"""The searcher's Optuna study: SQLite in the experiment directory (``optuna.db``)."""
from __future__ import annotations

from pathlib import Path

from .layout import OPTUNA_DB


def optuna_storage(experiment_dir: str | Path):
    """The study's Optuna storage: SQLite in the experiment directory, on the driver's disk.

    SQLite rather than a ``JournalStorage`` file: every write is a transaction, so a SIGKILL
    leaves the last trial either written or not (never half a record), and the lock dies with
    the process (a journal's lock file outlives a killed writer, and the next run waits out its
    grace period). ``optuna.load_study(storage="sqlite:///.../optuna.db", study_name=None)`` and
    ``optuna-dashboard`` read it while the sweep runs."""
    import optuna

    url = f"sqlite:///{Path(experiment_dir).resolve() / OPTUNA_DB}"
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
